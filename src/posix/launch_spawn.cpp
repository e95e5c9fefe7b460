// launch_spawn.cpp: the `spawn` start method.
//
// The child is a fresh run of this program's own binary (/proc/self/exe,
// same argv), started with posix_spawn (vfork+exec in glibc: cheap even for
// a big parent, and safe with threads). It inherits exactly one extra
// descriptor, a socket named by MPROC_SPAWN_FD; its mproc::init() reads the
// child frame from it (identity, invoker key, callable, arguments, and the
// descriptors of any handles) and runs it.

#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mproc/detail/launch.hpp"
#include "mproc/detail/wire.hpp"
#include "pidfd_child.hpp"

extern char** environ;

namespace mproc::detail {

// Starts /proc/self/exe with the saved argv and one inherited socket,
// announced in the environment variable `env_name`. Returns the pid.
pid_t spawn_self(int child_end, const char* env_name) {
  require_init("the spawn and forkserver start methods");
  // The socket must land on a descriptor the child keeps: dup2 onto a fixed
  // number other than its current one (dup2 onto itself would keep CLOEXEC).
  const int target = child_end == 3 ? 4 : 3;
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) {
    if (std::strncmp(*e, "MPROC_", 6) != 0) env_store.emplace_back(*e);
  }
  env_store.push_back(std::string(env_name) + "=" + std::to_string(target));
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_store = saved_argv();
  if (argv_store.empty()) argv_store.emplace_back("mproc-child");
  std::vector<char*> argv;
  for (auto& s : argv_store) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, child_end, target);
  // What the child inherits is an allowlist: 0, 1, 2 and the socket. Any
  // other descriptor this process holds without CLOEXEC (often inherited
  // from whoever started us) is closed in the child (glibc >= 2.34).
  posix_spawn_file_actions_addclosefrom_np(&fa, target + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  flush_std_streams();
  const int rc = ::posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw_errno("mproc: posix_spawn of /proc/self/exe", rc);
  return pid;
}

std::unique_ptr<Child> launch_spawn(const Job& job) {
  require_init("the spawn start method");
  Writer frame;
  encode_child_frame(frame, job, StartMethod::spawn);  // before starting anything: may throw
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("mproc: socketpair");
  UniqueFd mine(sv[0]), theirs(sv[1]);
  std::unique_ptr<Child> child;
  on_launcher_thread([&] { child = std::make_unique<PidfdChild>(spawn_self(theirs.get(), "MPROC_SPAWN_FD")); });
  theirs.reset();
  try {
    send_message(mine.get(), frame.bytes(), frame.fds());
  } catch (const EOFError&) {
    // The child died before reading its frame; its exit code tells the rest.
  } catch (...) {
    // It never got its work: it must not outlive this failed start, nor
    // stay behind unreaped.
    child->send_signal(SIGKILL);
    while (!child->poll()) wait_readable(child->sentinel(), -1);
    throw;
  }
  return child;
}

[[noreturn]] void spawned_child_main(int fd) {
  // Die with the parent; if it is gone already, the frame read below sees
  // the end of the stream and we exit.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  UniqueFd sock(fd);
  Message m;
  try {
    m = recv_message(sock.get());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mproc: spawned child could not read its work: %s\n", e.what());
    std::_Exit(1);
  }
  sock.reset();
  const std::vector<int> fds = m.raw_fds();
  const int code = run_child_frame(m.bytes.bytes(), fds, /*direct=*/true);
  std::exit(code);
}

}  // namespace mproc::detail
