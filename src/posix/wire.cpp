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

constexpr std::size_t kMaxFds = 250;  // below the kernel's SCM_MAX_FD (253)

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
  if (fds.size() > kMaxFds) throw Error("mproc: too many handles in one message");
  Header h{bytes.size(), static_cast<std::uint32_t>(fds.size())};
  iovec iov[2] = {{&h, sizeof h},
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
  std::size_t sent = static_cast<std::size_t>(w);
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

void receive(int sock, Message& m, std::size_t max_bytes, BulkRing* ring) {
  m.fds.clear();
  m.bytes.clear();  // keeps its capacity for this message
  Header h{};
  std::size_t got = 0;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  while (got < sizeof h) {
    iovec iov{reinterpret_cast<char*>(&h) + got, sizeof h - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t r = retry_eintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
    if (r < 0) {
      if (errno == ECONNRESET) throw EOFError("mproc: peer closed the connection");
      throw_errno("mproc: recvmsg");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < n; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          m.fds.emplace_back(fd);
        }
      }
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
    if (ref.length > max_bytes) {
      throw SerializationError("mproc: message of " + std::to_string(ref.length) + " bytes exceeds the limit of " +
                               std::to_string(max_bytes));
    }
    ring->take(ref, m.bytes);
    return;
  }
  if (h.nfds != m.fds.size()) {
    throw SerializationError("mproc: malformed message: header announces " +
                             std::to_string(h.nfds) + " descriptors, " +
                             std::to_string(m.fds.size()) + " arrived");
  }
  if (h.length > max_bytes) {
    throw SerializationError("mproc: message of " + std::to_string(h.length) +
                             " bytes exceeds the limit of " + std::to_string(max_bytes));
  }
  // Grow with what has arrived, never with what the header promises beyond
  // kTrusted: a garbage header cannot make this allocate more than that
  // before the bytes exist. Up to kTrusted, one allocation (or none, when
  // the buffer is reused) instead of a copy at every doubling.
  constexpr std::size_t kTrusted = std::size_t{16} << 20;
  if (m.bytes.capacity() < std::min(h.length, std::uint64_t{kTrusted})) {
    m.bytes.reserve(std::min(h.length, std::uint64_t{kTrusted}));
  }
  std::size_t have = 0;
  while (have < h.length) {
    const std::size_t room = std::max<std::size_t>({m.bytes.capacity(), have * 2, std::size_t{1} << 16});
    const std::size_t want = std::min<std::size_t>(h.length, room) - have;
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

}  // namespace mproc::detail
