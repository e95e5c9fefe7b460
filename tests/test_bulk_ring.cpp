// test_bulk_ring.cpp: the shared-memory ring that carries big message bodies
// between a pool and its workers (detail/bulk_ring.hpp). The pool's use of
// it is covered by the big-payload tests in test_pool.cpp and
// test_pool_faults.cpp; here are its own rules: what it takes, when it is
// full, laps, and malformed frames.

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/detail/bulk_ring.hpp"
#include "mproc/errors.hpp"

namespace {

using mproc::detail::BulkRef;
using mproc::detail::BulkRing;
using mproc::detail::ByteBuffer;

constexpr std::size_t kCap = 256 << 10;
constexpr std::size_t kMin = BulkRing::kMinBody;

// One block of memory seen by a writer and a reader, as two processes would.
struct Pair {
  std::vector<std::byte> memory = std::vector<std::byte>(BulkRing::kHeaderBytes + kCap);
  BulkRing writer{memory.data(), kCap};
  BulkRing reader{memory.data(), kCap};
};

std::vector<std::byte> body(std::size_t n, int seed) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 31 + static_cast<std::size_t>(seed)) & 0xff);
  return b;
}

bool same(const ByteBuffer& got, const std::vector<std::byte>& want) {
  return got.size() == want.size() && std::equal(want.begin(), want.end(), got.data());
}

TEST(BulkRing, TakesOnlyBodiesFromItsMinimumToHalfItsSize) {
  Pair p;
  EXPECT_FALSE(p.writer.put(body(kMin - 1, 1)).has_value());
  EXPECT_FALSE(p.writer.put(body(kCap / 2 + 1, 1)).has_value());
  EXPECT_FALSE(BulkRing().put(body(kMin, 1)).has_value());  // no memory: never
  const auto b = body(kCap / 2, 2);
  const auto ref = p.writer.put(b);
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->position, 0u);
  EXPECT_EQ(ref->length, b.size());
  ByteBuffer out;
  p.reader.take(*ref, out);
  EXPECT_TRUE(same(out, b));
}

TEST(BulkRing, IsFullUntilTheReaderTakesAndThenGoesOn) {
  Pair p;
  const auto a = body(kMin + 100, 1), b = body(kMin + 200, 2), c = body(kMin + 300, 3), d = body(kMin, 4);
  const auto ra = p.writer.put(a), rb = p.writer.put(b), rc = p.writer.put(c);
  ASSERT_TRUE(ra && rb && rc);
  // Three bodies of ~64 KiB in 256 KiB: a fourth of 64 KiB does not fit.
  EXPECT_FALSE(p.writer.put(d).has_value());
  ByteBuffer out;
  p.reader.take(*ra, out);
  EXPECT_TRUE(same(out, a));
  // Room again, but not before the end: the body starts the next lap.
  const auto rd = p.writer.put(d);
  ASSERT_TRUE(rd.has_value());
  EXPECT_EQ(rd->position % kCap, 0u);
  EXPECT_EQ(rd->position, kCap);
  p.reader.take(*rb, out);
  EXPECT_TRUE(same(out, b));
  p.reader.take(*rc, out);
  EXPECT_TRUE(same(out, c));
  p.reader.take(*rd, out);
  EXPECT_TRUE(same(out, d));
}

TEST(BulkRing, AnEmptyRingReusesItsFirstPages) {
  // A stream of bodies each taken before the next is put keeps to the
  // start of a lap (warm pages), however many pass.
  Pair p;
  ByteBuffer out;
  for (int i = 0; i < 20; ++i) {
    const auto b = body(kMin + static_cast<std::size_t>(i) * 1000, i);
    const auto ref = p.writer.put(b);
    ASSERT_TRUE(ref.has_value()) << i;
    EXPECT_EQ(ref->position % kCap, 0u) << i;
    p.reader.take(*ref, out);
    EXPECT_TRUE(same(out, b)) << i;
  }
}

TEST(BulkRing, MalformedFramesThrowAndReadNothingOutside) {
  Pair p;
  const auto ref = p.writer.put(body(kMin, 1));
  ASSERT_TRUE(ref.has_value());
  ByteBuffer out;
  const BulkRef bad[] = {
      {8, kMin},                  // not where the next body starts
      {0, 0},                     // empty
      {0, kCap / 2 + 64},         // longer than any body
      {kCap, kMin},               // a whole lap ahead of the reader
      {2 * kCap, kMin},           // two laps ahead
      {kCap - 64, kCap / 2},      // straddles the end
      {~std::uint64_t{0} - 63, kMin},
  };
  for (const BulkRef& r : bad) {
    EXPECT_THROW(p.reader.take(r, out), mproc::SerializationError) << r.position << " " << r.length;
  }
  EXPECT_THROW(BulkRing().take(*ref, out), mproc::SerializationError);
  // After all that the real body still comes out.
  p.reader.take(*ref, out);
  EXPECT_TRUE(same(out, body(kMin, 1)));
}

TEST(BulkRing, AViewHoldsItsRoomUntilReleased) {
  Pair p;
  const auto a = body(kCap / 2, 1), b = body(kCap / 2, 2), c = body(kMin, 3);
  const auto ra = p.writer.put(a), rb = p.writer.put(b);
  ASSERT_TRUE(ra && rb);
  const auto va = p.reader.view(*ra);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), va.begin(), va.end()));
  const auto vb = p.reader.view(*rb);  // releases a's room, holds b's
  EXPECT_TRUE(std::equal(b.begin(), b.end(), vb.begin(), vb.end()));
  // b still lies where a new body would go after a's room: a fits, as
  // a's room is free; but no more after it while b is viewed.
  const auto rc = p.writer.put(c);
  ASSERT_TRUE(rc.has_value());
  EXPECT_FALSE(p.writer.put(body(kCap / 2, 4)).has_value());
  p.reader.release();
  ByteBuffer out;
  p.reader.take(*rc, out);
  EXPECT_TRUE(same(out, c));
  EXPECT_THROW((void)p.reader.view(BulkRef{3, kMin}), mproc::SerializationError);
}

TEST(BulkRing, ResetStartsBothEndsOver) {
  Pair p;
  ASSERT_TRUE(p.writer.put(body(kMin, 1)).has_value());
  ASSERT_TRUE(p.writer.put(body(kMin, 2)).has_value());
  p.writer.reset();
  p.reader.reset();
  const auto ref = p.writer.put(body(kMin, 3));
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->position, 0u);
  ByteBuffer out;
  p.reader.take(*ref, out);
  EXPECT_TRUE(same(out, body(kMin, 3)));
}

}  // namespace
