// test_queue.cpp: tests of queue.hpp, simple_queue.hpp and
// joinable_queue.hpp (API.md section 5): the shared-memory queues, within
// one process and between processes under every start method, including
// processes killed in the middle of a get or a put.
//
// Children report through queues and pipes (what is tested here) and
// through their exit codes; every blocking call in a test has a guard
// timeout (mproc_test::kGuard), so a bug fails the test instead of hanging.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/joinable_queue.hpp"
#include "mproc/pipe.hpp"
#include "mproc/pool.hpp"
#include "mproc/process.hpp"
#include "mproc/queue.hpp"
#include "mproc/simple_queue.hpp"

namespace {

using mproc::StartMethod;
using mproc_test::kGuard;
using mproc_test::wait_until;
using namespace std::chrono_literals;

// Sanitizers make big copies slow and memory-hungry: smaller "huge" items.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::size_t kHuge = std::size_t{64} << 20;
constexpr std::size_t kKillItem = std::size_t{16} << 20;
#else
constexpr std::size_t kHuge = std::size_t{256} << 20;
// Items for the kill-in-the-middle tests: large enough that copying one
// takes tens of milliseconds (the window the test kills in), small enough
// to keep six of these tests cheap.
constexpr std::size_t kKillItem = std::size_t{64} << 20;
#endif

mproc::detail::QueueCore& core_of(const auto& q) { return mproc::detail::QueueAccess::core(q); }

struct Point {
  int x;
  double y;
  friend bool operator==(const Point&, const Point&) = default;
};

struct Named {
  std::string name;
  std::vector<int> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, values);
  }
  friend bool operator==(const Named&, const Named&) = default;
};

// A deterministic byte pattern (period 251, offset by `seed`), so a torn or
// mixed-up item shows. Built and checked a period at a time: these run over
// hundreds of MiB.
std::vector<char> period_of(char seed) {
  std::vector<char> p(251);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>(seed + static_cast<char>(i));
  return p;
}
std::vector<char> pattern(std::size_t n, char seed) {
  const auto p = period_of(seed);
  std::vector<char> v(n);
  for (std::size_t at = 0; at < n; at += p.size()) std::memcpy(v.data() + at, p.data(), std::min(p.size(), n - at));
  return v;
}
bool is_pattern(const std::vector<char>& v, char seed) {
  const auto p = period_of(seed);
  for (std::size_t at = 0; at < v.size(); at += p.size()) {
    if (std::memcmp(v.data() + at, p.data(), std::min(p.size(), v.size() - at)) != 0) return false;
  }
  return true;
}

// Polls `pred` every millisecond (no sleeping as synchronisation: the
// guard only bounds the wait).
bool poll_fast(const std::function<bool()>& pred, std::chrono::milliseconds guard = kGuard) {
  const auto end = std::chrono::steady_clock::now() + guard;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    ::usleep(500);
  }
  return pred();
}

// ------------------------------------------------------- child targets ---

void put_range(mproc::Queue<int> q, int from, int to) {
  for (int i = from; i < to; ++i) q.put(i);
}

// Puts 0, 1, 2, ... until it is killed (or the guard runs out).
void put_until_killed(mproc::Queue<int> q) {
  for (int i = 0; i < (1 << 30); ++i) q.put(i);
}

// Takes items until it gets -1, then reports everything it took.
void collect_until_sentinel(mproc::Queue<int> q, mproc::Queue<std::vector<int>> results) {
  std::vector<int> got;
  for (;;) {
    const int v = q.get(std::chrono::seconds(20));
    if (v == -1) break;
    got.push_back(v);
  }
  results.put(got);
}

void echo_doubled(mproc::Queue<int> in, mproc::Queue<int> out, int n) {
  for (int i = 0; i < n; ++i) out.put(2 * in.get(std::chrono::seconds(20)));
}

