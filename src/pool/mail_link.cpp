// mail_link.cpp: one end of a pool's link to a worker
// (detail/mail_link.hpp).

#include "mproc/detail/mail_link.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

// Whether the other end of `sock` has closed it.
bool hung_up(int sock) {
  pollfd p{sock, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

[[noreturn]] void too_big(std::size_t n, std::size_t max) {
  throw SerializationError("mproc: message of " + std::to_string(n) + " bytes exceeds the limit of " +
                           std::to_string(max));
}

}  // namespace

void ring_bell(int bell) noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(bell, &one, sizeof one);
}

void drain_bell(int bell) noexcept {
  std::uint64_t v;
  [[maybe_unused]] ssize_t n = ::read(bell, &v, sizeof v);
}

void MailLink::wake(Peer peer) noexcept {
  // Pairs with begin_sleep() + has_message_after_announce(): our frame is
  // published before this fence, the peer's "sleeping" before its last look.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (peer.sleeping->load(std::memory_order_relaxed) != 0 && peer.sleeping->exchange(0) != 0) ring_bell(peer.bell);
}

void MailLink::put_or_wait(MailRing::Kind kind, std::span<const std::byte> body) {
  // A `socket` frame always fits while the reader keeps up with a few
  // dozen messages (mail_ring.hpp); otherwise wait for it, as a full socket
  // would make us wait.
  while (!out_.put(kind, body)) {
    if (hung_up(sock_)) throw EOFError("mproc: peer closed the connection");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void MailLink::send(std::span<const std::byte> bytes, std::span<const int> fds) {
  if (fds.empty()) {
    if (bytes.size() <= MailRing::kMaxInline && out_.put(MailRing::Kind::inline_body, bytes)) {
      wake(peer_);
      return;
    }
    if (out_.room_for(sizeof(BulkRef))) {
      if (const std::optional<BulkRef> ref = out_bulk_.put(bytes)) {
        out_.put(MailRing::Kind::bulk, std::as_bytes(std::span(&*ref, 1)));  // room_for() said it fits
        wake(peer_);
        return;
      }
    }
  }
  // Through the socket; the frame first, so that the reader starts reading
  // while we write (a message bigger than the socket's buffer needs that).
  put_or_wait(MailRing::Kind::socket, {});
  wake(peer_);
  send_message(sock_, bytes, fds);
}

bool MailLink::try_next(Message& m, std::size_t max_bytes, bool borrow) {
  // The body borrowed last time is done with: its room goes back now, not
  // when the next message comes, so that the sender finds the ring empty
  // and reuses its first (warm) pages.
  m.borrowed = {};
  in_bulk_.release();
  MailRing::Frame f;
  if (!in_.peek(f)) return false;
  m.fds.clear();
  switch (f.kind) {
    case MailRing::Kind::inline_body:
      if (f.body.size() > max_bytes) too_big(f.body.size(), max_bytes);
      m.bytes.resize(f.body.size());
      if (!f.body.empty()) std::memcpy(m.bytes.data(), f.body.data(), f.body.size());
      in_.pop();
      return true;
    case MailRing::Kind::bulk: {
      if (f.body.size() != sizeof(BulkRef)) throw SerializationError("mproc: malformed message: a bulk frame");
      BulkRef ref;
      std::memcpy(&ref, f.body.data(), sizeof ref);
      in_.pop();
      if (ref.length > max_bytes) too_big(static_cast<std::size_t>(ref.length), max_bytes);
      m.bytes.clear();
      if (borrow) {
        m.borrowed = in_bulk_.view(ref);
      } else {
        in_bulk_.take(ref, m.bytes);
      }
      return true;
    }
    default:  // socket (peek() admits no other kind)
      in_.pop();
      reader_.next(m, &in_bulk_, max_bytes, borrow);
      return true;
  }
}

void MailLink::next(Message& m, AdaptiveSpin& spin, int bell, bool borrow) {
  for (;;) {
    if (try_next(m, std::size_t{1} << 40, borrow)) return;
    if (spin.until([&] { return in_.has_frame(); })) continue;
    std::atomic<std::uint32_t>& sleeping = in_.sleeping();
    begin_sleep(sleeping);
    if (!has_message_after_announce()) {
      // The bell, or the pool's end of the socket closing (POLLRDHUP and
      // POLLHUP; data on the socket always follows a frame, which rings).
      pollfd p[2] = {{bell, POLLIN, 0}, {sock_, POLLRDHUP, 0}};
      const int r = ::poll(p, 2, -1);
      if (r < 0 && errno != EINTR) throw_errno("mproc: pool worker: poll");
      sleeping.store(0, std::memory_order_relaxed);
      spin.woke();
      if (r > 0 && (p[0].revents & POLLIN) != 0) drain_bell(bell);
      if (r > 0 && (p[1].revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0 && !in_.has_frame()) {
        throw EOFError("mproc: the pool closed the connection");
      }
    } else {
      sleeping.store(0, std::memory_order_relaxed);
    }
  }
}

}  // namespace mproc::detail
