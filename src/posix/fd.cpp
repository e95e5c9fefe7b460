// fd.cpp: owned descriptors and the one place EINTR is retried for poll.

#include "mproc/detail/fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>

#include "mproc/errors.hpp"

namespace mproc::detail {

void throw_errno(const std::string& what, int err) {
  throw Error(what + ": " + std::strerror(err));
}

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);  // never retried: the fd is released even on EINTR
  fd_ = fd;
}

UniqueFd dup_cloexec(int fd) {
  const int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) throw_errno("mproc: dup");
  return UniqueFd(d);
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  // poll() is not restarted after a signal; retry with the full timeout is
  // close enough for the callers, which re-check their own deadlines.
  const int r = retry_eintr([&] { return ::poll(&p, 1, timeout_ms); });
  if (r < 0) throw_errno("mproc: poll");
  return r > 0;
}

}  // namespace mproc::detail
