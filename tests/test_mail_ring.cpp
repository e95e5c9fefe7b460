// test_mail_ring.cpp: the shared-memory ring of framed small messages
// between a pool and one worker (detail/mail_ring.hpp). Its use by the link
// (inline, bulk and socket messages, waking) is in test_mail_link.cpp; here
// are its own rules: frames in order with their kinds and exact bodies, no
// frame across the end, the restart of an empty ring, the reserve that
// keeps room for `socket` frames, reset(), and malformed rings, which throw
// SerializationError without reading outside the ring.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/detail/mail_ring.hpp"
#include "mproc/errors.hpp"

namespace {

using mproc::detail::MailRing;
using Kind = MailRing::Kind;

// The smallest capacity the constructor admits: a power of two of at least
// 2 * (kMaxInline + kReserve).
constexpr std::size_t kCap = std::size_t{256} << 10;
static_assert(kCap >= 2 * (MailRing::kMaxInline + MailRing::kReserve));

constexpr std::uint64_t pad(std::uint64_t n) { return (n + 7) & ~std::uint64_t{7}; }
constexpr std::uint64_t frame_bytes(std::size_t body) { return MailRing::kFrameHeader + pad(body); }

// One block of memory, exactly header + ring (so ASan reports any read
// outside it), seen by a writer and a reader as two processes would.
struct Pair {
  std::vector<std::byte> memory = std::vector<std::byte>(MailRing::kHeaderBytes + kCap);
  MailRing writer{memory.data(), kCap};
  MailRing reader{memory.data(), kCap};

  MailRing::Shared& shared() { return *reinterpret_cast<MailRing::Shared*>(memory.data()); }
  std::byte* data() { return memory.data() + MailRing::kHeaderBytes; }
  std::uint64_t head() { return shared().head.load(); }
  std::uint64_t tail() { return shared().tail.load(); }
  // Where in the ring (0 .. kCap) a body the reader was given lies.
  std::size_t offset_of(const MailRing::Frame& f) { return static_cast<std::size_t>(f.body.data() - data()); }
};

std::vector<std::byte> body(std::size_t n, int seed) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 31 + static_cast<std::size_t>(seed)) & 0xff);
  return b;
}

bool same(std::span<const std::byte> got, const std::vector<std::byte>& want) {
  return std::equal(got.begin(), got.end(), want.begin(), want.end());
}

// Reads the next frame, checks it and frees it.
void expect_frame(MailRing& reader, Kind kind, const std::vector<std::byte>& want, const std::string& what) {
  MailRing::Frame f{};
  ASSERT_TRUE(reader.peek(f)) << what;
  EXPECT_EQ(f.kind, kind) << what;
  EXPECT_TRUE(same(f.body, want)) << what << ": " << f.body.size() << " bytes, want " << want.size();
  reader.pop();
}

TEST(MailRing, FramesComeOutInOrderWithTheirKindsAndExactBodies) {
  Pair p;
  struct Sent {
    Kind kind;
    std::vector<std::byte> bytes;
  };
  const std::vector<Sent> sent = {
      {Kind::inline_body, {}},
      {Kind::inline_body, body(1, 1)},
      {Kind::inline_body, body(7, 2)},
      {Kind::bulk, body(16, 3)},
      {Kind::socket, {}},
      {Kind::inline_body, body(8, 4)},
      {Kind::inline_body, body(9, 5)},
      {Kind::inline_body, body(1001, 6)},
      {Kind::inline_body, body(MailRing::kMaxInline, 7)},
      {Kind::socket, {}},
      {Kind::inline_body, body(3, 8)},
  };
  MailRing::Frame f{};
  EXPECT_FALSE(p.reader.has_frame());
  EXPECT_FALSE(p.reader.peek(f));
  std::uint64_t published = 0;
  for (const Sent& s : sent) {
    ASSERT_TRUE(p.writer.put(s.kind, s.bytes)) << s.bytes.size();
    // Each frame is a header and its body padded to 8 bytes; nothing else.
    published += frame_bytes(s.bytes.size());
    EXPECT_EQ(p.head(), published);
  }
  EXPECT_TRUE(p.reader.has_frame());
  EXPECT_TRUE(p.reader.has_frame_seq_cst());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    // peek() without pop() hands out the same frame again, and frees nothing.
    ASSERT_TRUE(p.reader.peek(f)) << i;
    const auto* first = f.body.data();
    ASSERT_TRUE(p.reader.peek(f)) << i;
    EXPECT_EQ(f.body.data(), first) << i;
    expect_frame(p.reader, sent[i].kind, sent[i].bytes, "frame " + std::to_string(i));
  }
  EXPECT_FALSE(p.reader.has_frame());
  EXPECT_FALSE(p.reader.peek(f));
  EXPECT_EQ(p.tail(), published) << "the reader gave all the room back";
}

