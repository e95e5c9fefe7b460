// wire.cpp: length-prefixed messages with SCM_RIGHTS descriptors
// (detail/wire.hpp).

#include "mproc/detail/wire.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>

#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kMaxFds = kFdsPerSendmsg;

struct Header {
  std::uint64_t length;
  std::uint32_t nfds;
} __attribute__((packed));

void send_all(int sock, const std::byte* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = retry_eintr([&] { return ::send(sock, p, n, MSG_NOSIGNAL); });
    if (w < 0) {
      if (errno == EPIPE || errno == ECONNRESET) throw EOFError("mproc: peer closed the connection");
      throw_errno("mproc: send");
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

void send_message(int sock, std::span<const std::byte> bytes, std::span<const int> fds) {
  Header h{bytes.size(), static_cast<std::uint32_t>(fds.size())};
  const std::size_t ahead = send_fds_ahead(sock, std::as_bytes(std::span(&h, 1)), fds, "mproc: sendmsg");
  iovec iov[2] = {{reinterpret_cast<char*>(&h) + ahead, sizeof h - ahead},
                  {const_cast<std::byte*>(bytes.data()), bytes.size()}};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = bytes.empty() ? 1 : 2;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const ssize_t w = retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL); });
  if (w < 0) {
    if (errno == EPIPE || errno == ECONNRESET) throw EOFError("mproc: peer closed the connection");
    throw_errno("mproc: sendmsg");
  }
  // The descriptors went with the first byte; finish the rest plainly.
  std::size_t sent = ahead + static_cast<std::size_t>(w);
  if (sent < sizeof h) {
    send_all(sock, reinterpret_cast<const std::byte*>(&h) + sent, sizeof h - sent);
    sent = sizeof h;
  }
  const std::size_t body_sent = sent - sizeof h;
  send_all(sock, bytes.data() + body_sent, bytes.size() - body_sent);
}

void send_message(int sock, std::span<const std::byte> bytes, std::span<const int> fds, BulkRing& ring) {
  if (fds.empty()) {
    if (const std::optional<BulkRef> ref = ring.put(bytes)) {
      const Header h{sizeof(BulkRef), kBulkFrame};
      std::byte frame[sizeof h + sizeof(BulkRef)];
      std::memcpy(frame, &h, sizeof h);
      std::memcpy(frame + sizeof h, &*ref, sizeof(BulkRef));
      send_all(sock, frame, sizeof frame);
      return;
    }
  }
  send_message(sock, bytes, fds);
}

namespace {

// One recvmsg of up to `n` bytes into `p`; the descriptors that came with
// them (SCM_RIGHTS) are appended to `fds`. Returns the byte count (0 at end
// of stream); -1 with errno set on failure.
ssize_t recv_with_fds(int sock, void* p, std::size_t n, std::vector<UniqueFd>& fds) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{p, n};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t r = retry_eintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
  if (r < 0) return r;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < k; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds.emplace_back(fd);
      }
    }
  }
  return r;
}

[[noreturn]] void too_big(std::uint64_t n, std::size_t max_bytes) {
  throw SerializationError("mproc: message of " + std::to_string(n) + " bytes exceeds the limit of " +
                           std::to_string(max_bytes));
}

// Reads the rest of a body of `length` bytes whose first `have` bytes are
// in m.bytes already.
void recv_body_rest(int sock, Message& m, std::size_t have, std::uint64_t length) {
  // Grow with what has arrived, never with what the header promises beyond
  // kTrusted: a garbage header cannot make this allocate more than that
  // before the bytes exist. Up to kTrusted, one allocation (or none, when
  // the buffer is reused) instead of a copy at every doubling.
  constexpr std::size_t kTrusted = std::size_t{16} << 20;
  if (m.bytes.capacity() < std::min(length, std::uint64_t{kTrusted})) {
    m.bytes.reserve(std::min(length, std::uint64_t{kTrusted}));
  }
  while (have < length) {
    const std::size_t room = std::max<std::size_t>({m.bytes.capacity(), have * 2, std::size_t{1} << 16});
    const std::size_t want = std::min<std::size_t>(length, room) - have;
    // Uninitialised: the bytes land there next (ByteBuffer).
    if (m.bytes.size() < have + want) m.bytes.resize(have + want);
    const ssize_t r = retry_eintr([&] { return ::recv(sock, m.bytes.data() + have, want, 0); });
    if (r < 0) {
      if (errno == ECONNRESET) throw EOFError("mproc: peer closed the connection mid-message");
      throw_errno("mproc: recv");
    }
    if (r == 0) throw EOFError("mproc: peer closed the connection mid-message");
    have += static_cast<std::size_t>(r);
  }
  m.bytes.resize(have);
}

