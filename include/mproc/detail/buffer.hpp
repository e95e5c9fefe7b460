// detail/buffer.hpp: the byte buffers every message is written into and read
// from, with a side list of file descriptors.
//
// A message that crosses a process boundary is a run of bytes plus, for
// handles (queues, locks, shared memory), the descriptors that back them.
// Writer appends both; the transport decides how the descriptors travel
// (inherited across fork, SCM_RIGHTS over a Unix socket otherwise). Reader
// is the only way to consume bytes from another process: every read is
// bounds-checked and throws SerializationError instead of reading past the
// end, and lengths read from the wire are checked against what is left
// before anything is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "mproc/errors.hpp"

namespace mproc::detail {

class Writer {
 public:
  Writer() = default;

  // The hot path of every encoder: a bounds check and a memcpy. The vector's
  // size is the capacity in use; `size_` is what has been written (so
  // growing never zero-fills byte by byte, and small writes stay inline).
  void write(const void* data, std::size_t n) {
    if (n == 0) return;
    if (size_ + n > bytes_.size()) grow(size_ + n);
    std::memcpy(bytes_.data() + size_, data, n);
    size_ += n;
  }
  template <class T>
  void write_pod(const T& v) {
    write(&v, sizeof v);
  }
  void write_size(std::uint64_t n) { write_pod(n); }

  // Reserves n bytes at the end and returns where to put them: lets a
  // caller fill the buffer in place (no intermediate copy).
  std::byte* extend(std::size_t n) {
    if (size_ + n > bytes_.size()) grow(size_ + n);
    std::byte* at = bytes_.data() + size_;
    size_ += n;
    return at;
  }

  // Records a descriptor to travel with the message and writes its index.
  // The descriptor is borrowed: it must stay open until the message is sent.
  void write_fd(int fd) {
    write_pod(static_cast<std::uint32_t>(fds_.size()));
    fds_.push_back(fd);
  }

  // Drops everything written after the first `nbytes` bytes and `nfds`
  // descriptors (to undo a value that failed to encode halfway).
  void truncate(std::size_t nbytes, std::size_t nfds) {
    if (nbytes < size_) size_ = nbytes;
    if (nfds < fds_.size()) fds_.resize(nfds);
  }

  std::span<const std::byte> bytes() const noexcept { return {bytes_.data(), size_}; }
  std::byte* data() noexcept { return bytes_.data(); }
  // The written bytes as a vector (to move them out, or patch them).
  std::vector<std::byte>& buffer() {
    bytes_.resize(size_);
    return bytes_;
  }
  const std::vector<int>& fds() const noexcept { return fds_; }
  std::size_t size() const noexcept { return size_; }
  // Makes room for n bytes in all (one allocation instead of a doubling
  // series, when the size is known ahead).
  void reserve(std::size_t n) {
    if (n > bytes_.size()) grow(n);
  }
  // Writes into `storage` from now on (its content is dropped, its memory
  // kept): lets a caller recycle the buffer of a message that was sent.
  void adopt(std::vector<std::byte>&& storage) {
    // Its bytes are overwritten as they are written: the part in use (its
    // size) is writable at once, the rest of its capacity when grow() needs
    // it (resizing to the capacity here would zero-fill it for nothing).
    bytes_ = std::move(storage);
    size_ = 0;
    fds_.clear();
  }
  void clear() noexcept {
    size_ = 0;
    fds_.clear();
  }

 private:
  void grow(std::size_t need) {
    std::size_t cap = bytes_.size() < 256 ? 256 : bytes_.size() * 2;
    while (cap < need) cap *= 2;
    bytes_.resize(cap);
  }

  std::vector<std::byte> bytes_;
  std::size_t size_ = 0;
  std::vector<int> fds_;
};

class Reader {
 public:
  // `fds` are the descriptors that arrived with the message, in order; the
  // Reader does not own them (the transport closes what nobody took).
  explicit Reader(std::span<const std::byte> bytes, std::span<const int> fds = {}) noexcept
      : bytes_(bytes), fds_(fds) {}

  void read(void* out, std::size_t n) {
    need(n);
    if (n != 0) std::memcpy(out, bytes_.data() + pos_, n);
    pos_ += n;
  }
  template <class T>
  T read_pod() {
    T v;
    read(&v, sizeof v);
    return v;
  }
  // Returns a view of the next n bytes and skips them (no copy).
  std::span<const std::byte> take(std::size_t n) {
    need(n);
    auto s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  // Reads an element count and checks that the rest of the message can hold
  // that many elements of at least `min_element_size` bytes each, so that a
  // forged count can never drive an allocation bigger than the message.
  std::size_t read_count(std::size_t min_element_size) {
    const auto n = read_pod<std::uint64_t>();
    const std::size_t per = min_element_size == 0 ? 1 : min_element_size;
    if (n > remaining() / per) {
      throw SerializationError("mproc: malformed message: a length of " + std::to_string(n) +
                               " exceeds the " + std::to_string(remaining()) +
                               " bytes that are left");
    }
    return static_cast<std::size_t>(n);
  }
  // Reads a descriptor index written by Writer::write_fd and returns the
  // descriptor (still owned by the transport; dup it to keep it).
  int read_fd() {
    const auto i = read_pod<std::uint32_t>();
    if (i >= fds_.size() || fds_[i] < 0) {
      throw SerializationError("mproc: malformed message: descriptor #" + std::to_string(i) +
                               " did not arrive with it");
    }
    return fds_[i];
  }

  // The bytes not read yet (a view; read nothing).
  std::span<const std::byte> rest() const noexcept { return bytes_.subspan(pos_); }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }
  std::size_t position() const noexcept { return pos_; }
  bool at_end() const noexcept { return pos_ == bytes_.size(); }

 private:
  void need(std::size_t n) const {
    if (n > remaining()) {
      throw SerializationError("mproc: truncated message: needed " + std::to_string(n) +
                               " more bytes, " + std::to_string(remaining()) + " left");
    }
  }

  std::span<const std::byte> bytes_;
  std::span<const int> fds_;
  std::size_t pos_ = 0;
};

}  // namespace mproc::detail