// Takes `n` items, reporting each, then blocks until killed (bounded).
void take_n_then_hang(mproc::Queue<int> q, mproc::Queue<int> report, mproc::Queue<int> never, int n) {
  for (int i = 0; i < n; ++i) report.put(q.get(std::chrono::seconds(20)));
  try {
    never.get(std::chrono::seconds(30));
  } catch (const mproc::Empty&) {
  }
  ::_exit(97);
}

// Takes items as fast as it can, reporting each over a pipe, until killed.
void take_and_report(mproc::Queue<int> q, mproc::Connection<int> report) {
  for (;;) report.send(q.get(std::chrono::seconds(30)));
}

void put_huge(mproc::Queue<std::vector<char>> q, std::size_t n) { q.put(pattern(n, 'h')); }

void get_one_then_hang(mproc::Queue<std::vector<char>> q, mproc::Queue<int> never) {
  auto v = q.get(std::chrono::seconds(20));
  (void)v;
  try {
    never.get(std::chrono::seconds(30));
  } catch (const mproc::Empty&) {
  }
  ::_exit(97);
}

void sleep_in_get(mproc::Queue<int> q) {
  try {
    q.get(std::chrono::seconds(30));
  } catch (const mproc::Empty&) {
  }
  ::_exit(97);
}

void get_and_forward(mproc::Queue<int> q, mproc::Queue<int> out) { out.put(q.get(std::chrono::seconds(20))); }

void wait_then_put(mproc::Queue<int> go, mproc::Queue<int> q, int v) {
  go.get(std::chrono::seconds(20));
  q.put(v);
}

void worker_with_task_done(mproc::JoinableQueue<int> q, mproc::Queue<long> sums) {
  long sum = 0;
  for (;;) {
    const int v = q.get(std::chrono::seconds(20));
    if (v < 0) {
      q.task_done();
      break;
    }
    sum += v;
    q.task_done();
  }
  sums.put(sum);
}

void simple_put(mproc::SimpleQueue<std::string> q, std::string s) { q.put(s); }

int put_square(mproc::Queue<int> q, int x) {
  q.put(x * x);
  return x;
}

void put_big_items(mproc::Queue<std::vector<char>> q, int n, int seed) {
  for (int i = 0; i < n; ++i) q.put(pattern(std::size_t{100000} + static_cast<std::size_t>(i) * 1000, static_cast<char>(seed + i)));
}

// --------------------------------------------------------- single process ---

