// detail/mail_ring.hpp: small messages between a pool and one worker,
// through shared memory, with no system call while both sides are awake.
//
// A MailRing is one-way: one writer process, one reader process. It holds
// *frames*: an 8-byte header (u32 length, u32 kind) and the body, padded to
// 8 bytes. A frame is
//  - `inline`: the message itself (at most kMaxInline bytes);
//  - `bulk`: a BulkRef: the body lies in the link's BulkRing
//    (detail/bulk_ring.hpp);
//  - `socket`: the message went through the link's socket (it carries
//    descriptors, or there was no room here): the reader reads it there.
// So the ring fixes the order of all messages, and the socket only carries
// what shared memory cannot (descriptors) or what did not fit.
//
// Positions count bytes since the ring was made (u64, never wrapping). A
// frame never straddles the end of the ring: the writer writes a `wrap`
// frame and starts the next lap. It also starts the next lap when it finds
// the ring empty and is more than kRestart into the lap, so that a stream
// of small messages keeps using the first (warm) lines of the ring.
//
// Room: a frame other than `socket` leaves kReserve bytes free, so that a
// `socket` frame always fits as long as fewer than kReserve / 8 messages
// wait unread. The pool never has more than a few dozen messages out to a
// worker (its in-flight bound, pool_core.cpp); a worker whose frame does
// not fit waits for room (MailLink).
//
// Waking the reader is the link's business (detail/mail_link.hpp): the
// header has the reader's `sleeping` word, which a reader sets before it
// sleeps, so that the writer makes a system call only for a sleeping
// reader (see TRAPS.md: a blocking wake-up costs 5-50 us here).
//
// The reader checks every frame (kind, length, that it lies within what the
// writer published), so a malformed ring throws SerializationError and never
// reads outside the ring (fuzz/fuzz_wire.cpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace mproc::detail {

class MailRing {
 public:
  enum class Kind : std::uint32_t { inline_body = 1, bulk = 2, socket = 3, wrap = 4 };

  struct Shared {
    alignas(64) std::atomic<std::uint64_t> head{0};  // writer: bytes published
    alignas(64) std::atomic<std::uint64_t> tail{0};  // reader: bytes consumed
    alignas(64) std::atomic<std::uint32_t> sleeping{0};  // reader: 1 while it sleeps (or is about to)
  };
  static constexpr std::size_t kHeaderBytes = 256;
  static_assert(sizeof(Shared) <= kHeaderBytes);
  static constexpr std::size_t kFrameHeader = 8;
  static constexpr std::size_t kMaxInline = std::size_t{64} << 10;
  static constexpr std::size_t kReserve = 4096;
  static constexpr std::size_t kRestart = std::size_t{16} << 10;

  // A frame as read: its kind and body (in the ring, valid until pop()).
  struct Frame {
    Kind kind;
    std::span<const std::byte> body;
  };

  MailRing() = default;
  // `memory` holds kHeaderBytes of header, then `capacity` bytes of data (a
  // power of two, at least 2 * (kMaxInline + kReserve)). Both ends
  // construct over the same shared memory.
  MailRing(std::byte* memory, std::size_t capacity) noexcept
      : shared_(reinterpret_cast<Shared*>(memory)), data_(memory + kHeaderBytes), capacity_(capacity) {}

  bool usable() const noexcept { return data_ != nullptr; }
  std::atomic<std::uint32_t>& sleeping() noexcept { return shared_->sleeping; }

  // Writer: appends one frame; false when there is no room now (for a
  // `socket` frame: fewer than 8 bytes free, never in practice).
  bool put(Kind kind, std::span<const std::byte> body) noexcept;
  // Writer: whether a frame (not `socket`) with a body of `n` bytes would
  // fit now (and so also at the next put(): only the writer takes room).
  bool room_for(std::size_t n) noexcept;

  // Reader: whether a frame is published (one acquire load).
  bool has_frame() const noexcept { return shared_->head.load(std::memory_order_acquire) != next_; }
  // The same with a sequentially consistent load, for the check a reader
  // makes after announcing that it sleeps (the writer's side of that
  // handshake is in MailLink).
  bool has_frame_seq_cst() const noexcept { return shared_->head.load(std::memory_order_seq_cst) != next_; }
  // Reader: the next frame (wrap frames skipped), or false if none is
  // published. Throws SerializationError on a malformed frame.
  bool peek(Frame& out);
  // Reader: frees the frame peek() returned.
  void pop() noexcept;

  // Both ends start over (before a new worker of the slot starts).
  void reset() noexcept;

 private:
  static constexpr std::uint64_t pad(std::uint64_t n) noexcept { return (n + 7) & ~std::uint64_t{7}; }
  void write_header(std::uint64_t at, Kind kind, std::uint32_t length) noexcept;
  // Where a frame of `need` bytes goes (after a wrap frame if `at` is not
  // head_), keeping `reserve` bytes free; false if there is no room now.
  bool find_room(std::uint64_t need, std::uint64_t reserve, std::uint64_t& at) noexcept;

  Shared* shared_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::uint64_t head_ = 0;       // writer: where the next frame goes
  std::uint64_t tail_seen_ = 0;  // writer: the reader's position when last read
  std::uint64_t next_ = 0;       // reader: where the next frame starts
  std::uint64_t after_ = 0;      // reader: the end of the frame peek() returned
};

}  // namespace mproc::detail
