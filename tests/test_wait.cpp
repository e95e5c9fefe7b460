// test_wait.cpp: tests of wait.hpp (API.md section 5): mproc::wait over
// connections, queues and process sentinels, alone and mixed, with and
// without a timeout, and woken from other threads and processes.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/pipe.hpp"
#include "mproc/process.hpp"
#include "mproc/queue.hpp"
#include "mproc/simple_queue.hpp"
#include "mproc/joinable_queue.hpp"
#include "mproc/wait.hpp"

namespace {

using mproc::StartMethod;
using mproc_test::kGuard;
using namespace std::chrono_literals;

void put_after_go(mproc::Queue<int> go, mproc::Queue<int> q, int v) {
  go.get(std::chrono::seconds(20));
  q.put(v);
}

void send_after_go(mproc::Queue<int> go, mproc::Connection<int> c, int v) {
  go.get(std::chrono::seconds(20));
  c.send(v);
}

void exit_after_go(mproc::Queue<int> go) { go.get(std::chrono::seconds(20)); }

bool contains(const std::vector<mproc::Waitable>& v, const mproc::Waitable& w) {
  return std::find(v.begin(), v.end(), w) != v.end();
}

TEST(Wait, ReturnsOnlyTheReadyConnections) {
  auto [a1, b1] = mproc::Pipe<int>();
  auto [a2, b2] = mproc::Pipe<int>();
  auto [a3, b3] = mproc::Pipe<int>();
  a2.send(2);
  a3.send(3);
  const std::vector<mproc::Connection<int>> conns{b1, b2, b3};
  const auto ready = mproc::wait(conns, kGuard);
  ASSERT_EQ(ready.size(), 2u);
  EXPECT_TRUE(ready[0] == b2);
  EXPECT_TRUE(ready[1] == b3);
}

TEST(Wait, TimesOutWithAnEmptyResult) {
  auto [a, b] = mproc::Pipe<int>();
  mproc::Queue<int> q;
  EXPECT_TRUE(mproc::wait(std::vector<mproc::Connection<int>>{b}, 20ms).empty());
  EXPECT_TRUE(mproc::wait(std::vector<mproc::Queue<int>>{q}, 20ms).empty());
  EXPECT_TRUE(mproc::wait({mproc::Waitable(b), mproc::Waitable(q)}, 0ms).empty());
}

TEST(Wait, EmptyListReturnsAtOnce) {
  EXPECT_TRUE(mproc::wait(std::vector<int>{}).empty());
}

TEST(Wait, QueueIsReadyWhenNotEmpty) {
  mproc::Queue<int> q1, q2;
  q2.put(1);
  auto ready = mproc::wait(std::vector<mproc::Queue<int>>{q1, q2}, kGuard);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == q2);
  EXPECT_EQ(q2.get(), 1);
  // Taken: not ready any more (no stale signal).
  EXPECT_TRUE(mproc::wait(std::vector<mproc::Queue<int>>{q1, q2}, 20ms).empty());
}

TEST(Wait, WakesWhenAnotherThreadPuts) {
  mproc::Queue<int> q;
  std::thread t([q]() mutable { q.put(5); });
  const auto ready = mproc::wait(std::vector<mproc::Queue<int>>{q}, kGuard);
  t.join();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(q.get(kGuard), 5);
}

TEST(Wait, StaleSignalAfterAGetIsNotReported) {
  mproc::Queue<int> q;
  std::thread waiter([q] {
    // Repeated waits while another thread puts and takes: whenever wait
    // says ready, the item was there at that moment; it never returns
    // "ready" for a queue that was empty throughout (checked below by
    // the final timed-out wait).
    for (int i = 0; i < 200; ++i) mproc::wait(std::vector<mproc::Queue<int>>{q}, 5ms);
  });
  for (int i = 0; i < 200; ++i) {
    q.put(i);
    EXPECT_EQ(q.get(kGuard), i);
  }
  waiter.join();
  EXPECT_TRUE(mproc::wait(std::vector<mproc::Queue<int>>{q}, 10ms).empty());
}

