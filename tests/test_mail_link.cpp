// test_mail_link.cpp: one end of a pool<->worker link (detail/mail_link.hpp)
// end to end, over shared memory that a forked child sees: inline, bulk and
// descriptor-carrying messages in order with exact bytes, the fall-back to
// the socket when the mail ring is full, the sleep/bell protocol (a lost
// wake-up would hang: every wait here has a watchdog that turns a hang into
// a failure), and the end of the link (EOFError once the peer closed and
// nothing is left). The ring's own rules are in test_mail_ring.cpp; the
// pool's use of the link in test_pool*.cpp.

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/test_support.hpp"
#include "mproc/detail/mail_link.hpp"
#include "mproc/detail/pool_worker.hpp"
#include "mproc/errors.hpp"

namespace {

using mproc::detail::AdaptiveSpin;
using mproc::detail::BulkRing;
using mproc::detail::MailLink;
using mproc::detail::MailRing;
using mproc::detail::Message;
using mproc::detail::PoolLayout;
using mproc::detail::UniqueFd;
using mproc_test::kGuard;
using Kind = MailRing::Kind;

constexpr std::size_t kSmallBulk = std::size_t{1} << 20;  // a bulk ring small enough to fill

UniqueFd checked(int fd, const char* what) {
  if (fd < 0) throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
  return UniqueFd(fd);
}

// Shared memory for both directions of one link, mapped so that a forked
// child shares it: two MailRings (a->b, b->a), then two BulkRings.
class Region {
 public:
  Region(std::size_t mail_bytes, std::size_t bulk_bytes)
      : mail_bytes_(mail_bytes), bulk_bytes_(bulk_bytes),
        bytes_(2 * (MailRing::kHeaderBytes + mail_bytes) + 2 * (BulkRing::kHeaderBytes + bulk_bytes)) {
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    base_ = static_cast<std::byte*>(p);
  }
  ~Region() { ::munmap(base_, bytes_); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  // dir 0: a -> b, dir 1: b -> a.
  std::byte* mail_memory(int dir) const { return base_ + dir * (MailRing::kHeaderBytes + mail_bytes_); }
  MailRing mail(int dir) const { return MailRing(mail_memory(dir), mail_bytes_); }
  BulkRing bulk(int dir) const {
    return BulkRing(base_ + 2 * (MailRing::kHeaderBytes + mail_bytes_) + dir * (BulkRing::kHeaderBytes + bulk_bytes_),
                    bulk_bytes_);
  }
  std::size_t mail_bytes() const { return mail_bytes_; }

  // The head word of direction `dir`: where the next frame goes.
  std::uint64_t head(int dir) const {
    return reinterpret_cast<const MailRing::Shared*>(mail_memory(dir))->head.load();
  }
  // The kinds of the frames published in direction `dir` from position
  // `from` on (wrap frames left out), read straight from the memory.
  std::vector<Kind> kinds(int dir, std::uint64_t from = 0) const {
    const auto& shared = *reinterpret_cast<const MailRing::Shared*>(mail_memory(dir));
    const std::byte* data = mail_memory(dir) + MailRing::kHeaderBytes;
    const std::uint64_t head = shared.head.load();
    std::vector<Kind> out;
    for (std::uint64_t at = from; at < head;) {
      std::uint32_t words[2];
      std::memcpy(words, data + at % mail_bytes_, sizeof words);
      if (static_cast<Kind>(words[1]) == Kind::wrap) {
        at += mail_bytes_ - at % mail_bytes_;
        continue;
      }
      out.push_back(static_cast<Kind>(words[1]));
      at += MailRing::kFrameHeader + ((words[0] + 7u) & ~7u);
    }
    return out;
  }

 private:
  std::size_t mail_bytes_, bulk_bytes_, bytes_;
  std::byte* base_ = nullptr;
};

// Both ends of one link: `a` (the pool's, say) and `b` (the worker's), each
// with its socket and its bell.
struct Link {
  Region region;
  UniqueFd sock_a, sock_b, bell_a, bell_b;
  MailLink a, b;

