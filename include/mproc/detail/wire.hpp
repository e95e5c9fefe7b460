// detail/wire.hpp: whole messages over a stream socket, with descriptors.
//
// A message is a 12-byte header (u64 body length, u32 descriptor count) and
// the body; the descriptors ride on the first sendmsg() as SCM_RIGHTS (more
// than one sendmsg carries go ahead in chunks: fd.hpp, send_fds_ahead). The
// receiver grows its buffer only as bytes actually arrive, so a forged length
// costs the receiver nothing until the sender really sends that much.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/bulk_ring.hpp"
#include "mproc/detail/fd.hpp"

namespace mproc::detail {

struct Message {
  // Uninitialised storage: a received body is written once, by the socket
  // (a std::vector would zero it first).
  ByteBuffer bytes;
  // Or, for a body read in place from a BulkRing (MessageReader::next with
  // `borrow`), where it lies; valid until the reader's next message.
  std::span<const std::byte> borrowed;
  std::vector<UniqueFd> fds;
  std::span<const std::byte> body() const noexcept { return borrowed.empty() ? bytes.bytes() : borrowed; }
  std::vector<int> raw_fds() const {
    std::vector<int> out;
    out.reserve(fds.size());
    for (const auto& f : fds) out.push_back(f.get());
    return out;
  }
};

// Sends one message. Throws EOFError if the peer is gone (no SIGPIPE).
void send_message(int sock, std::span<const std::byte> bytes, std::span<const int> fds = {});

// Appends one message without descriptors to `out`, framed as send_message
// frames it: several can then leave in one send_framed() call (and arrive
// as separate messages).
void frame_message(Writer& out, std::span<const std::byte> bytes);
// Sends bytes framed by frame_message. Throws like send_message.
void send_framed(int sock, std::span<const std::byte> framed);

// With a BulkRing (detail/bulk_ring.hpp; pool workers and their pool): a
// body that suits the ring is copied into it, and the socket carries a bulk
// frame (the descriptor count kBulkFrame, a BulkRef body) instead. Messages
// with descriptors always go whole through the socket.
inline constexpr std::uint32_t kBulkFrame = 0x80000000u;
void send_message(int sock, std::span<const std::byte> bytes, std::span<const int> fds, BulkRing& ring);

// Receives one message. Throws EOFError on a clean end of stream before a
// header, SerializationError on a malformed header or a message larger than
// `max_bytes`, mproc::Error on other failures.
Message recv_message(int sock, std::size_t max_bytes = std::size_t{1} << 40);
// The same into `m`, reusing its buffer (a loop receiving many messages
// allocates only when one is bigger than any before).
void recv_message_into(int sock, Message& m, std::size_t max_bytes = std::size_t{1} << 40);
// The same, taking the bodies of bulk frames out of `ring` (a bulk frame
// without a ring is a SerializationError).
void recv_message_into(int sock, Message& m, BulkRing& ring, std::size_t max_bytes = std::size_t{1} << 40);

// Reads the messages of one socket that has one reader (either end of a
// pool worker's socket, for the messages that MailLink sends through it),
// several per system call: each
// recvmsg takes whatever has arrived, up to 64 KiB, and the messages in it
// are handed out one by one. A stream of small messages then costs one
// system call per batch instead of two per message, and has_message() says
// without a system call whether another one is already here. (Not for
// Connections: two readers of one end must not read ahead of each other.)
//
// Descriptors arrive with the first byte of the message that carries them
// (the kernel never merges them across sends), so they queue in arrival
// order and each message takes as many as its header announces. Bodies
// larger than the buffer are read straight into the message, as by
// recv_message_into.
class MessageReader {
 public:
  explicit MessageReader(int sock) noexcept : sock_(sock) {}

  // The next message (blocking until it is complete), bulk frames taken out
  // of `ring` when there is one; with `borrow`, a bulk body is not copied
  // but read in place (Message::borrowed) until the next call. Throws like
  // recv_message_into.
  void next(Message& m, BulkRing* ring = nullptr, std::size_t max_bytes = std::size_t{1} << 40,
            bool borrow = false);
  // Whether a whole message is already buffered (next() will not block).
  bool has_message() const noexcept;
  // Whether any byte is buffered (a partial message: the peer is mid-send).
  bool has_bytes() const noexcept { return end_ != begin_; }

 private:
  static constexpr std::size_t kChunk = std::size_t{64} << 10;
  // Reads once more (blocking); false at end of stream.
  bool fill();
  void need(std::size_t n);

  int sock_;
  ByteBuffer buf_;
  std::size_t begin_ = 0, end_ = 0;  // buffered bytes: buf_[begin_, end_)
  std::vector<UniqueFd> fds_;         // arrived, not yet taken by a message
  std::size_t fds_begin_ = 0;
};

}  // namespace mproc::detail
