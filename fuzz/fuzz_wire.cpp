// fuzz_wire.cpp: libFuzzer target for the message framing
// (detail::recv_message, detail/wire.hpp).
//
// Every byte a process reads from a socket (child frames, pool tasks and
// results, Connection messages) is framed by recv_message. Here the fuzz
// input is written into one end of a Unix stream socket pair, that end is
// closed, and recv_message reads from the other with a small max_bytes. The
// promise under test: a header that lies (about the length, the descriptor
// count) or a stream that ends early gives EOFError or SerializationError,
// never a crash, a hang, a leaked descriptor, an allocation bigger than what
// arrived, or any other exception.
//
// The first input byte chooses how many descriptors (0-3, copies of
// /dev/null) ride along with the bytes as SCM_RIGHTS, so that the
// "header announces N descriptors, M arrived" path is exercised too, and
// (bit 2) whether the reader has a BulkRing (detail/bulk_ring.hpp) of
// 128 KiB: then bulk frames (descriptor count kBulkFrame, a 16-byte
// position and length) are taken from it, and a frame that points anywhere
// but at the ring's next body must be a SerializationError, never a read
// outside the ring; and (bit 3) whether the messages are read by a
// MessageReader (several per system call, descriptors queued) instead of
// one recv_message_into each. Up to three messages are read from one
// stream, as a real reader would.
//
// Bit 5 switches to the pool's shared-memory mail (detail/mail_ring.hpp,
// detail/mail_link.hpp): the input is then a MailRing's memory as a peer
// could leave it, and a published head. Layout after the first byte:
// u64 head (relative to where the reader starts), u32 start (in units of
// 8 bytes, modulo the ring: valid frames written by the harness bring the
// reader there first, so that the input's frames can lie at the end of the
// ring and wrap), then, with bit 6, u16 k and k bytes written into the
// link's socket (with the descriptors of bits 0-1, as above), and the rest:
// the ring's bytes from `start` on, continuing at the ring's start. Without
// bit 6 the frames are read with MailRing::peek()/pop() until there are
// none or SerializationError; with bit 6 by MailLink::try_next over a
// BulkRing of 256 KiB (bulk frames may point anywhere; bit 4: borrowed),
// until false, EOFError or SerializationError. Either must never read
// outside the ring (it is exactly as big as its memory), hand out a body
// outside it or bigger than the limit, leak, or throw anything else.
//
// Seeds: fuzz/corpus/fuzz_wire/ (regenerate with
// MPROC_FUZZ_WRITE_SEEDS=<dir> ./fuzz_wire).

#include <mproc/detail/bulk_ring.hpp>
#include <mproc/detail/mail_link.hpp>
#include <mproc/detail/mail_ring.hpp>
#include <mproc/detail/wire.hpp>
#include <mproc/errors.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kMaxBytes = 4096;          // recv_message's limit under test
constexpr std::size_t kMaxInput = 64 * 1024;     // stays below the socket buffer
constexpr std::size_t kRingBytes = 128 * 1024;   // the reader's BulkRing, when it has one
// Mail modes: the smallest MailRing capacity its constructor admits, a
// BulkRing whose bodies (up to 128 KiB) may exceed the link's limit.
constexpr std::size_t kMailBytes = 256 * 1024;
constexpr std::size_t kMailBulkBytes = 256 * 1024;
constexpr std::size_t kLinkMaxBytes = 100000;
static_assert(kMailBytes >= 2 * (mproc::detail::MailRing::kMaxInline + mproc::detail::MailRing::kReserve));

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_wire: %s\n", what);
  std::abort();
}

// The lowest free descriptor number: if it changes between runs, a
// descriptor leaked.
int lowest_free_fd() {
  const int fd = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) bug("fcntl(F_DUPFD_CLOEXEC) failed");
  ::close(fd);
  return fd;
}

