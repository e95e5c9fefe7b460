// test_barrier.cpp: tests of barrier.hpp: arrival indices, reuse over many
// cycles, breaking by timeout, abort and reset, use across processes under
// every start method, and a party that dies before arriving.

#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "helpers/test_support.hpp"
#include "mproc/barrier.hpp"
#include "mproc/errors.hpp"
#include "mproc/shared_value.hpp"
#include "sync_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_sync_test::start;
using mproc_test::kGuard;

TEST(Barrier, ReturnsADistinctArrivalIndexToEachParty) {
  mproc::Barrier barrier(3);
  EXPECT_EQ(barrier.parties(), 3);
  std::atomic<int> seen_mask{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] { seen_mask.fetch_or(1 << barrier.wait(kGuard)); });
  }
  seen_mask.fetch_or(1 << barrier.wait(kGuard));
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen_mask.load(), 0b111);
  EXPECT_EQ(barrier.n_waiting(), 0);
  EXPECT_FALSE(barrier.broken());
}

TEST(Barrier, OnePartyPassesAtOnce) {
  mproc::Barrier barrier(1);
  EXPECT_EQ(barrier.wait(), 0);
  EXPECT_EQ(barrier.wait(), 0);
}

TEST(Barrier, BadPartiesAndEmptyHandlesThrow) {
  EXPECT_THROW(mproc::Barrier(0), mproc::Error);
  EXPECT_THROW(mproc::Barrier(-2), mproc::Error);
  mproc::Barrier empty;
  EXPECT_FALSE(empty);
  EXPECT_THROW(empty.wait(), mproc::Error);
  EXPECT_THROW((void)empty.parties(), mproc::Error);
}

TEST(Barrier, IsReusableForManyCycles) {
  mproc::Barrier barrier(2);
  constexpr int kCycles = 200;
  long a = 0;  // written by the thread before each barrier, read after it
  std::thread t([&] {
    for (int i = 0; i < kCycles; ++i) {
      a = i;
      barrier.wait(kGuard);
      barrier.wait(kGuard);
    }
  });
  for (int i = 0; i < kCycles; ++i) {
    barrier.wait(kGuard);
    EXPECT_EQ(a, i);  // the barrier orders the thread's write before this read
    barrier.wait(kGuard);
  }
  t.join();
}

TEST(Barrier, ATimeoutBreaksItForEveryone) {
  mproc::Barrier barrier(2);
  EXPECT_THROW(barrier.wait(20ms), mproc::BrokenBarrierError);
  EXPECT_TRUE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0);
  EXPECT_THROW(barrier.wait(kGuard), mproc::BrokenBarrierError);
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
}

TEST(Barrier, TheDefaultTimeoutAppliesToWaitWithoutArguments) {
  mproc::Barrier barrier(2, 20ms);
  EXPECT_THROW(barrier.wait(), mproc::BrokenBarrierError);
  EXPECT_TRUE(barrier.broken());
}