TEST(Queue, PutGetRoundTripPreservesOrder) {
  mproc::Queue<int> q;
  for (int i = 0; i < 100; ++i) q.put(i);
  EXPECT_EQ(q.qsize(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(q.get(), i);
  EXPECT_TRUE(q.empty());
}

TEST(Queue, ManySmallItemsCrossSegmentBoundaries) {
  mproc::Queue<std::string> q;
  constexpr int n = 50000;  // far more than one 64 KiB segment holds
  for (int i = 0; i < n; ++i) q.put(std::to_string(i));
  for (int i = 0; i < n; ++i) ASSERT_EQ(q.get(), std::to_string(i));
  EXPECT_TRUE(q.empty());
}

TEST(Queue, GetNowaitOnEmptyThrowsEmpty) {
  mproc::Queue<int> q;
  EXPECT_THROW(q.get_nowait(), mproc::Empty);
  q.put(5);
  EXPECT_EQ(q.get_nowait(), 5);
  EXPECT_THROW(q.get_nowait(), mproc::Empty);
}

TEST(Queue, GetTimesOutWhenEmpty) {
  mproc::Queue<int> q;
  try {
    q.get(50ms);
    FAIL() << "get(timeout) on an empty queue returned";
  } catch (const mproc::Empty& e) {
    EXPECT_NE(std::string(e.what()).find("Queue::get"), std::string::npos) << e.what();
  }
}

// The timeout of get/put counts from the first moment the call has to wait
// (it reads no clock while items flow); a timeout of zero or less is then
// already over, and the message still names the timeout.
TEST(Queue, ZeroAndNegativeTimeoutsTakeWhatIsThereAndFailOtherwise) {
  mproc::Queue<int> q(1);
  try {
    q.get(0ms);
    FAIL() << "get(0ms) on an empty queue returned";
  } catch (const mproc::Empty& e) {
    EXPECT_NE(std::string(e.what()).find("nothing arrived within 0ms"), std::string::npos) << e.what();
  }
  EXPECT_THROW(q.get(-5ms), mproc::Empty);
  q.put(7, 0ms);  // room: no wait needed
  EXPECT_THROW(q.put(8, 0ms), mproc::Full);
  EXPECT_THROW(q.put(8, -1s), mproc::Full);
  EXPECT_EQ(q.get(0ms), 7);  // an item: taken although the timeout is over
  q.put(9, -1s);
  EXPECT_EQ(q.get(-1s), 9);
  EXPECT_TRUE(q.empty());
}

TEST(Queue, PutNowaitOnFullThrowsFull) {
  mproc::Queue<int> q(2);
  EXPECT_EQ(q.maxsize(), 2);
  q.put_nowait(1);
  EXPECT_FALSE(q.full());
  q.put_nowait(2);
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put_nowait(3), mproc::Full);
  EXPECT_EQ(q.get(), 1);
  EXPECT_FALSE(q.full());
  q.put_nowait(3);
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
}

TEST(Queue, PutTimesOutWhenFull) {
  mproc::Queue<int> q(1);
  q.put(1);
  EXPECT_THROW(q.put(2, 50ms), mproc::Full);
  EXPECT_EQ(q.qsize(), 1u);
}

TEST(Queue, LargeItemsOnFullBoundedQueueTimeOutAndLeaveNothingBehind) {
  mproc::Queue<std::vector<char>> q(1);
  q.put(pattern(100, 'a'));
  EXPECT_THROW(q.put(pattern(1 << 20, 'b'), 50ms), mproc::Full);
  EXPECT_THROW(q.put_nowait(pattern(1 << 20, 'b')), mproc::Full);
  EXPECT_EQ(core_of(q).in_flight(), 0u);
  EXPECT_TRUE(is_pattern(q.get(), 'a'));
  EXPECT_TRUE(q.empty());
}

TEST(Queue, UnboundedQueueIsNeverFull) {
  mproc::Queue<int> q;
  EXPECT_EQ(q.maxsize(), 0);
  for (int i = 0; i < 1000; ++i) q.put_nowait(i);
  EXPECT_FALSE(q.full());
}

TEST(Queue, BlockedGetWakesOnPutFromAnotherThread) {
  mproc::Queue<int> q;
  std::atomic<int> got{-1};
  std::thread t([&] { got = q.get(kGuard); });
  q.put(42);
  t.join();
  EXPECT_EQ(got.load(), 42);
}

TEST(Queue, BlockedPutResumesWhenSpaceFrees) {
  mproc::Queue<int> q(1);
  q.put(1);
  std::atomic<bool> done{false};
  std::thread t([&] {
    q.put(2, kGuard);
    done = true;
  });
  EXPECT_EQ(q.get(kGuard), 1);
  EXPECT_EQ(q.get(kGuard), 2);
  t.join();
  EXPECT_TRUE(done.load());
}

TEST(Queue, CloseStopsPutsOnThisHandleAndItsCopies) {
  mproc::Queue<int> q;
  mproc::Queue<int> copy = q;
  q.put(1);
  q.close();
  EXPECT_TRUE(q.closed());
  EXPECT_TRUE(copy.closed());
  EXPECT_THROW(q.put(2), mproc::Error);
  EXPECT_THROW(copy.put_nowait(2), mproc::Error);
  // Items put before stay; get goes on working.
  EXPECT_EQ(q.get(kGuard), 1);
  q.close();  // idempotent
}

// The handle as another process would receive it (encoded, then decoded):
// a separate handle, in this process, to the same queue.
template <class Q>
Q received_copy(const Q& q) {
  mproc::detail::Writer w;
  mproc::encode(w, q);
  const std::vector<int> fds = w.fds();
  mproc::detail::Reader r(w.bytes(), fds);
  return mproc::decode<Q>(r);
}

TEST(Queue, BlockedGetterIsUnaffectedByClose) {
  mproc::Queue<int> q;
  mproc::Queue<int> other = received_copy(q);  // another handle, still open
  EXPECT_FALSE(other == q);
  std::atomic<int> got{-1};
  std::thread t([&] { got = q.get(kGuard); });
  q.close();
  EXPECT_THROW(q.put(1), mproc::Error);
  EXPECT_FALSE(other.closed());
  other.put(99);  // the getter blocked on the closed handle receives it
  t.join();
  EXPECT_EQ(got.load(), 99);
  // A received copy is another handle, open (Python's unpickled Queue is
  // too): close() concerns the handle it was called on.
  EXPECT_FALSE(received_copy(q).closed());
}

TEST(Queue, ValuesOfManyTypesRoundTrip) {
  using V = std::variant<int, std::string, Point>;
  mproc::Queue<V> q;
  q.put(V(3));
  q.put(V(std::string("three")));
  q.put(V(Point{3, 3.5}));
  EXPECT_EQ(std::get<int>(q.get()), 3);
  EXPECT_EQ(std::get<std::string>(q.get()), "three");
  EXPECT_EQ(std::get<Point>(q.get()), (Point{3, 3.5}));

  mproc::Queue<std::map<std::string, std::vector<Named>>> q2;
  std::map<std::string, std::vector<Named>> m{{"a", {Named{"x", {1, 2}}, Named{"y", {}}}}, {"b", {}}};
  q2.put(m);
  EXPECT_EQ(q2.get(), m);

  mproc::Queue<std::optional<std::string>> q3;
  const std::optional<std::string> none, big(std::string(20000, 'z'));  // big: a large item
  q3.put(none);
  q3.put(big);
  EXPECT_FALSE(q3.get().has_value());
  EXPECT_EQ(q3.get(), std::string(20000, 'z'));
}

TEST(Queue, ItemSizesAroundTheInlineLimitKeepOrder) {
  mproc::Queue<std::vector<char>> q;
  const std::size_t lim = mproc::detail::QueueCore::kInlineMax;
  const std::vector<std::size_t> sizes{0, 1, lim - 16, lim - 8, lim, lim + 1, 65536, 65536 * 2 + 3, 1 << 20, 5, 3 << 20};
  for (std::size_t i = 0; i < sizes.size(); ++i) q.put(pattern(sizes[i], static_cast<char>(i)));
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const auto v = q.get(kGuard);
    ASSERT_EQ(v.size(), sizes[i]);
    ASSERT_TRUE(is_pattern(v, static_cast<char>(i))) << "item " << i;
  }
  EXPECT_EQ(core_of(q).in_flight(), 0u);
}

