// test_condition.cpp: tests of condition.hpp: waiting and notifying with
// the lock held, exact wake-ups (notify(n) wakes at most n, a notifier never
// wakes itself, wait(timeout) is false only on timeout), the RLock depth
// across a wait, use across processes under every start method, and a
// notifier that dies holding the lock.

#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "helpers/test_support.hpp"
#include "mproc/condition.hpp"
#include "mproc/errors.hpp"
#include "mproc/lock.hpp"
#include "mproc/shared_value.hpp"
#include "sync_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_sync_test::start;
using mproc_test::kGuard;

TEST(Condition, WaitAndNotifyWithoutTheLockThrow) {
  mproc::Condition cond;
  EXPECT_THROW(cond.wait(10ms), mproc::Error);
  EXPECT_THROW(cond.notify(), mproc::Error);
  EXPECT_THROW(cond.notify_all(), mproc::Error);
  EXPECT_THROW(cond.release(), mproc::Error);
}

TEST(Condition, WaitTimesOutAndHoldsTheLockAgain) {
  mproc::RLock lock;
  mproc::Condition cond(lock);
  std::lock_guard guard(cond);
  EXPECT_FALSE(cond.wait(20ms));
  EXPECT_TRUE(lock.is_owned());
}

TEST(Condition, RLockDepthIsRestoredAfterWait) {
  mproc::RLock lock;
  mproc::Condition cond(lock);
  lock.acquire();
  lock.acquire();
  std::thread other([&] {
    // The owner's wait() must free the lock completely, or this blocks.
    EXPECT_TRUE(lock.acquire(kGuard));
    cond.notify();
    lock.release();
  });
  EXPECT_TRUE(cond.wait(kGuard));
  other.join();
  EXPECT_EQ(lock.recursion_depth(), 2u);
  lock.release();
  lock.release();
}

TEST(Condition, WorksOverAPlainLock) {
  mproc::Lock lock;
  mproc::Condition cond(lock);
  {
    std::lock_guard guard(lock);  // the lock itself, or the condition: same lock
    EXPECT_FALSE(cond.wait(10ms));
    EXPECT_TRUE(lock.locked());
  }
  EXPECT_FALSE(lock.locked());
}

TEST(Condition, ANotifyWithoutWaitersIsLost) {
  mproc::Condition cond;
  std::lock_guard guard(cond);
  cond.notify();
  cond.notify_all();
  EXPECT_FALSE(cond.wait(20ms));
}

TEST(Condition, NotifierNeverWakesItself) {
  // A thread that notifies and then waits must not take its own wake-up:
  // that would be a spurious wake-up for it and a lost one for the waiter.
  mproc::Condition cond;
  int stage = 0;  // guarded by cond's lock
  std::atomic<bool> waiter_result{false};
  std::thread waiter([&] {
    std::unique_lock guard(cond);
    stage = 1;
    waiter_result = cond.wait(kGuard);
  });
  ASSERT_TRUE(mproc_test::wait_until([&] {
    std::lock_guard guard(cond);
    return stage == 1;  // the waiter holds the lock until it is inside wait()
  }));
  {
    std::unique_lock guard(cond);
    cond.notify();
    EXPECT_FALSE(cond.wait(50ms));
  }
  waiter.join();
  EXPECT_TRUE(waiter_result);
}

TEST(Condition, NotifyWakesAtMostN) {
  mproc::Condition cond;
  constexpr int kWaiters = 4;
  int registered = 0;  // guarded by cond's lock
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&] {
      std::unique_lock guard(cond);
      ++registered;
      if (cond.wait(kGuard)) woken.fetch_add(1);
    });
  }
  ASSERT_TRUE(mproc_test::wait_until([&] {
    std::lock_guard guard(cond);
    return registered == kWaiters;
  }));
  {
    std::lock_guard guard(cond);
    cond.notify(2);
  }
  ASSERT_TRUE(mproc_test::wait_until([&] { return woken.load() >= 2; }));
  {
    // Once we hold the lock, the two woken threads have left wait() (they
    // re-took the lock and released it); nobody else may have been woken.
    std::lock_guard guard(cond);
    EXPECT_EQ(woken.load(), 2);
    cond.notify(1);
  }
  ASSERT_TRUE(mproc_test::wait_until([&] { return woken.load() >= 3; }));
  {
    std::lock_guard guard(cond);
    EXPECT_EQ(woken.load(), 3);
    cond.notify_all();
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), kWaiters);
}

TEST(Condition, WaitForReturnsThePredicatesValue) {
  mproc::Condition cond;
  bool ready = false;  // guarded by cond's lock
  std::thread setter([&] {
    std::lock_guard guard(cond);
    ready = true;
    cond.notify_all();
  });
  {
    std::unique_lock guard(cond);
    EXPECT_TRUE(cond.wait_for([&] { return ready; }, kGuard));
  }
  setter.join();
  std::unique_lock guard(cond);
  EXPECT_FALSE(cond.wait_for([] { return false; }, 20ms));
  EXPECT_TRUE(cond.wait_for([] { return true; }));
}