// Writes `bytes` into `sock` as one sendmsg carrying `nfds` descriptors.
void send_raw(int sock, const std::uint8_t* bytes, std::size_t n, int nfds, int devnull) {
  iovec iov{const_cast<std::uint8_t*>(bytes), n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 3)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    for (int i = 0; i < nfds; ++i) std::memcpy(CMSG_DATA(c) + i * sizeof(int), &devnull, sizeof(int));
  }
  // Data and descriptors need at least one byte to travel.
  if (n == 0 && nfds == 0) return;
  static std::uint8_t zero = 0;
  if (n == 0) iov = {&zero, 1};
  if (::sendmsg(sock, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(iov.iov_len)) bug("sendmsg failed");
}

void write_seed(const char* dir, const char* name, std::uint8_t nfds, std::uint64_t length,
                std::uint32_t announced_fds, const std::string& body) {
  std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
  out.put(static_cast<char>(nfds));
  out.write(reinterpret_cast<const char*>(&length), sizeof length);
  out.write(reinterpret_cast<const char*>(&announced_fds), sizeof announced_fds);
  out.write(body.data(), static_cast<std::streamsize>(body.size()));
}

// Mail modes (bit 5): see the file comment for the layout.
std::string mail_frame(mproc::detail::MailRing::Kind kind, const std::string& body, std::uint32_t length) {
  std::string f(8, '\0');
  const auto k = static_cast<std::uint32_t>(kind);
  std::memcpy(f.data(), &length, 4);
  std::memcpy(f.data() + 4, &k, 4);
  f += body;
  f.resize(8 + ((body.size() + 7) & ~std::size_t{7}), '\0');
  return f;
}
std::string mail_frame(mproc::detail::MailRing::Kind kind, const std::string& body) {
  return mail_frame(kind, body, static_cast<std::uint32_t>(body.size()));
}

void write_mail_seed(const char* dir, const char* name, std::uint8_t mode, std::uint64_t head, std::uint32_t start,
                     const std::string& socket_bytes, const std::string& ring) {
  std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
  out.put(static_cast<char>(mode));
  out.write(reinterpret_cast<const char*>(&head), sizeof head);
  out.write(reinterpret_cast<const char*>(&start), sizeof start);
  if ((mode & 64) != 0) {
    const auto k = static_cast<std::uint16_t>(socket_bytes.size());
    out.write(reinterpret_cast<const char*>(&k), sizeof k);
    out.write(socket_bytes.data(), static_cast<std::streamsize>(socket_bytes.size()));
  }
  out.write(ring.data(), static_cast<std::streamsize>(ring.size()));
}

void write_mail_seeds(const char* dir) {
  using Kind = mproc::detail::MailRing::Kind;
  std::string bulk_ref(16, '\0');
  const std::uint64_t position = 0, length = 70000;
  std::memcpy(bulk_ref.data(), &position, 8);
  std::memcpy(bulk_ref.data() + 8, &length, 8);
  // From the ring's start: inline, socket, bulk, then a wrap frame up to
  // the head, which is the end of the lap.
  const std::string frames = mail_frame(Kind::inline_body, "hello") + mail_frame(Kind::socket, "") +
                             mail_frame(Kind::bulk, bulk_ref) + mail_frame(Kind::wrap, "");
  write_mail_seed(dir, "mail_ring_frames", 32, kMailBytes, 0, "", frames);
  // From 24 bytes before the end: a frame, a wrap frame in the last 8
  // bytes, and a socket frame at the start of the next lap.
  write_mail_seed(dir, "mail_ring_wrap_at_end", 32, 32, (kMailBytes - 24) / 8, "",
                  mail_frame(Kind::inline_body, "hello") + mail_frame(Kind::wrap, "") + mail_frame(Kind::socket, ""));
  // Through a MailLink, bodies borrowed (bit 4), one descriptor on the
  // socket: inline, bulk, a socket frame whose message (3 bytes, 1
  // descriptor) is on the socket, inline.
  std::string message(12, '\0');
  const std::uint64_t three = 3;
  const std::uint32_t one = 1;
  std::memcpy(message.data(), &three, 8);
  std::memcpy(message.data() + 8, &one, 4);
  message += "abc";
  const std::string link_frames = mail_frame(Kind::inline_body, "hi") + mail_frame(Kind::bulk, bulk_ref) +
                                  mail_frame(Kind::socket, "") + mail_frame(Kind::inline_body, "end");
  write_mail_seed(dir, "mail_link_mixed", 32 | 64 | 16 | 1, link_frames.size(), 0, message, link_frames);
}