TEST(Queue, HugeItemNeedsNoReservationAndGivesItsMemoryBack) {
  mproc::Queue<std::vector<char>> q;
  const auto idle = core_of(q).heap_bytes();
  EXPECT_LT(idle, std::uint64_t{1} << 20) << "a new queue must not reserve memory up front";
  q.put(pattern(kHuge, 'H'));
  EXPECT_GE(core_of(q).heap_bytes(), kHuge);
  const auto v = q.get(kGuard);
  EXPECT_EQ(v.size(), kHuge);
  EXPECT_TRUE(is_pattern(v, 'H'));
  EXPECT_LT(core_of(q).heap_bytes(), std::uint64_t{4} << 20) << "the huge item's pages were not given back";
}

TEST(Queue, HandlesCannotTravelThroughAQueue) {
  mproc::Queue<mproc::Queue<int>> q;
  mproc::Queue<int> inner;
  EXPECT_THROW(q.put(inner), mproc::Error);
  EXPECT_TRUE(q.empty());
}

TEST(Queue, ItemOfAnotherTypeGivesSerializationError) {
  mproc::Queue<std::string> q;
  const std::vector<std::byte> junk{std::byte{0xff}, std::byte{0xff}, std::byte{0xff}};
  ASSERT_TRUE(core_of(q).put(junk, std::nullopt, true));
  q.put("after");
  EXPECT_THROW(q.get(), mproc::SerializationError);
  EXPECT_EQ(q.get(), "after");
}