TEST(Wait, MixOfKinds) {
  auto [a, b] = mproc::Pipe<std::string>();
  mproc::Queue<int> q;
  mproc::SimpleQueue<int> sq;
  mproc::JoinableQueue<int> jq;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const std::vector<mproc::Waitable> all{b, q, sq, jq, fds[0]};
  EXPECT_TRUE(mproc::wait(all, 0ms).empty());
  sq.put(1);
  ::close(fds[1]);  // hang-up: a sentinel-like descriptor becomes ready
  auto ready = mproc::wait(all, kGuard);
  EXPECT_EQ(ready.size(), 2u);
  EXPECT_TRUE(contains(ready, mproc::Waitable(sq)));
  EXPECT_TRUE(contains(ready, mproc::Waitable(fds[0])));
  EXPECT_FALSE(contains(ready, mproc::Waitable(q)));
  a.send("x");
  jq.put(2);
  ready = mproc::wait(all, kGuard);
  EXPECT_EQ(ready.size(), 4u);
  EXPECT_TRUE(contains(ready, mproc::Waitable(b)));
  EXPECT_TRUE(contains(ready, mproc::Waitable(jq)));
  ::close(fds[0]);
}

TEST(Wait, ClosedConnectionIsAnError) {
  auto [a, b] = mproc::Pipe<int>();
  b.close();
  EXPECT_THROW(mproc::wait(std::vector<mproc::Connection<int>>{b}, 0ms), mproc::Error);
}

class WaitProcess : public ::testing::TestWithParam<StartMethod> {
 protected:
  mproc::ProcessOptions opts() const {
    mproc::ProcessOptions o;
    o.start_method = GetParam();
    return o;
  }
};

INSTANTIATE_TEST_SUITE_P(StartMethod, WaitProcess, mproc_test::all_start_methods(), mproc_test::start_method_name);

TEST_P(WaitProcess, WakesWhenAnotherProcessPuts) {
  mproc::Queue<int> go, q;
  mproc::Process p(opts(), put_after_go, go, q, 8);
  p.start();
  EXPECT_TRUE(mproc::wait(std::vector<mproc::Queue<int>>{q}, 0ms).empty());
  go.put(1);
  const auto ready = mproc::wait(std::vector<mproc::Queue<int>>{q}, kGuard);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(q.get(kGuard), 8);
  ASSERT_TRUE(p.join(kGuard));
}

TEST_P(WaitProcess, SentinelConnectionAndQueueTogether) {
  mproc::Queue<int> go1, go2, go3, q;
  auto [mine, theirs] = mproc::Pipe<int>();
  mproc::Process exits(opts(), exit_after_go, go1);
  mproc::Process sends(opts(), send_after_go, go2, theirs, 4);
  mproc::Process puts(opts(), put_after_go, go3, q, 6);
  exits.start();
  sends.start();
  puts.start();
  theirs.close();
  const std::vector<mproc::Waitable> all{exits.sentinel(), mine, q};
  EXPECT_TRUE(mproc::wait(all, 0ms).empty());

  go1.put(1);
  auto ready = mproc::wait(all, kGuard);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == mproc::Waitable(exits.sentinel()));
  ASSERT_TRUE(exits.join(kGuard));

  go2.put(1);
  ready = mproc::wait(std::vector<mproc::Waitable>{mine, q}, kGuard);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_TRUE(ready[0] == mproc::Waitable(mine));
  EXPECT_EQ(mine.recv(), 4);

  go3.put(1);
  ready = mproc::wait(std::vector<mproc::Waitable>{q}, kGuard);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(q.get(kGuard), 6);
  ASSERT_TRUE(sends.join(kGuard));
  ASSERT_TRUE(puts.join(kGuard));
}

}  // namespace