TEST(MailRing, AFrameNeverStraddlesTheEnd) {
  // The reader stays one frame behind, so the ring is never empty when the
  // writer puts (no restart) and the frames go round the lap until one does
  // not fit before the end: a wrap frame fills the end, the frame starts
  // the next lap at offset 0, and the reader skips the wrap frame.
  Pair p;
  constexpr std::size_t kBody = 40000;
  constexpr std::uint64_t kNeed = frame_bytes(kBody);
  int sent = 0, taken = 0;
  ASSERT_TRUE(p.writer.put(Kind::inline_body, body(kBody, sent++)));
  std::uint64_t expect_at = kNeed;
  bool wrapped = false;
  while (!wrapped) {
    const std::uint64_t before = p.head();
    ASSERT_EQ(before, expect_at);
    ASSERT_TRUE(p.writer.put(Kind::inline_body, body(kBody, sent++)));
    if (before % kCap + kNeed > kCap) {
      wrapped = true;
      // The frame went to the start of the next lap, behind a wrap frame.
      EXPECT_EQ(p.head(), (before / kCap + 1) * kCap + kNeed);
      std::uint32_t words[2];
      std::memcpy(words, p.data() + before % kCap, sizeof words);
      EXPECT_EQ(words[0], 0u) << "a wrap frame has no length";
      EXPECT_EQ(words[1], static_cast<std::uint32_t>(Kind::wrap));
    } else {
      EXPECT_EQ(p.head(), before + kNeed);
    }
    expect_at = p.head();
    expect_frame(p.reader, Kind::inline_body, body(kBody, taken), "frame " + std::to_string(taken));
    ++taken;
  }
  MailRing::Frame f{};
  ASSERT_TRUE(p.reader.peek(f));
  EXPECT_EQ(p.offset_of(f), MailRing::kFrameHeader) << "the frame after the wrap lies at the ring's start";
  EXPECT_TRUE(same(f.body, body(kBody, taken)));
  p.reader.pop();
  EXPECT_EQ(p.tail(), p.head());
  // Every frame lay wholly inside the ring: checked by the body comparisons
  // above (ASan would report a read past the vector).
}

TEST(MailRing, AWrapFrameFitsInTheLastEightBytes) {
  // A frame that leaves exactly 8 bytes before the end: the next one needs
  // a wrap frame that is only a header. The ring is never empty at a put
  // (the reader stays behind), so no restart interferes.
  Pair p;
  const auto max = MailRing::kMaxInline;
  ASSERT_TRUE(p.writer.put(Kind::socket, {}));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.writer.put(Kind::inline_body, body(max, i)));
  expect_frame(p.reader, Kind::socket, {}, "socket");
  expect_frame(p.reader, Kind::inline_body, body(max, 0), "0");
  const std::uint64_t last = kCap - MailRing::kFrameHeader - p.head() - MailRing::kFrameHeader;
  ASSERT_LE(last, max);
  ASSERT_TRUE(p.writer.put(Kind::inline_body, body(last, 9)));
  ASSERT_EQ(p.head(), kCap - MailRing::kFrameHeader);
  ASSERT_TRUE(p.writer.put(Kind::inline_body, body(5, 10)));
  EXPECT_EQ(p.head(), kCap + frame_bytes(5));
  expect_frame(p.reader, Kind::inline_body, body(max, 1), "1");
  expect_frame(p.reader, Kind::inline_body, body(max, 2), "2");
  expect_frame(p.reader, Kind::inline_body, body(last, 9), "last of the lap");
  expect_frame(p.reader, Kind::inline_body, body(5, 10), "first of the next lap");
  EXPECT_FALSE(p.reader.has_frame());
}

