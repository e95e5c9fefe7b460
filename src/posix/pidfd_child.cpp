// pidfd_child.cpp: watching a direct child through a pidfd.

#include "pidfd_child.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mproc::detail {

int exit_code_from_status(int status) noexcept {
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 255;
}

PidfdChild::PidfdChild(pid_t pid) : pid_(pid) {
  // pidfd_open (Linux 5.3) gives a descriptor that polls readable when the
  // child exits and that names this very process even after its pid is
  // reused. It is always close-on-exec.
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw_errno("mproc: pidfd_open", err);
  }
  pidfd_.reset(fd);
}

std::optional<int> PidfdChild::poll() {
  if (code_) return code_;
  int status = 0;
  const pid_t r = retry_eintr([&] { return ::waitpid(pid_, &status, WNOHANG); });
  if (r == pid_) {
    code_ = exit_code_from_status(status);
  } else if (r < 0 && errno == ECHILD) {
    // Someone else reaped it (a SIGCHLD handler of the program's own): the
    // status is lost. Report it as ended with an unknown code.
    code_ = 255;
  }
  return code_;
}

void PidfdChild::send_signal(int sig) {
  if (code_) return;
  // Through the pidfd: never signals a stranger that reused the pid.
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) != 0 && errno != ESRCH) {
    throw_errno("mproc: pidfd_send_signal");
  }
}

}  // namespace mproc::detail
