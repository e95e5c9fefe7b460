// launch_fork.cpp: the `fork` start method.
//
// The child is a copy of the parent: it already holds the callable and its
// arguments in memory, so nothing is serialized. Between fork() and the
// target the child only resets mproc's own state (no lock of the parent's
// is taken: see become_child), and it ends with _exit() so that the parent's
// atexit handlers and static destructors do not run twice.

#include <signal.h>
#include <unistd.h>

#include <string>

#include "mproc/detail/launch.hpp"
#include "pidfd_child.hpp"

namespace mproc::detail {

std::unique_ptr<Child> launch_fork(const Job& job) {
  std::unique_ptr<Child> out;
  // The child starts with the signal mask of the thread that asked for it,
  // not that of the launcher thread (which blocks everything): a child
  // with SIGTERM blocked could not be terminate()d.
  sigset_t caller;
  pthread_sigmask(SIG_SETMASK, nullptr, &caller);
  on_launcher_thread([&] {
    const pid_t parent = ::getpid();
    const std::string parent_name = identity().name;
    flush_std_streams();
    // Block signals across fork so that no handler of the parent's runs in
    // the child before it has reset itself.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    const pid_t pid = ::fork();
    if (pid == 0) {
      die_with_parent(parent);
      pthread_sigmask(SIG_SETMASK, &caller, nullptr);
      become_child(job.name, job.daemon, parent, parent_name);
      const int code = run_target(job.run_here);
      ::_exit(code);
    }
    const int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) throw_errno("mproc: fork", err);
    out = std::make_unique<PidfdChild>(pid);
  });
  return out;
}

}  // namespace mproc::detail
