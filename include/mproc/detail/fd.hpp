// detail/fd.hpp: an owned file descriptor, and the EINTR/errno helpers that
// every system call in mproc goes through.
#pragma once

#include <cerrno>
#include <cstddef>
#include <span>
#include <string>
#include <utility>

namespace mproc::detail {

// Throws mproc::Error naming the operation and strerror(err).
[[noreturn]] void throw_errno(const std::string& what, int err = errno);

// Retries a system call while it fails with EINTR. (Never used for close():
// on Linux the descriptor is gone even when close() reports EINTR.)
template <class F>
auto retry_eintr(F&& call) {
  for (;;) {
    auto r = call();
    if (!(r == -1 && errno == EINTR)) return r;
  }
}

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// dup() with O_CLOEXEC; throws on failure.
UniqueFd dup_cloexec(int fd);

// Waits until `fd` is readable (or hung up). timeout_ms < 0 waits forever.
// Returns false on timeout.
bool wait_readable(int fd, int timeout_ms);

// One sendmsg() carries at most this many descriptors (SCM_RIGHTS; the
// kernel's SCM_MAX_FD is 253).
inline constexpr std::size_t kFdsPerSendmsg = 250;

// For a message with more descriptors than one sendmsg() carries: sends
// all of them but the last kFdsPerSendmsg ahead, in chunks, each with the
// next byte of `head` (the message's header). The receiver reads a header
// in a loop and each recvmsg() returns at most one chunk (the kernel stops
// after a segment with descriptors), so they have all arrived, in order,
// once the header has. Returns how many bytes of `head` went; `fds` is left
// with what the caller's sendmsg of the rest carries. Throws mproc::Error
// naming `who` if even the header is too short for that many chunks, and
// EOFError if the peer is gone.
std::size_t send_fds_ahead(int sock, std::span<const std::byte> head, std::span<const int>& fds, const char* who);

}  // namespace mproc::detail