  explicit Link(std::size_t mail_bytes = PoolLayout::kMailBytes, std::size_t bulk_bytes = kSmallBulk)
      : region(mail_bytes, bulk_bytes) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
    sock_a = UniqueFd(sv[0]);
    sock_b = UniqueFd(sv[1]);
    // Room in the socket for the messages a single-threaded test sends
    // before it reads them (capped by the system, a few hundred KiB).
    const int buf = 4 << 20;
    for (int s : sv) {
      ::setsockopt(s, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
      ::setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    }
    bell_a = checked(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd");
    bell_b = checked(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd");
    MailRing ab = region.mail(0), ba = region.mail(1);
    a = MailLink(sock_a.get(), ba, ab, region.bulk(1), region.bulk(0), MailLink::Peer{&ab.sleeping(), bell_b.get()});
    b = MailLink(sock_b.get(), ab, ba, region.bulk(0), region.bulk(1), MailLink::Peer{&ba.sleeping(), bell_a.get()});
  }
  // b's sleeping word (it sleeps in next() on its incoming ring's word).
  std::atomic<std::uint32_t>& b_sleeping() { return region.mail(0).sleeping(); }
};

std::vector<std::byte> payload(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 131 + seed * 7 + (i >> 8)) & 0xff);
  return b;
}
std::vector<std::byte> bytes_of(const std::string& s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}
bool same(std::span<const std::byte> got, const std::vector<std::byte>& want) {
  return std::equal(got.begin(), got.end(), want.begin(), want.end());
}

// The inode of what `fd` refers to: tells which file a received descriptor is.
ino_t inode(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

struct Pipe {
  UniqueFd r, w;
  Pipe() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    r = UniqueFd(p[0]);
    w = UniqueFd(p[1]);
  }
};

// Calls `fire` once if it is not destroyed within `after`: the way out of a
// wait that would otherwise hang the test (it must make that wait end, e.g.
// by killing or shutting down the peer).
class Watchdog {
 public:
  Watchdog(std::chrono::milliseconds after, std::function<void()> fire)
      : fire_(std::move(fire)), thread_([this, after] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!cv_.wait_for(lock, after, [this] { return done_; })) {
            fired_ = true;
            fire_();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  bool fired() const { return fired_.load(); }

 private:
  std::function<void()> fire_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

TEST(MailLink, InlineBulkAndDescriptorMessagesArriveInOrderWithExactBytes) {
  Link l;
  Pipe pipe;
  struct Sent {
    std::vector<std::byte> bytes;
    std::vector<int> fds;
    Kind kind;  // the path it must take
  };
  const std::vector<Sent> sent = {
      {bytes_of("one"), {}, Kind::inline_body},
      {{}, {}, Kind::inline_body},
      {payload(100 << 10, 2), {}, Kind::bulk},
      {bytes_of("with a pipe"), {pipe.w.get()}, Kind::socket},
      {payload(MailRing::kMaxInline, 4), {}, Kind::inline_body},
      {payload(BulkRing::kMinBody + 1, 5), {}, Kind::bulk},
      {payload(300 << 10, 6), {}, Kind::bulk},
      {{}, {pipe.r.get(), pipe.w.get()}, Kind::socket},
      {payload(20001, 8), {pipe.r.get()}, Kind::socket},
      {payload(77, 9), {}, Kind::inline_body},
  };
  for (const Sent& s : sent) l.a.send(s.bytes, s.fds);
  std::vector<Kind> want_kinds;
  for (const Sent& s : sent) want_kinds.push_back(s.kind);
  EXPECT_EQ(l.region.kinds(0), want_kinds) << "each message took the path its size and descriptors call for";

  EXPECT_TRUE(l.b.has_message());
  Message m;
  for (std::size_t i = 0; i < sent.size(); ++i) {
    ASSERT_TRUE(l.b.try_next(m)) << i;
    EXPECT_TRUE(m.borrowed.empty()) << i;
    EXPECT_TRUE(same(m.body(), sent[i].bytes)) << i << ": " << m.body().size() << " bytes";
    ASSERT_EQ(m.fds.size(), sent[i].fds.size()) << i;
    for (std::size_t k = 0; k < m.fds.size(); ++k) {
      EXPECT_NE(m.fds[k].get(), sent[i].fds[k]) << "a new descriptor, not the sender's number";
      EXPECT_EQ(inode(m.fds[k].get()), inode(sent[i].fds[k])) << i << " fd " << k;
    }
    if (i == 3) {  // The received write end really is the pipe's.
      ASSERT_EQ(::write(m.fds[0].get(), "x", 1), 1);
      char c = 0;
      ASSERT_EQ(::read(pipe.r.get(), &c, 1), 1);
      EXPECT_EQ(c, 'x');
    }
  }
  EXPECT_FALSE(l.b.has_message());
  EXPECT_FALSE(l.b.try_next(m));
}

TEST(MailLink, ABorrowedBulkBodyIsReadInPlaceUntilTheNextCall) {
  Link l;
  const auto big = payload(200 << 10, 1), small = payload(10, 2);
  l.a.send(big);
  l.a.send(small);
  l.a.send(big);
  Message m;
  ASSERT_TRUE(l.b.try_next(m, std::size_t{1} << 40, /*borrow=*/true));
  EXPECT_EQ(m.bytes.size(), 0u);
  EXPECT_TRUE(same(m.borrowed, big));
  ASSERT_TRUE(l.b.try_next(m, std::size_t{1} << 40, true));
  EXPECT_TRUE(m.borrowed.empty()) << "an inline body is copied";
  EXPECT_TRUE(same(m.body(), small));
  ASSERT_TRUE(l.b.try_next(m, std::size_t{1} << 40, true));
  EXPECT_TRUE(same(m.body(), big));
  EXPECT_FALSE(l.b.try_next(m, std::size_t{1} << 40, true));
  EXPECT_TRUE(m.borrowed.empty()) << "the borrowed body is given back by the next call";
  // Too big for the caller's limit: SerializationError, for each path.
  l.a.send(payload(1000, 3));
  EXPECT_THROW(l.b.try_next(m, 999), mproc::SerializationError);
}

TEST(MailLink, TryNextIsFalseOnAnEmptyLink) {
  Link l;
  Message m;
  EXPECT_FALSE(l.b.has_message());
  EXPECT_FALSE(l.b.try_next(m));
  EXPECT_FALSE(l.a.try_next(m));
  l.a.send(bytes_of("x"));
  EXPECT_TRUE(l.b.has_message());
  EXPECT_FALSE(l.a.has_message()) << "a link is two one-way rings";
  ASSERT_TRUE(l.b.try_next(m));
  EXPECT_TRUE(same(m.body(), bytes_of("x")));
  EXPECT_FALSE(l.b.try_next(m));
  // Also once the peer has gone: try_next only looks, it does not wait.
  l.sock_a.reset();
  EXPECT_FALSE(l.b.try_next(m));
}

TEST(MailLink, AFullMailRingFallsBackToTheSocketAndKeepsTheOrder) {
  Link l;
  // Messages of 30000 bytes: 8 fit in the 256 KiB ring with its reserve;
  // the next ones go through the socket, with a `socket` frame in the
  // reserve that keeps their place.
  constexpr std::size_t kSize = 30000;
  int sent = 0, taken = 0;
  Message m;
  for (; sent < 12; ++sent) l.a.send(payload(kSize, static_cast<std::uint64_t>(sent)));
  std::vector<Kind> want(8, Kind::inline_body);
  want.insert(want.end(), 4, Kind::socket);
  EXPECT_EQ(l.region.kinds(0), want);
  // The reader takes four; there is room for three in the ring again
  // (after a wrap).
  for (; taken < 4; ++taken) {
    ASSERT_TRUE(l.b.try_next(m)) << taken;
    ASSERT_TRUE(same(m.body(), payload(kSize, static_cast<std::uint64_t>(taken)))) << taken;
  }
  const std::uint64_t before = l.region.head(0);
  for (; sent < 15; ++sent) l.a.send(payload(kSize, static_cast<std::uint64_t>(sent)));
  EXPECT_EQ(l.region.kinds(0, before), std::vector<Kind>(3, Kind::inline_body));
  for (; taken < sent; ++taken) {
    ASSERT_TRUE(l.b.try_next(m)) << taken;
    EXPECT_TRUE(m.fds.empty());
    ASSERT_TRUE(same(m.body(), payload(kSize, static_cast<std::uint64_t>(taken)))) << taken;
  }
  EXPECT_FALSE(l.b.try_next(m));
}

TEST(MailLink, ABodyTooBigForTheBulkRingGoesThroughTheSocket) {
  // Bigger than half the bulk ring and than the socket's buffer: the frame
  // is published first, so the reader reads while the sender writes.
  Link l;
  const auto big = payload(kSmallBulk / 2 + 4096, 1);
  std::thread sender([&] {
    l.a.send(big);
    l.a.send(bytes_of("after"));
  });
  Message m;
  AdaptiveSpin spin(0);
  {
    Watchdog dog(std::chrono::duration_cast<std::chrono::milliseconds>(kGuard),
                 [&] { ::shutdown(l.sock_a.get(), SHUT_RDWR); });
    EXPECT_NO_THROW(l.b.next(m, spin, l.bell_b.get()));
    EXPECT_TRUE(same(m.body(), big));
    EXPECT_NO_THROW(l.b.next(m, spin, l.bell_b.get()));
    EXPECT_TRUE(same(m.body(), bytes_of("after")));
    EXPECT_FALSE(dog.fired()) << "next() hung";
  }
  sender.join();
  EXPECT_EQ(l.region.kinds(0), (std::vector<Kind>{Kind::socket, Kind::inline_body}));
}

// What an eventfd holds now (0 if nothing: it is non-blocking), emptied.
std::uint64_t bell_count(int bell) {
  std::uint64_t v = 0;
  return ::read(bell, &v, sizeof v) == static_cast<ssize_t>(sizeof v) ? v : 0;
}

TEST(MailLink, SendRingsTheBellOnlyForASleeper) {
  // The handshake, one step at a time: a reader that is awake costs the
  // sender no system call; one that announced its sleep gets exactly one
  // ring, and its word is cleared so that the next sender does not ring
  // again.
  Link l;
  l.a.send(bytes_of("awake"));
  EXPECT_EQ(bell_count(l.bell_b.get()), 0u) << "rang an awake reader";
  MailLink::begin_sleep(l.b_sleeping());
  EXPECT_TRUE(l.b.has_message_after_announce()) << "the last look before sleeping sees what is there";
  Message m;
  ASSERT_TRUE(l.b.try_next(m));
  EXPECT_FALSE(l.b.has_message_after_announce());
  l.a.send(payload(100 << 10, 1));  // bulk
  EXPECT_EQ(bell_count(l.bell_b.get()), 1u) << "a sleeping reader was not woken";
  EXPECT_EQ(l.b_sleeping().load(), 0u) << "the waker clears the word";
  l.a.send(bytes_of("again"));
  EXPECT_EQ(bell_count(l.bell_b.get()), 0u) << "rang twice for one sleep";
  MailLink::begin_sleep(l.b_sleeping());
  Pipe pipe;
  const int fds[] = {pipe.r.get()};
  l.a.send(bytes_of("socket"), fds);  // through the socket: rings too
  EXPECT_EQ(bell_count(l.bell_b.get()), 1u);
  // The other direction uses the other word and bell.
  l.b.send(bytes_of("to a"));
  EXPECT_EQ(bell_count(l.bell_a.get()), 0u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(l.b.try_next(m)) << i;
  EXPECT_TRUE(same(m.body(), bytes_of("socket")));
  ASSERT_TRUE(l.a.try_next(m));
  EXPECT_TRUE(same(m.body(), bytes_of("to a")));
}

TEST(MailLink, NextThrowsEOFErrorAfterThePeerClosedAndNothingIsLeft) {
  Link l;
  Pipe pipe;
  const int fds[] = {pipe.w.get()};
  l.a.send(bytes_of("a"));
  l.a.send(payload(100 << 10, 2));
  l.a.send(bytes_of("fd"), fds);
  l.sock_a.reset();  // the peer closes after publishing
  AdaptiveSpin spin(0);
  Message m;
  ASSERT_NO_THROW(l.b.next(m, spin, l.bell_b.get()));
  EXPECT_TRUE(same(m.body(), bytes_of("a")));
  ASSERT_NO_THROW(l.b.next(m, spin, l.bell_b.get()));
  EXPECT_TRUE(same(m.body(), payload(100 << 10, 2)));
  ASSERT_NO_THROW(l.b.next(m, spin, l.bell_b.get()));
  EXPECT_TRUE(same(m.body(), bytes_of("fd")));
  ASSERT_EQ(m.fds.size(), 1u);
  EXPECT_EQ(inode(m.fds[0].get()), inode(pipe.w.get()));
  EXPECT_THROW(l.b.next(m, spin, l.bell_b.get()), mproc::EOFError);
  EXPECT_THROW(l.b.next(m, spin, l.bell_b.get()), mproc::EOFError) << "and again";
  AdaptiveSpin default_spin;
  EXPECT_THROW(l.b.next(m, default_spin, l.bell_b.get()), mproc::EOFError);
}

TEST(MailLink, ASleepingNextWakesWithEOFErrorWhenThePeerCloses) {
  Link l;
  std::promise<std::string> outcome;
  std::thread reader([&] {
    AdaptiveSpin spin(0);
    Message m;
    try {
      l.b.next(m, spin, l.bell_b.get());
      outcome.set_value("a message");
    } catch (const mproc::EOFError&) {
      outcome.set_value("EOFError");
    } catch (const std::exception& e) {
      outcome.set_value(std::string("another error: ") + e.what());
    }
  });
  // Close only once it sleeps (or is about to), so that the close must
  // wake it.
  EXPECT_TRUE(mproc_test::wait_until([&] { return l.b_sleeping().load() != 0; })) << "next() never slept";
  l.sock_a.reset();
  auto result = outcome.get_future();
  if (result.wait_for(kGuard) != std::future_status::ready) {
    ADD_FAILURE() << "next() did not wake when the peer closed";
    l.a.send(bytes_of("unblock"));  // inline: rings b's bell without the socket
  }
  reader.join();
  EXPECT_EQ(result.get(), "EOFError");
}

TEST(MailLink, ASocketFrameWhoseMessageNeverCameIsEOF) {
  // The peer published a `socket` frame and died before sending.
  Link l;
  MailRing writer = l.region.mail(0);
  ASSERT_TRUE(writer.put(Kind::socket, {}));
  l.sock_a.reset();
  Message m;
  EXPECT_THROW(l.b.try_next(m), mproc::EOFError);
}

TEST(MailLink, AMalformedBulkFrameIsASerializationError) {
  Link l;
  MailRing writer = l.region.mail(0);
  const mproc::detail::BulkRef outside{kSmallBulk - 64, 4096};
  ASSERT_TRUE(writer.put(Kind::bulk, std::as_bytes(std::span(&outside, 1))));
  Message m;
  EXPECT_THROW(l.b.try_next(m), mproc::SerializationError);
  const std::uint32_t short_ref = 7;
  ASSERT_TRUE(writer.put(Kind::bulk, std::as_bytes(std::span(&short_ref, 1))));
  EXPECT_THROW(l.b.try_next(m), mproc::SerializationError);
}

// Many mixed messages from one thread to another, the reader sleeping
// whenever it catches up (spin budget 0): under TSan this checks the
// memory protocol of both rings, and a lost wake-up fails the test.
class MailLinkStream : public ::testing::TestWithParam<std::uint64_t> {};

std::size_t stream_size(int i) {
  if (i % 211 == 5) return kSmallBulk / 2 + 100;  // too big for the bulk ring: socket
  if (i % 13 == 0) return BulkRing::kMinBody + static_cast<std::size_t>(i) * 97 % (200 << 10);
  if (i % 17 == 0) return 20000 + static_cast<std::size_t>(i) % 40000;
  return static_cast<std::size_t>(i) * 31 % 700;
}

TEST_P(MailLinkStream, MixedMessagesArriveInOrder) {
  Link l;
  Pipe pipe;
  constexpr int kCount = 3000;
  std::atomic<bool> sender_failed{false};
  std::thread sender([&] {
    const int fds[] = {pipe.w.get()};
    try {
      for (int i = 0; i < kCount; ++i) {
        const auto p = payload(stream_size(i), static_cast<std::uint64_t>(i));
        if (i % 97 == 0) {
          l.a.send(p, fds);
        } else {
          l.a.send(p);
        }
      }
    } catch (const std::exception&) {
      sender_failed = true;
    }
  });
  AdaptiveSpin spin(GetParam());
  Message m;
  int i = 0;
  {
    Watchdog dog(std::chrono::duration_cast<std::chrono::milliseconds>(kGuard) * 2,
                 [&] { ::shutdown(l.sock_a.get(), SHUT_RDWR); });
    try {
      for (; i < kCount; ++i) {
        l.b.next(m, spin, l.bell_b.get(), /*borrow=*/i % 2 == 0);
        // EXPECT and break, not ASSERT: the sender thread must be joined.
        const bool body_ok = same(m.body(), payload(stream_size(i), static_cast<std::uint64_t>(i)));
        EXPECT_TRUE(body_ok) << "message " << i << ": " << m.body().size() << " bytes";
        EXPECT_EQ(m.fds.size(), i % 97 == 0 ? 1u : 0u) << i;
        if (!body_ok || m.fds.size() != (i % 97 == 0 ? 1u : 0u)) break;
        if (!m.fds.empty()) {
          EXPECT_EQ(inode(m.fds[0].get()), inode(pipe.w.get()));
        }
      }
    } catch (const mproc::EOFError&) {
      ADD_FAILURE() << "the link ended at message " << i << (dog.fired() ? " (a hang: the watchdog shut it)" : "");
    }
    if (i < kCount) ::shutdown(l.sock_a.get(), SHUT_RDWR);  // lets a waiting sender go
  }
  sender.join();
  EXPECT_EQ(i, kCount);
  if (i == kCount) {
    EXPECT_FALSE(sender_failed.load());
  }
}

INSTANTIATE_TEST_SUITE_P(Spin, MailLinkStream, ::testing::Values(std::uint64_t{0}, mproc::detail::kDefaultSpinNs),
                         [](const ::testing::TestParamInfo<std::uint64_t>& info) {
                           return info.param == 0 ? std::string("NoSpin") : std::string("DefaultSpin");
                         });

// Round trips with a forked child over memory laid out as the pool lays it
// out (PoolLayout's ring sizes). With spin budget 0 every wait sleeps, so
// each message goes through the sleeping word and the bell: a lost wake-up
// would hang, and the watchdog (parent) or alarm (child) turns that into a
// failure. The child echoes what it gets, descriptors included.
class MailLinkPingPong : public ::testing::TestWithParam<std::uint64_t> {};

std::vector<std::byte> round_payload(int i) {
  if (i % 100 == 7) return payload(BulkRing::kMinBody + 4000, static_cast<std::uint64_t>(i));
  if (i % 50 == 1) return payload(30000, static_cast<std::uint64_t>(i));
  return payload(8 + static_cast<std::size_t>(i) % 57, static_cast<std::uint64_t>(i));
}

[[noreturn]] void echo_child(Link& l, std::uint64_t spin_ns) {
  // In the forked child: only this thread exists. Leave through _exit so
  // that nothing of gtest's runs here.
  ::alarm(static_cast<unsigned>(kGuard.count()) * 2);  // the last resort: SIGALRM ends the child
  l.sock_a.reset();                                    // so that the parent's death shows as a hang-up
  AdaptiveSpin spin(spin_ns);
  Message m;
  try {
    for (;;) {
      l.b.next(m, spin, l.bell_b.get());
      if (m.body().size() == 4 && std::memcmp(m.body().data(), "stop", 4) == 0) ::_exit(0);
      const std::vector<int> fds = m.raw_fds();
      l.b.send(m.body(), fds);
    }
  } catch (const mproc::EOFError&) {
    ::_exit(3);
  } catch (...) {
    ::_exit(4);
  }
}

TEST_P(MailLinkPingPong, ManyRoundTripsWithAForkedChild) {
  Link l(PoolLayout::kMailBytes, PoolLayout::kBulkBytes);
  Pipe pipe;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) echo_child(l, GetParam());
  l.sock_b.reset();
  constexpr int kRounds = 2000;
  AdaptiveSpin spin(GetParam());
  int status = -1;
  int i = 0;
  {
    Watchdog dog(std::chrono::duration_cast<std::chrono::milliseconds>(kGuard) * 2, [&] { ::kill(pid, SIGKILL); });
    Message m;
    try {
      for (; i < kRounds; ++i) {
        const auto p = round_payload(i);
        const int fds[] = {pipe.r.get()};
        const bool with_fd = i % 250 == 3;
        l.a.send(p, with_fd ? std::span<const int>(fds) : std::span<const int>());
        l.a.next(m, spin, l.bell_a.get());
        // EXPECT and break, not ASSERT: the child must be stopped and reaped.
        const bool ok = same(m.body(), p) && m.fds.size() == (with_fd ? 1u : 0u);
        EXPECT_TRUE(ok) << "round " << i << ": " << m.body().size() << " bytes, " << m.fds.size() << " fds";
        if (!ok) break;
        if (with_fd) {
          EXPECT_EQ(inode(m.fds[0].get()), inode(pipe.r.get()));
        }
      }
      if (i == kRounds) l.a.send(bytes_of("stop"));
    } catch (const mproc::EOFError&) {
      ADD_FAILURE() << "the child went away at round " << i
                    << (dog.fired() ? " (a hang: the watchdog killed it; a lost wake-up?)" : "");
    }
    if (i < kRounds) ::kill(pid, SIGKILL);
    // Bounded by the watchdog: a child that does not exit is killed.
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    EXPECT_FALSE(dog.fired()) << "a hang at round " << i;
  }
  EXPECT_EQ(i, kRounds);
  ASSERT_TRUE(WIFEXITED(status)) << "child status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(mproc_test::pid_gone(pid));
}

INSTANTIATE_TEST_SUITE_P(Spin, MailLinkPingPong, ::testing::Values(std::uint64_t{0}, mproc::detail::kDefaultSpinNs),
                         [](const ::testing::TestParamInfo<std::uint64_t>& info) {
                           return info.param == 0 ? std::string("NoSpin") : std::string("DefaultSpin");
                         });

}  // namespace
