// detail/mail_link.hpp: one end of the link between a pool and one of its
// worker processes.
//
// Every message goes, in order, through the link's MailRing for that
// direction (detail/mail_ring.hpp), in shared memory:
//  - a message of up to 64 KiB without descriptors is copied into the ring;
//  - a bigger one goes into the link's BulkRing (detail/bulk_ring.hpp) and
//    the ring gets a frame saying where;
//  - one with descriptors (or one that found no room) goes through the
//    link's Unix socket, and the ring gets a frame saying so.
// A sender wakes the other end only if it sleeps: each end announces in a
// shared word that it is about to sleep, looks once more, and then sleeps
// on an eventfd (its *bell*); the sender publishes its frame and then looks
// at that word (both sequentially consistent, so at least one of them sees
// the other: no wake-up is lost), and rings the bell only for a sleeper.
// While work flows, a message costs two memcpys and no system call; a
// waiting end spins a little before it sleeps (detail/spin.hpp).
//
// The worker's end sleeps in next(); the pool's end is one of many that the
// pool's supervisor watches (src/pool/process_transport.cpp), so the pool
// has one sleeping word and one bell for all its workers.
//
// A peer that died mid-send published nothing of the message it was
// writing; the pool resets a slot's rings before its next worker starts.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "mproc/detail/bulk_ring.hpp"
#include "mproc/detail/mail_ring.hpp"
#include "mproc/detail/spin.hpp"
#include "mproc/detail/wire.hpp"

namespace mproc::detail {

class MailLink {
 public:
  // How to wake the other end: its sleeping word and its bell (an eventfd).
  struct Peer {
    std::atomic<std::uint32_t>* sleeping = nullptr;
    int bell = -1;
  };

  MailLink() = default;
  MailLink(int sock, MailRing in, MailRing out, BulkRing in_bulk, BulkRing out_bulk, Peer peer) noexcept
      : sock_(sock), reader_(sock), in_(in), out_(out), in_bulk_(in_bulk), out_bulk_(out_bulk), peer_(peer) {}

  // Sends one message. Throws EOFError if it had to go through the socket
  // and the peer is gone.
  void send(std::span<const std::byte> bytes, std::span<const int> fds = {});

  // Whether a message has arrived (one load; no system call).
  bool has_message() const noexcept { return in_.has_frame(); }
  // The next message if one has arrived: false if none. With `borrow` a
  // body in the BulkRing is read in place (Message::borrowed) until the next
  // call. A message that went through the socket is read from it (it is
  // under way: the frame is written before the send). Throws EOFError if
  // the socket ended there, SerializationError on malformed input.
  bool try_next(Message& m, std::size_t max_bytes = std::size_t{1} << 40, bool borrow = false);

  // The worker's end: the next message, spinning with `spin` and then
  // sleeping on `bell` (this end's eventfd) until it comes. Throws EOFError
  // once the pool's end of the socket is closed and nothing is left.
  void next(Message& m, AdaptiveSpin& spin, int bell, bool borrow = false);

  // Announces that this end is about to sleep: after begin_sleep() the
  // caller looks for messages once more (has_message_after_announce())
  // and sleeps only if there are none; end_sleep() when awake again.
  static void begin_sleep(std::atomic<std::uint32_t>& sleeping) noexcept {
    sleeping.store(1, std::memory_order_seq_cst);
  }
  bool has_message_after_announce() const noexcept { return in_.has_frame_seq_cst(); }

  // Rings `peer`'s bell if it sleeps (after something it waits for was
  // published by this thread).
  static void wake(Peer peer) noexcept;

 private:
  void put_or_wait(MailRing::Kind kind, std::span<const std::byte> body);

  int sock_ = -1;
  MessageReader reader_{-1};
  MailRing in_, out_;
  BulkRing in_bulk_, out_bulk_;
  Peer peer_;
};

// Reads what an eventfd holds (non-blocking), so that it can wake its
// owner again.
void drain_bell(int bell) noexcept;
// Adds one to an eventfd.
void ring_bell(int bell) noexcept;

}  // namespace mproc::detail