TEST(Queue, ThreadsManyProducersManyConsumers) {
  mproc::Queue<int> q(64);
  constexpr int producers = 3, consumers = 3, per = 3000;
  std::vector<std::thread> ts;
  std::vector<std::vector<int>> got(consumers);
  for (int c = 0; c < consumers; ++c) {
    ts.emplace_back([&, c] {
      for (;;) {
        const int v = q.get(kGuard);
        if (v < 0) return;
        got[static_cast<std::size_t>(c)].push_back(v);
      }
    });
  }
  std::vector<std::thread> ps;
  for (int p = 0; p < producers; ++p) {
    ps.emplace_back([&, p] {
      for (int i = 0; i < per; ++i) q.put(p * per + i, kGuard);
    });
  }
  for (auto& t : ps) t.join();
  for (int c = 0; c < consumers; ++c) q.put(-1);
  for (auto& t : ts) t.join();
  std::vector<int> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  std::vector<int> expect(producers * per);
  std::iota(expect.begin(), expect.end(), 0);
  EXPECT_EQ(all, expect);
}

TEST(JoinableQueue, TaskDoneMoreThanPutsThrows) {
  mproc::JoinableQueue<int> q;
  EXPECT_THROW(q.task_done(), mproc::Error);
  q.put(1);
  q.get();
  q.task_done();
  EXPECT_THROW(q.task_done(), mproc::Error);
}

TEST(JoinableQueue, JoinWaitsForEveryTaskDone) {
  mproc::JoinableQueue<int> q;
  EXPECT_TRUE(q.join(0ms));  // nothing put: nothing to wait for
  for (int i = 0; i < 10; ++i) q.put(i);
  EXPECT_FALSE(q.join(20ms));
  std::thread t([&] {
    for (int i = 0; i < 10; ++i) {
      q.get(kGuard);
      q.task_done();
    }
  });
  EXPECT_TRUE(q.join(kGuard));
  t.join();
}

TEST(JoinableQueue, JoinWithTimeoutIsFalseWhileATaskIsOpen) {
  mproc::JoinableQueue<int> q;
  q.put(1);
  q.get();
  EXPECT_FALSE(q.join(30ms));  // got, but task_done() not called yet
  q.task_done();
  EXPECT_TRUE(q.join(kGuard));
}

TEST(SimpleQueue, PutGetEmptyClose) {
  mproc::SimpleQueue<std::string> q;
  EXPECT_TRUE(q.empty());
  q.put("a");
  q.put("b");
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.get(), "a");
  q.close();
  EXPECT_THROW(q.put("c"), mproc::Error);
  EXPECT_EQ(q.get(), "b");
  EXPECT_TRUE(q.empty());
}

TEST(Queue, HandleOfTheWrongKindIsRejectedOnArrival) {
  mproc::JoinableQueue<int> j;
  mproc::detail::Writer w;
  mproc::encode(w, j);
  auto fds = w.fds();
  mproc::detail::Reader r(w.bytes(), fds);
  EXPECT_THROW(mproc::decode<mproc::Queue<int>>(r), mproc::SerializationError);
}

// ---------------------------------------------------------- across processes ---

class QueueProcess : public ::testing::TestWithParam<StartMethod> {
 protected:
  mproc::ProcessOptions opts() const {
    mproc::ProcessOptions o;
    o.start_method = GetParam();
    return o;
  }
  static void join_or_kill(mproc::Process& p) {
    if (!p.join(kGuard)) {
      p.kill();
      p.join(kGuard);
      ADD_FAILURE() << "a child did not end in time";
    }
  }
};

INSTANTIATE_TEST_SUITE_P(StartMethod, QueueProcess, mproc_test::all_start_methods(), mproc_test::start_method_name);