TEST(Condition, HandleCrossesWithItsOwnOrAGivenLock) {
  mproc::Condition own;
  mproc::Lock lock;
  mproc::Condition over(lock);
  mproc::detail::Writer w;
  mproc::detail::encode_value(w, own);
  mproc::detail::encode_value(w, over);
  EXPECT_EQ(w.fds().size(), 3u);  // own: one region; over: its own and the lock's
  mproc::detail::Reader r(w.bytes(), w.fds());
  auto own2 = mproc::detail::decode_value<mproc::Condition>(r);
  auto over2 = mproc::detail::decode_value<mproc::Condition>(r);
  EXPECT_TRUE(r.at_end());
  lock.acquire();
  EXPECT_FALSE(over2.try_lock());
  lock.release();
  std::lock_guard guard(own2);
  EXPECT_FALSE(own2.wait(1ms));
}

// ------------------------------------------------------ across processes ---

class ConditionAcrossProcesses : public ::testing::TestWithParam<mproc::StartMethod> {};

void consume_when_ready(mproc::Condition cond, mproc::Value<int> items, mproc::RawValue<int> result) {
  std::unique_lock guard(cond);
  if (!cond.wait_for([&] { return items.value() > 0; }, std::chrono::seconds(20))) {
    result.store(-1);
    return;
  }
  items.value() -= 1;
  result.store(1);
}

TEST_P(ConditionAcrossProcesses, ProducerInParentConsumersInChildren) {
  mproc::Condition cond;
  mproc::Value<int> items(0);
  std::vector<mproc::RawValue<int>> results;
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 3; ++i) {
    results.emplace_back(0);
    ps.push_back(start(GetParam(), consume_when_ready, cond, items, results.back()));
  }
  for (int i = 0; i < 3; ++i) {
    std::lock_guard guard(cond);
    items.value() += 1;
    cond.notify();
  }
  for (std::size_t i = 0; i < ps.size(); ++i) {
    ASSERT_TRUE(ps[i].join(kGuard));
    EXPECT_EQ(ps[i].exitcode(), 0);
    EXPECT_EQ(results[i].load(), 1);
  }
  EXPECT_EQ(items.load(), 0);
}

// Takes the condition's lock (which the parent gives up only inside
// wait()), notifies, and dies holding the lock.
void notify_and_die_holding(mproc::Condition cond) {
  cond.acquire();
  cond.notify_all();
  ::raise(SIGKILL);
}

TEST_P(ConditionAcrossProcesses, WaiterGetsTheLockBackWhenTheNotifierDiesHoldingIt) {
  mproc::Condition cond;
  std::unique_lock guard(cond);
  auto p = start(GetParam(), notify_and_die_holding, cond);
  EXPECT_TRUE(cond.wait(kGuard));      // notified...
  EXPECT_TRUE(cond.previous_owner_died());  // ...and the lock taken over
  guard.unlock();
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
}

void die_holding_without_notifying(mproc::Condition cond) {
  cond.acquire();
  ::raise(SIGKILL);
}

TEST_P(ConditionAcrossProcesses, WaiterWithTimeoutIsNotStuckWhenTheNotifierDies) {
  mproc::Lock lock;
  mproc::Condition cond(lock);
  std::unique_lock guard(cond);
  auto p = start(GetParam(), die_holding_without_notifying, cond);
  // The child can take the lock only while we are inside wait(); nobody
  // ever notifies, so every wait times out, and the one during which the
  // child took the lock and died ends by taking the lock over.
  const auto give_up = std::chrono::steady_clock::now() + kGuard;
  while (p.is_alive() && std::chrono::steady_clock::now() < give_up) {
    EXPECT_FALSE(cond.wait(50ms));
    EXPECT_TRUE(lock.locked());  // held by us again
  }
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  EXPECT_EQ(lock.owner_deaths(), 1u);
  EXPECT_TRUE(cond.previous_owner_died());
  guard.unlock();
  EXPECT_FALSE(lock.locked());
}

void register_and_wait(mproc::Condition cond, mproc::RawValue<int> registered, mproc::RawValue<int> woken) {
  std::unique_lock guard(cond);
  registered.fetch_add(1);
  if (cond.wait(std::chrono::seconds(20))) woken.fetch_add(1);
}

TEST_P(ConditionAcrossProcesses, NotifyOneWakesOneProcessAtATime) {
  mproc::Condition cond;
  mproc::RawValue<int> registered(0);
  mproc::RawValue<int> woken(0);
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 2; ++i) ps.push_back(start(GetParam(), register_and_wait, cond, registered, woken));
  ASSERT_TRUE(mproc_test::wait_until([&] {
    std::lock_guard guard(cond);
    return registered.load() == 2;
  }));
  {
    std::lock_guard guard(cond);
    cond.notify();
  }
  ASSERT_TRUE(mproc_test::wait_until([&] { return woken.load() >= 1; }));
  {
    std::lock_guard guard(cond);
    EXPECT_EQ(woken.load(), 1);
    cond.notify();
  }
  for (auto& p : ps) {
    ASSERT_TRUE(p.join(kGuard));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(woken.load(), 2);
}

INSTANTIATE_TEST_SUITE_P(StartMethod, ConditionAcrossProcesses, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

}  // namespace
