// detail/fd.hpp: an owned file descriptor, and the EINTR/errno helpers that
// every system call in mproc goes through.
#pragma once

#include <cerrno>
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

}  // namespace mproc::detail