TEST_P(QueueProcess, ChildPutsParentGets) {
  mproc::Queue<int> q;
  mproc::Process p(opts(), put_range, q, 0, 1000);
  p.start();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(q.get(kGuard), i);
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_TRUE(q.empty());
}

TEST_P(QueueProcess, ParentPutsChildAnswers) {
  mproc::Queue<int> in, out;
  mproc::Process p(opts(), echo_doubled, in, out, 200);
  p.start();
  for (int i = 0; i < 200; ++i) {
    in.put(i);
    ASSERT_EQ(out.get(kGuard), 2 * i);  // ping-pong: one item in flight
  }
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(QueueProcess, BoundedQueueThrottlesAProducerInAnotherProcess) {
  mproc::Queue<int> q(2);
  mproc::Process p(opts(), put_range, q, 0, 300);
  p.start();
  for (int i = 0; i < 300; ++i) {
    ASSERT_LE(q.qsize(), 2u);
    ASSERT_EQ(q.get(kGuard), i);
  }
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(QueueProcess, LargeItemsFromAChildArriveWhole) {
  mproc::Queue<std::vector<char>> q;
  mproc::Process p(opts(), put_big_items, q, 20, 7);
  p.start();
  for (int i = 0; i < 20; ++i) {
    const auto v = q.get(kGuard);
    ASSERT_EQ(v.size(), std::size_t{100000} + static_cast<std::size_t>(i) * 1000);
    ASSERT_TRUE(is_pattern(v, static_cast<char>(7 + i))) << "item " << i;
  }
  join_or_kill(p);
}

TEST_P(QueueProcess, ManyProducersManyConsumersLoseNothing) {
  mproc::Queue<int> q(100);
  mproc::Queue<std::vector<int>> results;
  constexpr int producers = 3, consumers = 2, per = 2000;
  std::vector<mproc::Process> ps;
  for (int c = 0; c < consumers; ++c) ps.emplace_back(opts(), collect_until_sentinel, q, results);
  for (int p = 0; p < producers; ++p) ps.emplace_back(opts(), put_range, q, p * per, (p + 1) * per);
  for (auto& p : ps) p.start();
  for (int p = 0; p < producers; ++p) join_or_kill(ps[static_cast<std::size_t>(consumers + p)]);
  for (int c = 0; c < consumers; ++c) q.put(-1);
  std::vector<int> all;
  for (int c = 0; c < consumers; ++c) {
    auto got = results.get(kGuard);
    all.insert(all.end(), got.begin(), got.end());
  }
  for (auto& p : ps) join_or_kill(p);
  std::sort(all.begin(), all.end());
  std::vector<int> expect(producers * per);
  std::iota(expect.begin(), expect.end(), 0);
  EXPECT_EQ(all, expect) << "items were lost or duplicated";
}

TEST_P(QueueProcess, ConsumerKilledBetweenGetsLosesNothing) {
  mproc::Queue<int> q, report, never;
  constexpr int n = 50;
  for (int i = 0; i < n; ++i) q.put(i);
  mproc::Process p(opts(), take_n_then_hang, q, report, never, 7);
  p.start();
  std::vector<int> taken;
  for (int i = 0; i < 7; ++i) taken.push_back(report.get(kGuard));
  p.kill();
  join_or_kill(p);
  std::vector<int> rest;
  while (!q.empty()) rest.push_back(q.get(kGuard));
  // What the dead consumer took plus what is left is everything, once.
  EXPECT_EQ(taken, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
  std::vector<int> expect_rest(n - 7);
  std::iota(expect_rest.begin(), expect_rest.end(), 7);
  EXPECT_EQ(rest, expect_rest);
  // And the queue still works.
  q.put(1234);
  EXPECT_EQ(q.get(kGuard), 1234);
}

TEST_P(QueueProcess, BusyConsumerKilledAtAnyPointNeverDuplicatesAndLosesAtMostOne) {
  mproc::Queue<int> q;
  constexpr int n = 20000;
  for (int i = 0; i < n; ++i) q.put(i);
  auto [mine, theirs] = mproc::Pipe<int>();
  mproc::Process p(opts(), take_and_report, q, theirs);
  p.start();
  theirs.close();
  std::vector<int> taken;
  // Let it take some, then kill it wherever it is.
  while (taken.size() < 500) taken.push_back(mine.recv());
  p.kill();
  join_or_kill(p);
  for (;;) {
    try {
      taken.push_back(mine.recv());  // what it reported before dying
    } catch (const mproc::EOFError&) {
      break;
    }
  }
  std::vector<int> all = taken;
  while (!q.empty()) all.push_back(q.get(kGuard));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "an item was delivered twice";
  // At most the one item it had taken but not yet reported is missing.
  EXPECT_GE(all.size(), static_cast<std::size_t>(n - 1));
  EXPECT_LE(all.size(), static_cast<std::size_t>(n));
  q.put(-5);
  EXPECT_EQ(q.get(kGuard), -5);
  EXPECT_EQ(core_of(q).in_flight(), 0u);
}

TEST_P(QueueProcess, BusyProducerKilledAtAnyPointLeavesAPrefixInOrder) {
  // The producer dies wherever it is in a tight put loop: inside its
  // commit (the put log is then replayed by the next holder of the put
  // lock, here the parent's get_nowait), while crossing into a new
  // segment (the heap log), or between puts. What is left must be exactly
  // 0..k-1 in order, counted right, and the queue must go on working.
  for (int round = 0; round < 3; ++round) {
    mproc::Queue<int> q;
    mproc::Process p(opts(), put_until_killed, q);
    p.start();
    const std::size_t target = 20000u + 7919u * static_cast<std::size_t>(round);
    ASSERT_TRUE(poll_fast([&] { return q.qsize() >= target || !p.is_alive(); }));
    p.kill();
    join_or_kill(p);
    int expect = 0;
    for (;;) {
      try {
        const int v = q.get_nowait();
        ASSERT_EQ(v, expect) << "round " << round;
        ++expect;
      } catch (const mproc::Empty&) {
        break;
      }
    }
    EXPECT_GE(static_cast<std::size_t>(expect), target);
    EXPECT_EQ(q.qsize(), 0u);
    q.put(-5);
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(q.get(kGuard), -5);
    EXPECT_EQ(core_of(q).in_flight(), 0u);
  }
}

TEST_P(QueueProcess, ProducerKilledMidPutOfAHugeItemLeavesNoTrace) {
  mproc::Queue<std::vector<char>> q;
  q.put(pattern(10, 'a'));
  mproc::Process p(opts(), put_huge, q, kKillItem);
  p.start();
  // Kill it while its item is being written (if the window is missed the
  // put completed and the item must then be whole).
  const bool mid_write = poll_fast([&] { return core_of(q).in_flight() > 0 || !p.is_alive(); }) &&
                         core_of(q).in_flight() > 0;
  p.kill();
  // Recorded (not asserted: where exactly the kill lands is up to the
  // scheduler), so a run shows whether the mid-write case was exercised.
  RecordProperty("killed_mid_write", mid_write ? "yes" : "no");
  std::printf("killed mid-write: %s\n", mid_write ? "yes" : "no");
  join_or_kill(p);
  q.put(pattern(10, 'b'));
  EXPECT_EQ(core_of(q).in_flight(), 0u) << "the dead writer's block was not reclaimed";
  EXPECT_TRUE(is_pattern(q.get(kGuard), 'a'));
  auto next = q.get(kGuard);
  if (next.size() == kKillItem) {
    EXPECT_TRUE(is_pattern(next, 'h')) << "a visible item must be complete";
    next = q.get(kGuard);
  }
  EXPECT_EQ(next.size(), 10u);
  EXPECT_TRUE(is_pattern(next, 'b'));
  EXPECT_TRUE(q.empty());
  EXPECT_LT(core_of(q).heap_bytes(), std::uint64_t{8} << 20) << "the half-written item's memory was not given back";
}

TEST_P(QueueProcess, ConsumerKilledWhileTakingAHugeItemLeavesTheQueueUsable) {
  mproc::Queue<std::vector<char>> q;
  mproc::Queue<int> never;
  q.put(pattern(kKillItem, 'g'));
  mproc::Process p(opts(), get_one_then_hang, q, never);
  p.start();
  ASSERT_TRUE(poll_fast([&] { return q.empty(); })) << "the child never took the item";
  const bool mid_read = core_of(q).in_flight() > 0;  // still decoding it
  p.kill();
  RecordProperty("killed_mid_read", mid_read ? "yes" : "no");
  std::printf("killed mid-read: %s\n", mid_read ? "yes" : "no");
  join_or_kill(p);
  // The item went with the dead consumer (documented); nothing else did.
  EXPECT_EQ(core_of(q).in_flight(), 0u);
  q.put(pattern(20, 'n'));
  const auto v = q.get(kGuard);
  EXPECT_TRUE(is_pattern(v, 'n'));
  EXPECT_EQ(v.size(), 20u);
  EXPECT_LT(core_of(q).heap_bytes(), std::uint64_t{8} << 20);
}

TEST_P(QueueProcess, SleepingConsumerKilledDoesNotStrandItems) {
  mproc::Queue<int> q, out;
  mproc::Process sleeper(opts(), sleep_in_get, q);
  sleeper.start();
  ASSERT_TRUE(wait_until([&] { return sleeper.is_alive(); }));
  mproc::Process taker(opts(), get_and_forward, q, out);
  taker.start();
  sleeper.kill();
  join_or_kill(sleeper);
  q.put(77);
  EXPECT_EQ(out.get(kGuard), 77);
  join_or_kill(taker);
}

TEST_P(QueueProcess, CloseInParentDoesNotAffectTheChildsHandle) {
  mproc::Queue<int> q, go;
  mproc::Process p(opts(), wait_then_put, go, q, 5);
  p.start();
  q.close();
  EXPECT_THROW(q.put(1), mproc::Error);
  go.put(1);
  EXPECT_EQ(q.get(kGuard), 5);  // the child's handle still puts
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(QueueProcess, JoinableQueueWorkersFinishEveryTask) {
  mproc::JoinableQueue<int> q;
  mproc::Queue<long> sums;
  std::vector<mproc::Process> ws;
  for (int i = 0; i < 2; ++i) ws.emplace_back(opts(), worker_with_task_done, q, sums);
  for (auto& w : ws) w.start();
  long expect = 0;
  for (int i = 1; i <= 500; ++i) {
    q.put(i);
    expect += i;
  }
  EXPECT_TRUE(q.join(kGuard)) << "join() did not see every task_done()";
  q.put(-1);
  q.put(-1);
  const long total = sums.get(kGuard) + sums.get(kGuard);
  EXPECT_EQ(total, expect);
  for (auto& w : ws) join_or_kill(w);
  EXPECT_TRUE(q.join(kGuard));
}

TEST_P(QueueProcess, PoolTasksPutIntoAQueuePassedAsArgument) {
  if (mproc_test::fork_pool_unsafe_under_sanitizers(GetParam())) {
    GTEST_SKIP() << "fork-started pool workers under GCC 12's sanitizers (see pool_support.hpp)";
  }
  mproc::Queue<int> q;
  mproc::PoolOptions o;
  o.processes = 2;
  o.start_method = GetParam();
  {
    mproc::Pool pool(o);
    for (int i = 1; i <= 6; ++i) EXPECT_EQ(pool.apply(put_square, q, i), i);
    pool.close();
    pool.join();
  }
  std::vector<int> got;
  for (int i = 0; i < 6; ++i) got.push_back(q.get(kGuard));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int>{1, 4, 9, 16, 25, 36}));
}

TEST_P(QueueProcess, SimpleQueueCrossesIntoAChild) {
  mproc::SimpleQueue<std::string> q;
  mproc::Process p(opts(), simple_put, q, std::string("from child"));
  p.start();
  join_or_kill(p);
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.get(), "from child");
}

}  // namespace
