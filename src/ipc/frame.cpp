// frame.cpp: the Connection framing (detail/frame.hpp).

#include "mproc/detail/frame.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

// A buffer never grows by more than this ahead of the bytes that arrived
// (and never starts larger), so a forged length is harmless.
constexpr std::size_t kGrowStep = std::size_t{16} << 20;

[[noreturn]] void throw_send_errno(int err) {
  if (err == EPIPE || err == ECONNRESET) throw EOFError("Connection::send: the peer closed the connection");
  throw_errno("Connection::send", err);
}

// Waits for readability when a deadline is set; with none the following
// blocking recv waits by itself.
void await(int fd, Deadline deadline) {
  if (deadline && !poll_readable(fd, deadline)) throw TimeoutError("Connection: timed out waiting for the peer");
}

// One recv of at most n bytes; returns 0 at end of stream.
std::size_t recv_some(int fd, std::byte* out, std::size_t n, Deadline deadline) {
  for (;;) {
    await(fd, deadline);
    const ssize_t r = ::recv(fd, out, n, deadline ? MSG_DONTWAIT : 0);
    if (r >= 0) return static_cast<std::size_t>(r);
    if (errno == EINTR || errno == EAGAIN) continue;
    if (errno == ECONNRESET) return 0;  // the peer died with unread data: same as a close
    throw_errno("Connection::recv");
  }
}

}  // namespace

bool poll_readable(int fd, Deadline deadline) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    timespec ts{};
    const timespec* tsp = nullptr;
    if (deadline) {
      const auto left = *deadline - std::chrono::steady_clock::now();
      const auto ns = std::max<long long>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(left).count());
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      tsp = &ts;
    }
    const int r = ::ppoll(&p, 1, tsp, nullptr);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) throw_errno("mproc: poll");
  }
}

void send_frame(int fd, std::span<const std::byte> body, std::span<const int> fds) {
  FrameHeader h{kFrameMagic, static_cast<std::uint32_t>(fds.size()), body.size()};
  const std::size_t ahead = send_fds_ahead(fd, std::as_bytes(std::span(&h, 1)), fds, "Connection::send");
  iovec iov[2] = {{reinterpret_cast<char*>(&h) + ahead, sizeof h - ahead},
                  {const_cast<std::byte*>(body.data()), body.size()}};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kFrameMaxFds)];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = body.empty() ? 1 : 2;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t w = retry_eintr([&] { return ::sendmsg(fd, &msg, MSG_NOSIGNAL); });
  if (w < 0) throw_send_errno(errno);
  // A large body goes out in several pieces; the descriptors went with the
  // first one. Continue from where the kernel stopped.
  std::size_t sent = ahead + static_cast<std::size_t>(w);
  const std::size_t total = sizeof h + body.size();
  while (sent < total) {
    iovec rest[2];
    int n = 0;
    if (sent < sizeof h) rest[n++] = {reinterpret_cast<char*>(&h) + sent, sizeof h - sent};
    const std::size_t body_sent = sent < sizeof h ? 0 : sent - sizeof h;
    if (body_sent < body.size()) {
      rest[n++] = {const_cast<std::byte*>(body.data()) + body_sent, body.size() - body_sent};
    }
    msghdr m{};
    m.msg_iov = rest;
    m.msg_iovlen = static_cast<std::size_t>(n);
    w = retry_eintr([&] { return ::sendmsg(fd, &m, MSG_NOSIGNAL); });
    if (w < 0) throw_send_errno(errno);
    sent += static_cast<std::size_t>(w);
  }
}

std::optional<FrameHead> recv_frame_head(int fd, std::size_t max_bytes, Deadline deadline) {
  FrameHead head;
  FrameHeader h{};
  std::size_t got = 0;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kFrameMaxFds)];
  bool control_truncated = false;
  while (got < sizeof h) {
    await(fd, deadline);
    iovec iov{reinterpret_cast<char*>(&h) + got, sizeof h - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t r = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | (deadline ? MSG_DONTWAIT : 0));
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ECONNRESET) break;
      throw_errno("Connection::recv");
    }
    // Take ownership of every descriptor first, so none leaks whatever
    // happens next.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < n; ++i) {
          int one;
          std::memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof one);
          head.fds.emplace_back(one);
        }
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) control_truncated = true;
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  if (got == 0) return std::nullopt;
  if (got < sizeof h) throw EOFError("Connection::recv: the peer closed the connection inside a message header");
  if (h.magic != kFrameMagic) {
    throw SerializationError("Connection::recv: malformed frame (bad magic): the stream is out of step");
  }
  if (control_truncated || h.nfds != head.fds.size()) {
    throw SerializationError("Connection::recv: malformed frame: it announces " + std::to_string(h.nfds) +
                             " descriptors, " + std::to_string(head.fds.size()) + " arrived");
  }
  if (h.length > max_bytes) {
    throw SerializationError("Connection::recv: a message of " + std::to_string(h.length) +
                             " bytes exceeds this connection's limit of " + std::to_string(max_bytes));
  }
  head.length = h.length;
  return head;
}

void recv_exact(int fd, std::byte* out, std::size_t n, Deadline deadline) {
  std::size_t have = 0;
  while (have < n) {
    const std::size_t r = recv_some(fd, out + have, n - have, deadline);
    if (r == 0) throw EOFError("Connection::recv: the peer closed the connection in the middle of a message");
    have += r;
  }
}

void recv_body(int fd, std::uint64_t length, ByteBuffer& out, Deadline deadline) {
  std::size_t have = 0;
  out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(length, kGrowStep)));
  while (have < length) {
    if (have == out.size()) {
      // Everything asked for so far has arrived: the peer really is
      // sending this much. Grow geometrically (realloc moves pages, it
      // does not copy them, for blocks this large).
      out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(length, 2 * static_cast<std::uint64_t>(have))));
    }
    const std::size_t r = recv_some(fd, out.data() + have, out.size() - have, deadline);
    if (r == 0) throw EOFError("Connection::recv: the peer closed the connection in the middle of a message");
    have += r;
  }
}

void recv_body(int fd, std::uint64_t length, std::vector<std::byte>& out, Deadline deadline) {
  std::size_t have = 0;
  out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(length, kGrowStep)));
  while (have < length) {
    if (have == out.size()) {
      out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(length, 2 * static_cast<std::uint64_t>(have))));
    }
    const std::size_t r = recv_some(fd, out.data() + have, out.size() - have, deadline);
    if (r == 0) throw EOFError("Connection::recv: the peer closed the connection in the middle of a message");
    have += r;
  }
}

}  // namespace mproc::detail