void receive(int sock, Message& m, std::size_t max_bytes, BulkRing* ring) {
  m.fds.clear();
  m.bytes.clear();  // keeps its capacity for this message
  Header h{};
  std::size_t got = 0;
  while (got < sizeof h) {
    const ssize_t r = recv_with_fds(sock, reinterpret_cast<char*>(&h) + got, sizeof h - got, m.fds);
    if (r < 0) {
      if (errno == ECONNRESET) throw EOFError("mproc: peer closed the connection");
      throw_errno("mproc: recvmsg");
    }
    if (r == 0) {
      if (got == 0) throw EOFError("mproc: end of stream");
      throw SerializationError("mproc: truncated message header");
    }
    got += static_cast<std::size_t>(r);
  }
  if (h.nfds == kBulkFrame && m.fds.empty()) {
    if (ring == nullptr || h.length != sizeof(BulkRef)) {
      throw SerializationError("mproc: malformed message: an unexpected shared-memory frame");
    }
    BulkRef ref;
    std::size_t have = 0;
    while (have < sizeof ref) {
      const ssize_t r = retry_eintr(
          [&] { return ::recv(sock, reinterpret_cast<char*>(&ref) + have, sizeof ref - have, 0); });
      if (r < 0 && errno != ECONNRESET) throw_errno("mproc: recv");
      if (r <= 0) throw EOFError("mproc: peer closed the connection mid-message");
      have += static_cast<std::size_t>(r);
    }
    if (ref.length > max_bytes) too_big(ref.length, max_bytes);
    ring->take(ref, m.bytes);
    return;
  }
  if (h.nfds != m.fds.size()) {
    throw SerializationError("mproc: malformed message: header announces " +
                             std::to_string(h.nfds) + " descriptors, " +
                             std::to_string(m.fds.size()) + " arrived");
  }
  if (h.length > max_bytes) too_big(h.length, max_bytes);
  recv_body_rest(sock, m, 0, h.length);
}

}  // namespace

void recv_message_into(int sock, Message& m, std::size_t max_bytes) { receive(sock, m, max_bytes, nullptr); }

void recv_message_into(int sock, Message& m, BulkRing& ring, std::size_t max_bytes) {
  receive(sock, m, max_bytes, &ring);
}

void frame_message(Writer& out, std::span<const std::byte> bytes) {
  const Header h{bytes.size(), 0};
  out.write(&h, sizeof h);
  out.write(bytes.data(), bytes.size());
}

void send_framed(int sock, std::span<const std::byte> framed) { send_all(sock, framed.data(), framed.size()); }

Message recv_message(int sock, std::size_t max_bytes) {
  Message m;
  recv_message_into(sock, m, max_bytes);
  return m;
}


// ------------------------------------------------------------ MessageReader ---

bool MessageReader::fill() {
  if (buf_.size() < kChunk) buf_.resize(kChunk);
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (end_ == buf_.size()) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  const ssize_t r = recv_with_fds(sock_, buf_.data() + end_, buf_.size() - end_, fds_);
  if (r < 0) {
    if (errno == ECONNRESET) return false;
    throw_errno("mproc: recvmsg");
  }
  end_ += static_cast<std::size_t>(r);
  return r > 0;
}

// Makes `n` bytes (at most kChunk) available at begin_.
void MessageReader::need(std::size_t n) {
  if (begin_ + n > kChunk && begin_ != 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  while (end_ - begin_ < n) {
    if (!fill()) throw EOFError("mproc: peer closed the connection mid-message");
  }
}

bool MessageReader::has_message() const noexcept {
  Header h;
  if (end_ - begin_ < sizeof h) return false;
  std::memcpy(&h, buf_.data() + begin_, sizeof h);
  const std::uint64_t body = h.nfds == kBulkFrame ? sizeof(BulkRef) : h.length;
  return body <= kChunk && end_ - begin_ - sizeof h >= body;
}

void MessageReader::next(Message& m, BulkRing* ring, std::size_t max_bytes, bool borrow) {
  m.fds.clear();
  m.bytes.clear();
  m.borrowed = {};
  if (ring != nullptr) ring->release();  // the body borrowed last time
  Header h;
  while (end_ - begin_ < sizeof h) {
    const bool empty = end_ == begin_;
    if (!fill()) {
      if (empty && end_ == begin_) throw EOFError("mproc: end of stream");
      throw SerializationError("mproc: truncated message header");
    }
  }
  std::memcpy(&h, buf_.data() + begin_, sizeof h);
  begin_ += sizeof h;
  if (h.nfds == kBulkFrame) {
    if (ring == nullptr || h.length != sizeof(BulkRef)) {
      throw SerializationError("mproc: malformed message: an unexpected shared-memory frame");
    }
    need(sizeof(BulkRef));
    BulkRef ref;
    std::memcpy(&ref, buf_.data() + begin_, sizeof ref);
    begin_ += sizeof ref;
    if (ref.length > max_bytes) too_big(ref.length, max_bytes);
    if (borrow) {
      m.borrowed = ring->view(ref);
    } else {
      ring->take(ref, m.bytes);
    }
    return;
  }
  // This message's descriptors came with its header's bytes (send_fds_ahead):
  // they are queued.
  const std::size_t queued = fds_.size() - fds_begin_;
  if (h.nfds > queued) {
    throw SerializationError("mproc: malformed message: header announces " + std::to_string(h.nfds) +
                             " descriptors, " + std::to_string(queued) + " arrived");
  }
  for (std::uint32_t i = 0; i < h.nfds; ++i) m.fds.push_back(std::move(fds_[fds_begin_++]));
  if (fds_begin_ == fds_.size()) {
    fds_.clear();
    fds_begin_ = 0;
  }
  if (h.length > max_bytes) too_big(h.length, max_bytes);
  if (h.length <= kChunk) {
    need(static_cast<std::size_t>(h.length));
    m.bytes.resize(static_cast<std::size_t>(h.length));
    if (h.length != 0) std::memcpy(m.bytes.data(), buf_.data() + begin_, static_cast<std::size_t>(h.length));
    begin_ += static_cast<std::size_t>(h.length);
    return;
  }
  // A big body: what is buffered, then straight from the socket.
  const std::size_t have = end_ - begin_;
  m.bytes.resize(have);
  if (have != 0) std::memcpy(m.bytes.data(), buf_.data() + begin_, have);
  begin_ = end_ = 0;
  recv_body_rest(sock_, m, have, h.length);
}

}  // namespace mproc::detail