TEST(MailRing, AnEmptyRingFarIntoItsLapRestartsAtTheStart) {
  Pair p;
  constexpr std::size_t kBody = 100;
  constexpr std::uint64_t kNeed = frame_bytes(kBody);
  // Put and take one at a time: the frames follow each other until the
  // writer is kRestart into the lap, then the next starts the next lap.
  std::uint64_t at = 0;
  int i = 0;
  for (; at < MailRing::kRestart; ++i) {
    ASSERT_TRUE(p.writer.put(Kind::inline_body, body(kBody, i)));
    ASSERT_EQ(p.head(), at + kNeed);
    at += kNeed;
    expect_frame(p.reader, Kind::inline_body, body(kBody, i), std::to_string(i));
  }
  ASSERT_TRUE(p.writer.put(Kind::inline_body, body(kBody, i)));
  EXPECT_EQ(p.head(), kCap + kNeed) << "the empty ring's writer went back to the start";
  MailRing::Frame f{};
  ASSERT_TRUE(p.reader.peek(f));
  EXPECT_EQ(p.offset_of(f), MailRing::kFrameHeader);
  EXPECT_TRUE(same(f.body, body(kBody, i)));
  p.reader.pop();

  // Not when a frame is still unread: then the writer goes on where it is.
  ASSERT_TRUE(p.writer.put(Kind::socket, {}));  // stays unread for now
  std::vector<int> unread;
  for (++i; p.head() % kCap < MailRing::kRestart; ++i) {
    ASSERT_TRUE(p.writer.put(Kind::inline_body, body(kBody, i)));
    unread.push_back(i);
  }
  const std::uint64_t before = p.head();
  ASSERT_TRUE(p.writer.put(Kind::inline_body, body(kBody, i)));
  unread.push_back(i);
  EXPECT_EQ(p.head(), before + kNeed) << "a non-empty ring is not restarted";
  expect_frame(p.reader, Kind::socket, {}, "socket");
  for (const int j : unread) expect_frame(p.reader, Kind::inline_body, body(kBody, j), std::to_string(j));
  EXPECT_FALSE(p.reader.has_frame());
}

TEST(MailRing, AnEmptyRingAlwaysTakesAFrameOfTheLargestSize) {
  // Whatever the writer's position, an empty ring has room for a frame of
  // kMaxInline (the capacity is at least twice that plus the reserve), so
  // room_for() and put() must not refuse it.
  Pair p;
  constexpr std::size_t kBody = 100;
  int i = 0;
  while (p.head() % kCap < MailRing::kRestart) {
    ASSERT_TRUE(p.writer.put(Kind::inline_body, body(kBody, i)));
    expect_frame(p.reader, Kind::inline_body, body(kBody, i), std::to_string(i));
    ++i;
  }
  ASSERT_EQ(p.tail(), p.head()) << "the ring is empty";
  for (const std::size_t n : {std::size_t{13} << 10, std::size_t{20} << 10, MailRing::kMaxInline}) {
    EXPECT_TRUE(p.writer.room_for(n)) << n << " bytes, " << p.head() % kCap << " bytes into the lap";
  }
  ASSERT_TRUE(p.writer.put(Kind::inline_body, body(MailRing::kMaxInline, 99)))
      << "an empty ring " << p.head() % kCap << " bytes into its lap refused a frame of kMaxInline";
  expect_frame(p.reader, Kind::inline_body, body(MailRing::kMaxInline, 99), "the big frame");
}

TEST(MailRing, AFullRingKeepsItsReserveForSocketFrames) {
  // Frames other than `socket` leave kReserve bytes free; `socket` frames
  // (8 bytes each) may use them, so exactly kReserve / 8 fit after the
  // ring is full for anything else.
  Pair p;
  std::size_t inline_frames = 0;
  while (p.writer.room_for(0)) {
    ASSERT_TRUE(p.writer.put(Kind::inline_body, {}));
    ++inline_frames;
  }
  EXPECT_EQ(inline_frames, (kCap - MailRing::kReserve) / MailRing::kFrameHeader);
  EXPECT_FALSE(p.writer.put(Kind::inline_body, {}));
  EXPECT_FALSE(p.writer.put(Kind::bulk, body(16, 0)));
  EXPECT_FALSE(p.writer.room_for(16));
  std::size_t socket_frames = 0;
  while (p.writer.put(Kind::socket, {})) ++socket_frames;
  EXPECT_EQ(socket_frames, MailRing::kReserve / MailRing::kFrameHeader);
  EXPECT_EQ(p.head(), kCap);

  // One frame read: room for one more socket frame, still none for others.
  expect_frame(p.reader, Kind::inline_body, {}, "first");
  EXPECT_FALSE(p.writer.room_for(0));
  EXPECT_FALSE(p.writer.put(Kind::inline_body, {}));
  EXPECT_TRUE(p.writer.put(Kind::socket, {}));
  EXPECT_FALSE(p.writer.put(Kind::socket, {}));

  // Everything comes out in order.
  for (std::size_t i = 1; i < inline_frames; ++i) {
    MailRing::Frame f{};
    ASSERT_TRUE(p.reader.peek(f)) << i;
    ASSERT_EQ(f.kind, Kind::inline_body) << i;
    ASSERT_TRUE(f.body.empty()) << i;
    p.reader.pop();
  }
  for (std::size_t i = 0; i < socket_frames + 1; ++i) {
    MailRing::Frame f{};
    ASSERT_TRUE(p.reader.peek(f)) << i;
    ASSERT_EQ(f.kind, Kind::socket) << i;
    p.reader.pop();
  }
  EXPECT_FALSE(p.reader.has_frame());
  // Empty again: room for the largest frame.
  EXPECT_TRUE(p.writer.room_for(MailRing::kMaxInline));
}

