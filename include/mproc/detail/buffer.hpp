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
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mproc/errors.hpp"

namespace mproc::detail {

// ByteBuffer: an uninitialised, growable byte buffer (the storage of
// Writer, and of received messages).
//
// A message arriving from another process is written into memory once and
// decoded from there. std::vector would zero every byte before the socket
// (or an encoder) overwrites it, and would copy everything it holds each time
// it grows; ByteBuffer does neither: it is plain malloc'ed memory grown with
// realloc, which glibc turns into mremap for large blocks (the pages move,
// nothing is copied). That is what lets a 1 GiB message be received into a
// buffer that grows as the bytes arrive (never trusting a length read from
// the wire) without a second full copy.
class ByteBuffer {
 public:
  ByteBuffer() noexcept = default;
  ByteBuffer(ByteBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)) {}
  ByteBuffer& operator=(ByteBuffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ~ByteBuffer() { std::free(data_); }

  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }

  // Sets the size to n; new bytes are uninitialised. Keeps the content up
  // to min(old size, n). Throws std::bad_alloc.
  void resize(std::size_t n) {
    if (n > capacity_) {
      void* p = std::realloc(data_, n);
      if (p == nullptr) throw std::bad_alloc();
      data_ = static_cast<std::byte*>(p);
      capacity_ = n;
    }
    size_ = n;
  }
  // Makes room for n bytes in all, keeping the content (no new bytes).
  void reserve(std::size_t n) {
    const std::size_t keep = size_;
    if (n > capacity_) resize(n);
    size_ = keep;
  }
  void clear() noexcept { size_ = 0; }
  // Frees the memory if more than `keep` bytes are reserved.
  void trim(std::size_t keep) noexcept {
    if (capacity_ > keep) {
      std::free(data_);
      data_ = nullptr;
      size_ = capacity_ = 0;
    }
  }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

class Writer {
 public:
  Writer() = default;

  // The hot path of every encoder: a bounds check and a memcpy (growing
  // never zero-fills: the storage is a ByteBuffer).
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
  // Moves the written bytes out (the writer is empty afterwards): lets a
  // caller keep a message without copying it.
  ByteBuffer take() {
    bytes_.resize(size_);
    size_ = 0;
    fds_.clear();
    return std::move(bytes_);
  }
  // A copy of the written bytes.
  std::vector<std::byte> to_vector() const { return {bytes_.data(), bytes_.data() + size_}; }
  const std::vector<int>& fds() const noexcept { return fds_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return bytes_.capacity(); }
  // Makes room for n bytes in all (one allocation instead of a doubling
  // series, when the size is known ahead).
  void reserve(std::size_t n) {
    if (n > bytes_.size()) grow(n);
  }
  // Writes into `storage` from now on (its content is dropped, its memory
  // kept): lets a caller recycle the buffer of a message that was sent.
  void adopt(ByteBuffer&& storage) {
    bytes_ = std::move(storage);
    bytes_.resize(bytes_.capacity());  // uninitialised: costs nothing
    size_ = 0;
    fds_.clear();
  }
  void clear() noexcept {
    size_ = 0;
    fds_.clear();
  }
  // Clears and gives the memory back.
  void release() noexcept {
    clear();
    bytes_ = ByteBuffer();
  }

 private:
  void grow(std::size_t need) {
    std::size_t cap = bytes_.size() < 256 ? 256 : bytes_.size() * 2;
    while (cap < need) cap *= 2;
    bytes_.resize(cap);  // realloc: nothing is zero-filled
  }

  // Its size is the capacity in use; `size_` is what has been written.
  ByteBuffer bytes_;
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
  // Inline check, out-of-line throw: every decode of a plain value passes
  // here.
  void need(std::size_t n) const {
    if (n > remaining()) [[unlikely]] truncated(n);
  }
  [[noreturn, gnu::noinline, gnu::cold]] void truncated(std::size_t n) const {
    throw SerializationError("mproc: truncated message: needed " + std::to_string(n) + " more bytes, " +
                             std::to_string(remaining()) + " left");
  }

  std::span<const std::byte> bytes_;
  std::span<const int> fds_;
  std::size_t pos_ = 0;
};

}  // namespace mproc::detail
