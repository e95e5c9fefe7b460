// launch_fork.cpp: the `fork` start method.
//
// The child is a copy of the parent: it already holds the callable and its
// arguments in memory, so nothing is serialized. Between fork() and the
// target the child only resets mproc's own state (no lock of the parent's
// is taken: see become_child), and it ends with _exit() so that the parent's
// atexit handlers and static destructors do not run twice, also when the
// target calls std::exit() (leave_without_the_parents_handlers).
//
// mproc's own code in the child calls no library function that the parent
// has not called before (child_calls): a function is bound to its address
// on its first call (lazy binding), a binding made in a child dies with
// it, and one made in the parent is inherited by every later child.

#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "mproc/detail/launch.hpp"
#include "mproc/start_method.hpp"
#include "pidfd_child.hpp"

namespace mproc::detail {
namespace {

struct ChildCalls {
  void (*exit)(int) = nullptr;
  int (*on_exit)(void (*)(int, void*), void*) = nullptr;
};

// Binds, once in this process, the library functions that mproc's code
// calls in a forked child: die_with_parent's, the message functions of
// wire.cpp and what a pool worker calls while it waits for a message. A
// child that binds one itself looks the symbol up through the hash tables
// of every loaded library, whose pages it has not mapped yet (fork copies
// no page table entries of file mappings): about ten page faults per
// child, a quarter of a pool worker's faults up to its loop. One function
// left unbound costs nearly all of them, since every lookup walks the same
// pages. Each call below does nothing (a query, a bad descriptor). _exit
// and on_exit cannot be called to bind them, so the child calls them through
// their addresses,
// looked up here: whoever defines it first, libc or a sanitizer's hook
// (ThreadSanitizer's sets the exit code of a child that raced). A program
// linked with -z now has everything bound already.
const ChildCalls& child_calls() noexcept {
  static const ChildCalls calls = [] {
    int signal = 0;
    ::prctl(PR_GET_PDEATHSIG, &signal);
    (void)::getppid();
    (void)::send(-1, nullptr, 0, 0);
    (void)::sendmsg(-1, nullptr, 0);
    (void)::recv(-1, nullptr, 0, 0);
    (void)::recvmsg(-1, nullptr, 0);
    // A pool worker's wait for its next message (mail_link.cpp, spin.hpp).
    (void)::poll(nullptr, 0, 0);
    (void)::read(-1, nullptr, 0);
    (void)::write(-1, nullptr, 0);
    (void)::sched_yield();
    timespec ts;
    (void)::clock_gettime(CLOCK_MONOTONIC, &ts);
    // forget_parent_forkserver tries the forkserver's lock.
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    if (::pthread_mutex_trylock(&mutex) == 0) ::pthread_mutex_unlock(&mutex);
    // A received message's buffer grows by realloc (volatile: the calls
    // must not be folded into malloc or elided).
    void* volatile block = std::malloc(1);
    block = std::realloc(block, 2);
    std::free(block);
    ChildCalls c;
    c.exit = reinterpret_cast<void (*)(int)>(::dlsym(RTLD_DEFAULT, "_exit"));
    c.on_exit = reinterpret_cast<int (*)(void (*)(int, void*), void*)>(::dlsym(RTLD_DEFAULT, "on_exit"));
    return c;
  }();
  return calls;
}

// A target that calls std::exit() ends the child through exit(), which runs
// every atexit handler and static destructor registered so far: the
// parent's too, copied by fork. They would run twice, and a parent's
// destructor that removes something shared (a socket file, a named block,
// a temporary directory) would remove it from under the parent. Python's
// fork children leave through os._exit whatever the target does. Registered
// first thing in the child, this handler is the newest, so exit() runs it
// before any handler inherited from the parent (after any the target
// registered itself): it flushes the output and leaves with _exit.
void leave_without_the_parents_handlers(int status, void*) noexcept {
  flush_std_streams();
  const ChildCalls& calls = child_calls();
  if (calls.exit != nullptr) calls.exit(status);
  ::_exit(status);
}

}  // namespace

std::unique_ptr<Child> launch_fork(const Job& job) {
  std::unique_ptr<Child> out;
  // The child starts with the signal mask of the thread that asked for it,
  // not that of the launcher thread (which blocks everything): a child
  // with SIGTERM blocked could not be terminate()d.
  sigset_t caller;
  pthread_sigmask(SIG_SETMASK, nullptr, &caller);
  const ChildCalls& calls = child_calls();
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
      if (calls.on_exit != nullptr) calls.on_exit(leave_without_the_parents_handlers, nullptr);
      pthread_sigmask(SIG_SETMASK, &caller, nullptr);
      become_child(job.name, job.daemon, parent, parent_name, job.id_chain);
      forget_parent_forkserver();
      set_start_method(StartMethod::fork, true);  // the child's default, as in Python (atomics: no lock)
      const int code = run_target(job.run_here);
      if (calls.exit != nullptr) calls.exit(code);
      ::_exit(code);  // a static program, where dlsym finds nothing
    }
    const int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) throw_errno("mproc: fork", err);
    out = std::make_unique<PidfdChild>(pid);
  });
  return out;
}

}  // namespace mproc::detail