TEST(MailRing, RoomForAgreesWithPut) {
  // A stream of frames of many sizes, the reader sometimes behind by many:
  // before each put, room_for() says what put() then does.
  Pair p;
  std::vector<std::size_t> unread;
  std::size_t refused = 0, taken = 0;
  for (std::size_t i = 0; i < 3000; ++i) {
    const std::size_t n = (i * 7919 + i * i * 13) % (MailRing::kMaxInline + 1);
    const bool room = p.writer.room_for(n);
    const bool put = p.writer.put(Kind::inline_body, body(n, static_cast<int>(i)));
    ASSERT_EQ(room, put) << "frame " << i << " of " << n << " bytes at " << p.head();
    if (put) {
      unread.push_back(i);
    } else {
      ++refused;
    }
    // Read in bursts, so that the ring is sometimes full and sometimes empty.
    if (i % 7 == 6 || !put) {
      for (const std::size_t j : unread) {
        const std::size_t m = (j * 7919 + j * j * 13) % (MailRing::kMaxInline + 1);
        expect_frame(p.reader, Kind::inline_body, body(m, static_cast<int>(j)), "frame " + std::to_string(j));
        ++taken;
      }
      unread.clear();
    }
  }
  EXPECT_GT(refused, 0u) << "the ring was never full: the test proves little";
  EXPECT_GT(taken, 1000u);
  EXPECT_FALSE(MailRing().room_for(0));
  EXPECT_FALSE(MailRing().put(Kind::socket, {})) << "a ring without memory takes nothing";
  EXPECT_FALSE(MailRing().usable());
}

TEST(MailRing, ResetStartsBothEndsOver) {
  Pair p;
  ASSERT_TRUE(p.writer.put(Kind::inline_body, body(5000, 1)));
  ASSERT_TRUE(p.writer.put(Kind::inline_body, body(6000, 2)));
  expect_frame(p.reader, Kind::inline_body, body(5000, 1), "first");
  p.reader.sleeping().store(1);
  p.writer.reset();
  p.reader.reset();
  EXPECT_EQ(p.head(), 0u);
  EXPECT_EQ(p.tail(), 0u);
  EXPECT_EQ(p.reader.sleeping().load(), 0u);
  EXPECT_FALSE(p.reader.has_frame()) << "the unread frame of before is gone";
  ASSERT_TRUE(p.writer.put(Kind::inline_body, body(7, 3)));
  EXPECT_EQ(p.head(), frame_bytes(7));
  MailRing::Frame f{};
  ASSERT_TRUE(p.reader.peek(f));
  EXPECT_EQ(p.offset_of(f), MailRing::kFrameHeader);
  EXPECT_TRUE(same(f.body, body(7, 3)));
  MailRing().reset();  // a ring without memory: nothing to do, no crash
}

// ---------------------------------------------------------------- malformed ---
// Rings written by hand, as a broken or hostile peer could leave them: the
// memory is exactly header + ring, so ASan reports any read outside it.

struct Forged : Pair {
  void header(std::uint64_t at, std::uint32_t length, std::uint32_t kind) {
    const std::uint32_t words[2] = {length, kind};
    std::memcpy(data() + at % kCap, words, sizeof words);
  }
  void publish(std::uint64_t head) { shared().head.store(head); }
  // Brings the reader to `to` (8-aligned, in the first lap) through valid
  // inline frames written by hand.
  void advance_reader_to(std::uint64_t to) {
    std::uint64_t at = 0;
    while (at < to) {
      const std::uint64_t n = std::min<std::uint64_t>(to - at - MailRing::kFrameHeader, MailRing::kMaxInline);
      ASSERT_LE(at + frame_bytes(n), to);
      header(at, static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(Kind::inline_body));
      at += frame_bytes(n);
    }
    publish(to);
    MailRing::Frame f{};
    while (reader.peek(f)) reader.pop();
    ASSERT_EQ(tail(), to);
  }
};