void write_seeds(const char* dir) {
  write_seed(dir, "hello", 0, 5, 0, "hello");
  write_seed(dir, "empty_body", 0, 0, 0, "");
  write_seed(dir, "with_fd", 1, 3, 1, "abc");
  write_seed(dir, "two_fds", 2, 1, 2, "x");
  write_seed(dir, "fd_mismatch", 1, 2, 0, "hi");
  write_seed(dir, "too_long", 0, 1u << 20, 0, "short");
  write_seed(dir, "truncated", 0, 10, 0, "abc");
  // Two messages back to back.
  std::string second(12, '\0');
  const std::uint64_t len2 = 2;
  std::memcpy(second.data(), &len2, sizeof len2);
  write_seed(dir, "two_messages", 0, 1, 0, "a" + second + "bc");
  // Bulk frames (with a ring: first byte 4): the ring's first body, then
  // one that skips to the next lap, and one that points past the ring.
  auto ref = [](std::uint64_t position, std::uint64_t length) {
    std::string r(16, '\0');
    std::memcpy(r.data(), &position, 8);
    std::memcpy(r.data() + 8, &length, 8);
    return r;
  };
  std::string next(12, '\0');
  const std::uint64_t len16 = 16;
  const std::uint32_t bulk = mproc::detail::kBulkFrame;
  std::memcpy(next.data(), &len16, 8);
  std::memcpy(next.data() + 8, &bulk, 4);
  write_seed(dir, "bulk_first", 4, 16, bulk, ref(0, 100));
  write_seed(dir, "bulk_next_lap", 4, 16, bulk, ref(0, 100) + next + ref(kRingBytes, 5000));
  write_seed(dir, "bulk_outside", 4, 16, bulk, ref(kRingBytes - 10, 100));
  write_seed(dir, "bulk_without_ring", 0, 16, bulk, ref(0, 100));
  // The same streams through a MessageReader (first byte + 8).
  write_seed(dir, "reader_two_messages", 8, 1, 0, "a" + second + "bc");
  write_seed(dir, "reader_with_fd", 9, 3, 1, "abc");
  write_seed(dir, "reader_bulk_next_lap", 12, 16, bulk, ref(0, 100) + next + ref(kRingBytes, 5000));
  write_seed(dir, "reader_borrowed_bulk", 28, 16, bulk, ref(0, 100) + next + ref(128, 300));
  write_mail_seeds(dir);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("MPROC_FUZZ_WRITE_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

namespace {

// Takes `n` bytes (fewer if the input ends) as a little-endian number.
std::uint64_t take(const std::uint8_t*& p, const std::uint8_t* end, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n && p < end; ++i, ++p) v |= std::uint64_t{*p} << (8 * i);
  return v;
}

volatile unsigned body_sum = 0;  // what check_body() reads goes here, so it is not optimised away

// Touches every byte of `body` (so that ASan checks that it lies in
// memory it may read) and checks that it lies inside [lo, hi).
void check_body(std::span<const std::byte> body, const std::byte* lo, const std::byte* hi) {
  if (!body.empty() && (body.data() < lo || body.data() + body.size() > hi)) bug("a body outside its ring");
  unsigned sum = 0;
  for (const std::byte b : body) sum += static_cast<unsigned>(b);
  body_sum = body_sum + sum;
}

// The mail modes (bit 5; see the file comment).
void fuzz_mail(const std::uint8_t* data, std::size_t size) {
  using mproc::detail::MailRing;
  const std::uint8_t* p = data + 1;
  const std::uint8_t* const end = data + size;
  const bool link = (data[0] & 64) != 0;
  const std::uint64_t head_delta = take(p, end, 8);
  const std::uint64_t start = take(p, end, 4) * 8 % kMailBytes;

  // Exactly as big as the ring: ASan reports any read outside it.
  static std::vector<std::byte> memory(MailRing::kHeaderBytes + kMailBytes);
  std::memset(memory.data(), 0, memory.size());
  auto& shared = *reinterpret_cast<MailRing::Shared*>(memory.data());
  std::byte* const ring = memory.data() + MailRing::kHeaderBytes;

  // Valid inline frames from 0 to `start`, for the reader to take first.
  std::size_t prefix_frames = 0;
  for (std::uint64_t at = 0; at < start; ++prefix_frames) {
    const std::uint64_t n = std::min<std::uint64_t>(start - at - MailRing::kFrameHeader, MailRing::kMaxInline);
    const std::uint32_t words[2] = {static_cast<std::uint32_t>(n),
                                    static_cast<std::uint32_t>(MailRing::Kind::inline_body)};
    std::memcpy(ring + at, words, sizeof words);
    at += MailRing::kFrameHeader + ((n + 7) & ~std::uint64_t{7});
  }
  shared.head.store(start);

  int sv[2] = {-1, -1};
  std::optional<mproc::detail::MailLink> mail_link;
  MailRing reader(memory.data(), kMailBytes);
  static std::vector<std::byte> bulk_memory(mproc::detail::BulkRing::kHeaderBytes + kMailBulkBytes, std::byte{0x5a});
  std::memset(bulk_memory.data(), 0, mproc::detail::BulkRing::kHeaderBytes);
  if (link) {
    const std::size_t k = std::min<std::size_t>(take(p, end, 2), static_cast<std::size_t>(end - p));
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) bug("socketpair failed");
    const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) bug("open /dev/null failed");
    send_raw(sv[0], p, k, data[0] % 4, devnull);
    ::close(devnull);
    ::close(sv[0]);  // the peer is gone: a socket frame without its message must end, not hang
    p += k;
    mail_link.emplace(sv[1], reader, MailRing(), mproc::detail::BulkRing(bulk_memory.data(), kMailBulkBytes),
                      mproc::detail::BulkRing(), mproc::detail::MailLink::Peer{});
    mproc::detail::Message m;
    for (std::size_t i = 0; i < prefix_frames; ++i) {
      if (!mail_link->try_next(m)) bug("the harness's own frames were not read");
    }
  } else {
    MailRing::Frame f{};
    for (std::size_t i = 0; i < prefix_frames; ++i) {
      if (!reader.peek(f)) bug("the harness's own frames were not read");
      reader.pop();
    }
  }
  if (shared.tail.load() != start) bug("the reader did not give back the harness's frames");

  // The input's frames from `start` on, continuing at the ring's start.
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(end - p), kMailBytes);
  const std::size_t first = std::min<std::size_t>(n, kMailBytes - start);
  if (n > 0) std::memcpy(ring + start, p, first);
  if (n > first) std::memcpy(ring, p + first, n - first);
  shared.head.store(start + head_delta);

  if (link) {
    const bool borrow = (data[0] & 16) != 0;
    const std::byte* const bulk_lo = bulk_memory.data() + mproc::detail::BulkRing::kHeaderBytes;
    try {
      mproc::detail::Message m;
      for (int i = 0; i < 100000 && mail_link->try_next(m, kLinkMaxBytes, borrow); ++i) {
        if (m.body().size() > kLinkMaxBytes) bug("a message larger than max_bytes was accepted");
        if (!m.borrowed.empty()) {
          check_body(m.borrowed, bulk_lo, bulk_lo + kMailBulkBytes);
        } else {
          check_body(m.bytes.bytes(), m.bytes.data(), m.bytes.data() + m.bytes.size());
        }
      }
    } catch (const mproc::EOFError&) {
    } catch (const mproc::SerializationError&) {
    }
    mail_link.reset();  // it owns the descriptors its socket reader queued
    ::close(sv[1]);
  } else {
    try {
      MailRing::Frame f{}, again{};
      for (int i = 0; i < 100000 && reader.peek(f); ++i) {
        if (f.kind != MailRing::Kind::inline_body && f.kind != MailRing::Kind::bulk &&
            f.kind != MailRing::Kind::socket) {
          bug("a frame of a kind the reader must not hand out");
        }
        if (f.body.size() > MailRing::kMaxInline) bug("a frame longer than kMaxInline");
        check_body(f.body, ring, ring + kMailBytes);
        if (!reader.peek(again) || again.body.data() != f.body.data() || again.body.size() != f.body.size()) {
          bug("peek() without pop() handed out another frame");
        }
        reader.pop();
      }
    } catch (const mproc::SerializationError&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if ((data[0] & 32) != 0) {
    const int before = lowest_free_fd();
    fuzz_mail(data, size);
    if (lowest_free_fd() != before) bug("a descriptor leaked");
    return 0;
  }
  // Measured at each call, not once: libFuzzer's own descriptors (the
  // corpus it was reading when the first input ran) come and go between
  // calls, and a baseline from the first call once failed a CI run with a
  // "leak" that no single input reproduces.
  const int baseline = lowest_free_fd();
  const int nfds = data[0] % 4;
  const bool with_ring = (data[0] & 4) != 0;
  const bool buffered = (data[0] & 8) != 0;
  const std::uint8_t* body = data + 1;
  const std::size_t n = std::min(size - 1, kMaxInput);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) bug("socketpair failed");
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) bug("open /dev/null failed");
  send_raw(sv[0], body, n, nfds, devnull);
  ::close(devnull);
  ::close(sv[0]);  // the peer is gone: the reader must see the end, not hang

  // Header, then the ring's bytes (a pattern), exactly as big as the ring:
  // ASan reports any read outside it.
  static std::vector<std::byte> ring_memory(mproc::detail::BulkRing::kHeaderBytes + kRingBytes, std::byte{0x5a});
  std::memset(ring_memory.data(), 0, mproc::detail::BulkRing::kHeaderBytes);
  mproc::detail::BulkRing ring(ring_memory.data(), kRingBytes);
  // The reader owns the descriptors it queued: it ends before the leak check.
  std::optional<mproc::detail::MessageReader> reader(std::in_place, sv[1]);
  for (int i = 0; i < 3; ++i) {
    try {
      mproc::detail::Message m;
      if (buffered) {
        // Bit 4: bodies from the ring are borrowed, not copied.
        reader->next(m, with_ring ? &ring : nullptr, kMaxBytes, (data[0] & 16) != 0);
        if (m.body().size() > kMaxBytes) bug("a borrowed body larger than max_bytes was accepted");
      } else if (with_ring) {
        mproc::detail::recv_message_into(sv[1], m, ring, kMaxBytes);
      } else {
        m = mproc::detail::recv_message(sv[1], kMaxBytes);
      }
      if (m.bytes.size() > kMaxBytes) bug("a message larger than max_bytes was accepted");
    } catch (const mproc::EOFError&) {
      break;
    } catch (const mproc::SerializationError&) {
      break;
    }
    // Any other exception propagates: libFuzzer reports it as a crash.
  }
  reader.reset();
  ::close(sv[1]);
  if (lowest_free_fd() != baseline) bug("a descriptor leaked");
  return 0;
}
