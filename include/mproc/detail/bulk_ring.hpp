// detail/bulk_ring.hpp: big message bodies through shared memory.
//
// A pool worker and its pool talk over a Unix socket (detail/wire.hpp). A
// body of 64 KiB or more crosses a socket as two kernel copies plus the
// socket's own buffers; through a BulkRing it is one memcpy into shared
// memory that stays mapped (and warm) for the life of the pool, and one out.
//
// A BulkRing is one-way: one writer process, one reader process. It is only
// an allocator with first-in first-out frees; the socket still carries
// every message, in order, and wakes the reader. The writer copies the body
// into the ring and sends a small *bulk frame* saying where it lies (its
// position and length); the reader copies it out when it reads that frame
// and frees the room by moving `tail` past it. A body that does not fit
// (the ring is full, or the body is bigger than half the ring) simply goes
// through the socket as before.
//
// Positions count bytes since the ring was made (u64, never wrapping); a
// body never straddles the ring's end (the writer skips to the next lap),
// and a writer that finds the ring empty starts the next lap too, so that a
// stream of bodies keeps reusing the first pages of the ring (fresh pages
// cost ~2 us each on the VMs here).
// The writer keeps its position to itself; the only shared word it reads is
// `tail`, which only the reader writes (release after copying out, acquire
// before reusing the room). The reader checks every bulk frame against its
// own position and the ring's size, so a malformed frame throws
// SerializationError and never reads outside the ring.
//
// Deaths: a writer that dies in the middle of a copy sent no frame; the
// ring is reset (reset()) before the slot's next worker starts.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "mproc/detail/buffer.hpp"

namespace mproc::detail {

struct BulkRef {
  std::uint64_t position = 0;
  std::uint64_t length = 0;
};

class BulkRing {
 public:
  // Bytes from which a body goes through the ring.
  static constexpr std::size_t kMinBody = std::size_t{64} << 10;
  // The shared header before the data: tail on a cache line of its own.
  static constexpr std::size_t kHeaderBytes = 4096;

  BulkRing() = default;
  // `memory` holds kHeaderBytes of header, then `capacity` bytes of data
  // (a multiple of 64). Both ends construct over the same shared memory.
  BulkRing(std::byte* memory, std::size_t capacity) noexcept
      : tail_(reinterpret_cast<std::atomic<std::uint64_t>*>(memory)), data_(memory + kHeaderBytes), capacity_(capacity) {}

  bool usable() const noexcept { return data_ != nullptr; }
  std::size_t capacity() const noexcept { return capacity_; }
  // Whether put() would take a body of `n` bytes at all.
  bool suits(std::size_t n) const noexcept { return usable() && n >= kMinBody && n <= capacity_ / 2; }

  // Writer: copies `body` into the ring; nullopt when it does not suit or
  // there is no room now.
  std::optional<BulkRef> put(std::span<const std::byte> body) noexcept;

  // Reader: copies the body of `ref` into `out` and frees its room. Throws
  // SerializationError if `ref` is not a body this ring can hold next.
  void take(const BulkRef& ref, ByteBuffer& out);

  // Reader, without a copy: the body of `ref` in place, valid until
  // release() (which the reader calls before it takes the next body; until
  // then its room stays taken). Checks `ref` as take() does.
  std::span<const std::byte> view(const BulkRef& ref);
  void release() noexcept;

  // Both ends start over (before a new worker of the slot starts).
  void reset() noexcept;

 private:
  static constexpr std::uint64_t align(std::uint64_t n) noexcept { return (n + 63) & ~std::uint64_t{63}; }
  void check(const BulkRef& ref) const;  // throws SerializationError

  std::atomic<std::uint64_t>* tail_ = nullptr;  // shared: the reader's position
  std::byte* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::uint64_t head_ = 0;  // writer: where the next body goes
  std::uint64_t next_ = 0;  // reader: where the next body may start
  bool viewed_ = false;     // reader: a view() not released yet
};

}  // namespace mproc::detail