void expect_malformed(Forged& r, const std::string& what) {
  MailRing::Frame f{};
  EXPECT_THROW(r.reader.peek(f), mproc::SerializationError) << what;
  // Still malformed when asked again (nothing was consumed).
  EXPECT_THROW(r.reader.peek(f), mproc::SerializationError) << what;
}

TEST(MailRing, UnknownKindsAreMalformed) {
  for (const std::uint32_t kind : {0u, 5u, 0x80000001u, 0xffffffffu}) {
    Forged r;
    r.header(0, 0, kind);
    r.publish(8);
    expect_malformed(r, "kind " + std::to_string(kind));
  }
}

TEST(MailRing, AFrameLongerThanWhatWasPublishedIsMalformed) {
  for (const std::uint32_t length : {1u, 100u, 65536u, 0xfffffff8u, 0xffffffffu}) {
    Forged r;
    r.header(0, length, static_cast<std::uint32_t>(Kind::inline_body));
    r.publish(MailRing::kFrameHeader + pad(length) - 8);
    expect_malformed(r, "length " + std::to_string(length));
  }
  Forged r;  // A head less than a header ahead.
  r.header(0, 0, static_cast<std::uint32_t>(Kind::inline_body));
  r.publish(4);
  expect_malformed(r, "head 4");
}

TEST(MailRing, AHeadBehindTheReaderOrMoreThanALapAheadIsMalformed) {
  {
    Forged r;
    r.advance_reader_to(64);
    r.header(64, 0, static_cast<std::uint32_t>(Kind::inline_body));
    r.publish(16);  // behind the reader
    expect_malformed(r, "head behind");
  }
  {
    Forged r;
    r.header(0, 0, static_cast<std::uint32_t>(Kind::inline_body));
    r.publish(kCap + 8);
    expect_malformed(r, "more than a lap ahead");
  }
  {
    Forged r;
    r.publish(~std::uint64_t{0});
    expect_malformed(r, "head 2^64 - 1");
  }
}

TEST(MailRing, AWrapFrameMustBeEmptyAndEndWithinWhatWasPublished) {
  {
    Forged r;
    r.header(0, 8, static_cast<std::uint32_t>(Kind::wrap));
    r.publish(kCap);
    expect_malformed(r, "a wrap frame with a length");
  }
  {
    Forged r;
    r.advance_reader_to(kCap - 64);
    r.header(kCap - 64, 0, static_cast<std::uint32_t>(Kind::wrap));
    r.publish(kCap - 32);  // the lap ends at kCap, beyond this
    expect_malformed(r, "a wrap frame past the head");
  }
  {  // A valid wrap frame in the last 8 bytes, then a frame at the start.
    Forged r;
    r.advance_reader_to(kCap - 8);
    r.header(kCap - 8, 0, static_cast<std::uint32_t>(Kind::wrap));
    r.header(0, 3, static_cast<std::uint32_t>(Kind::socket));
    r.publish(kCap + 16);
    MailRing::Frame f{};
    ASSERT_TRUE(r.reader.peek(f));
    EXPECT_EQ(f.kind, Kind::socket);
    EXPECT_EQ(r.offset_of(f), MailRing::kFrameHeader);
    EXPECT_EQ(f.body.size(), 3u);
  }
}

TEST(MailRing, AFrameThatWouldStraddleTheEndIsMalformed) {
  for (const Kind kind : {Kind::inline_body, Kind::bulk, Kind::socket}) {
    Forged r;
    r.advance_reader_to(kCap - 16);
    r.header(kCap - 16, 16, static_cast<std::uint32_t>(kind));  // needs 24 bytes, 16 are left
    r.publish(kCap + 8);
    expect_malformed(r, "kind " + std::to_string(static_cast<std::uint32_t>(kind)));
  }
  // Its body would be the start of the ring: the reader must not hand out a
  // span that runs past the end either when the length is huge.
  Forged r;
  r.advance_reader_to(kCap - 8);
  r.header(kCap - 8, 0xfffffff0u, static_cast<std::uint32_t>(Kind::inline_body));
  r.publish(kCap);
  expect_malformed(r, "huge length at the end");
}

TEST(MailRing, AFrameLongerThanTheLargestInlineFrameIsMalformed) {
  for (const Kind kind : {Kind::inline_body, Kind::bulk, Kind::socket}) {
    Forged r;
    const std::uint32_t length = MailRing::kMaxInline + 8;
    r.header(0, length, static_cast<std::uint32_t>(kind));
    r.publish(frame_bytes(length));  // all published, within the ring
    expect_malformed(r, "kind " + std::to_string(static_cast<std::uint32_t>(kind)));
  }
}

}  // namespace
