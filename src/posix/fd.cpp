// fd.cpp: owned descriptors, the one place EINTR is retried for poll, and
// descriptors sent ahead of a message in chunks.

#include "mproc/detail/fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
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

std::size_t send_fds_ahead(int sock, std::span<const std::byte> head, std::span<const int>& fds, const char* who) {
  if (fds.size() <= kFdsPerSendmsg) return 0;
  const std::size_t ahead = (fds.size() - 1) / kFdsPerSendmsg;  // chunks before the last
  if (ahead >= head.size()) {
    throw Error(std::string(who) + ": too many handles in one message (" + std::to_string(fds.size()) +
                "; at most " + std::to_string(head.size() * kFdsPerSendmsg) + ")");
  }
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kFdsPerSendmsg)];
  for (std::size_t i = 0; i < ahead; ++i) {
    iovec iov{const_cast<std::byte*>(head.data()) + i, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * kFdsPerSendmsg);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * kFdsPerSendmsg);
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * kFdsPerSendmsg);
    if (retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL); }) < 0) {
      if (errno == EPIPE || errno == ECONNRESET) throw EOFError(std::string(who) + ": the peer closed the connection");
      throw_errno(who);
    }
    fds = fds.subspan(kFdsPerSendmsg);
  }
  return ahead;
}

}  // namespace mproc::detail
