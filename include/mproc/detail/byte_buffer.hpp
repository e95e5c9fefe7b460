// detail/byte_buffer.hpp: an uninitialised, growable byte buffer for
// receiving messages, and the per-thread scratch buffers of the IPC layer.
//
// A message arriving from another process is written into memory once and
// decoded from there. std::vector would zero every byte before the socket
// overwrites it, and would copy everything it holds each time it grows;
// ByteBuffer does neither: it is plain malloc'ed memory grown with realloc,
// which glibc turns into mremap for large blocks (the pages move, nothing is
// copied). That is what lets a 1 GiB message be received into a buffer that
// grows as the bytes arrive (never trusting a length read from the wire)
// without a second full copy.
//
// The scratch writer is the Writer every send/put on this thread encodes
// into: reusing it keeps the hot path free of allocations. Buffers that grew
// large are given back after use, so one huge message does not pin its
// memory for the life of the thread.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <span>
#include <utility>

#include "mproc/detail/buffer.hpp"

namespace mproc::detail {

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

// Buffers above this size are released after use instead of being kept
// for the next message of the thread.
inline constexpr std::size_t kScratchKeep = std::size_t{1} << 20;

// This thread's Writer for encoding one outgoing message, emptied.
inline Writer& scratch_writer() {
  thread_local Writer w;
  w.clear();
  return w;
}
// Gives the writer's memory back if one message made it large.
inline void release_scratch(Writer& w) noexcept {
  if (w.buffer().capacity() > kScratchKeep) {
    w.clear();
    std::vector<std::byte>().swap(w.buffer());
  }
}

// This thread's buffer for receiving one small message.
inline ByteBuffer& scratch_buffer() {
  thread_local ByteBuffer b;
  return b;
}

}  // namespace mproc::detail