TEST(Barrier, AbortWakesWaitersWithBrokenBarrierError) {
  mproc::Barrier barrier(3);
  std::atomic<int> broken_count{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      try {
        barrier.wait(kGuard);
      } catch (const mproc::BrokenBarrierError&) {
        broken_count.fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(mproc_test::wait_until([&] { return barrier.n_waiting() == 2; }));
  barrier.abort();
  for (auto& t : threads) t.join();
  EXPECT_EQ(broken_count.load(), 2);
  EXPECT_TRUE(barrier.broken());
  EXPECT_THROW(barrier.wait(kGuard), mproc::BrokenBarrierError);
}

TEST(Barrier, ResetBreaksCurrentWaitersAndThenWorksAgain) {
  mproc::Barrier barrier(2);
  std::atomic<bool> got_broken{false};
  std::thread t([&] {
    try {
      barrier.wait(kGuard);
    } catch (const mproc::BrokenBarrierError&) {
      got_broken = true;
    }
  });
  ASSERT_TRUE(mproc_test::wait_until([&] { return barrier.n_waiting() == 1; }));
  barrier.reset();
  t.join();
  EXPECT_TRUE(got_broken);
  EXPECT_FALSE(barrier.broken());
  // A fresh cycle works.
  std::thread t2([&] { barrier.wait(kGuard); });
  EXPECT_NO_THROW(barrier.wait(kGuard));
  t2.join();
}

TEST(Barrier, HandleCrossesAsBytesAndDescriptor) {
  mproc::Barrier barrier(2, 5s);
  mproc::detail::Writer w;
  mproc::detail::encode_value(w, barrier);
  mproc::detail::Reader r(w.bytes(), w.fds());
  auto other = mproc::detail::decode_value<mproc::Barrier>(r);
  EXPECT_EQ(other.parties(), 2);
  std::thread t([&] { other.wait(kGuard); });
  EXPECT_NO_THROW(barrier.wait(kGuard));
  t.join();
}

// ------------------------------------------------------ across processes ---

class BarrierAcrossProcesses : public ::testing::TestWithParam<mproc::StartMethod> {};

// Passes the barrier `cycles` times; records the arrival index of the
// first cycle, or -1 if the barrier broke.
void pass_barrier(mproc::Barrier barrier, mproc::RawValue<int> first_index, int cycles) {
  try {
    first_index.store(barrier.wait(std::chrono::seconds(20)));
    for (int i = 1; i < cycles; ++i) barrier.wait(std::chrono::seconds(20));
  } catch (const mproc::BrokenBarrierError&) {
    first_index.store(-1);
  }
}

TEST_P(BarrierAcrossProcesses, AllPartiesPassTogetherManyTimes) {
  constexpr int kChildren = 3;
  constexpr int kCycles = 50;
  mproc::Barrier barrier(kChildren + 1);
  std::vector<mproc::RawValue<int>> indices;
  std::vector<mproc::Process> ps;
  for (int i = 0; i < kChildren; ++i) {
    indices.emplace_back(-2);
    ps.push_back(start(GetParam(), pass_barrier, barrier, indices.back(), kCycles));
  }
  std::set<int> seen;
  seen.insert(barrier.wait(kGuard));
  for (int i = 1; i < kCycles; ++i) barrier.wait(kGuard);
  for (int i = 0; i < kChildren; ++i) {
    ASSERT_TRUE(ps[i].join(kGuard));
    EXPECT_EQ(ps[i].exitcode(), 0);
    seen.insert(indices[i].load());
  }
  EXPECT_EQ(seen, (std::set<int>{0, 1, 2, 3}));
}

void die_before_arriving(mproc::Barrier) { ::raise(SIGKILL); }

TEST_P(BarrierAcrossProcesses, APartyThatDiesBreaksTheBarrierForWaitersWithATimeout) {
  mproc::Barrier barrier(3);
  mproc::RawValue<int> index(-2);
  auto dead = start(GetParam(), die_before_arriving, barrier);
  auto waiter = start(GetParam(), pass_barrier, barrier, index, 1);
  // The parent's own wait times out (the dead party never comes), breaks
  // the barrier, and so releases the waiting child with an error too.
  EXPECT_THROW(barrier.wait(300ms), mproc::BrokenBarrierError);
  ASSERT_TRUE(waiter.join(kGuard));
  EXPECT_EQ(waiter.exitcode(), 0);
  EXPECT_EQ(index.load(), -1);
  ASSERT_TRUE(dead.join(kGuard));
  EXPECT_EQ(dead.exitcode(), -SIGKILL);
  EXPECT_TRUE(barrier.broken());
}

void abort_it(mproc::Barrier barrier) { barrier.abort(); }

TEST_P(BarrierAcrossProcesses, AbortInAChildBreaksTheParentsWait) {
  mproc::Barrier barrier(2);
  auto p = start(GetParam(), abort_it, barrier);
  EXPECT_THROW(barrier.wait(kGuard), mproc::BrokenBarrierError);
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 0);
}

INSTANTIATE_TEST_SUITE_P(StartMethod, BarrierAcrossProcesses, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

}  // namespace
