// test_event.cpp: tests of event.hpp: set/clear/is_set/wait, wake-ups of
// threads and processes under every start method, and waiters whose setter
// died.

#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/event.hpp"
#include "mproc/shared_value.hpp"
#include "sync_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_sync_test::start;
using mproc_test::kGuard;

TEST(Event, SetClearAndIsSet) {
  mproc::Event ev;
  EXPECT_FALSE(ev.is_set());
  ev.set();
  EXPECT_TRUE(ev.is_set());
  ev.set();  // idempotent
  EXPECT_TRUE(ev.is_set());
  ev.clear();
  EXPECT_FALSE(ev.is_set());
  ev.clear();
  EXPECT_FALSE(ev.is_set());
}

TEST(Event, WaitReturnsAtOnceWhenSet) {
  mproc::Event ev;
  ev.set();
  ev.wait();
  EXPECT_TRUE(ev.wait(0s));
  EXPECT_TRUE(ev.wait(kGuard));
}

TEST(Event, WaitTimesOutWhenNotSet) {
  mproc::Event ev;
  EXPECT_FALSE(ev.wait(20ms));
  EXPECT_FALSE(ev.wait(-1s));
  EXPECT_FALSE(ev.wait(std::chrono::duration<double, std::milli>(1.5)));
}

TEST(Event, SetWakesEverySleepingThread) {
  mproc::Event ev;
  constexpr int kThreads = 3;
  std::atomic<pid_t> tids[kThreads] = {};
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      tids[i] = mproc_sync_test::gettid_now();
      if (ev.wait(kGuard)) woken.fetch_add(1);
    });
  }
  for (auto& tid : tids) ASSERT_TRUE(mproc_sync_test::wait_until_asleep(tid));
  ev.set();
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), kThreads);
}

TEST(Event, AWaiterWokenBySetReturnsTrueEvenIfClearedAtOnce) {
  // As Python's threading.Event: the wake-up counts even if the flag is
  // down again by the time the waiter runs.
  mproc::Event ev;
  std::atomic<pid_t> tid{0};
  std::atomic<bool> result{false};
  std::thread t([&] {
    tid = mproc_sync_test::gettid_now();
    result = ev.wait(kGuard);
  });
  ASSERT_TRUE(mproc_sync_test::wait_until_asleep(tid));
  ev.set();
  ev.clear();
  t.join();
  EXPECT_TRUE(result);
  EXPECT_FALSE(ev.is_set());
}

TEST(Event, CopiesShareOneFlag) {
  mproc::Event ev;
  mproc::Event copy = ev;
  copy.set();
  EXPECT_TRUE(ev.is_set());
}

// ------------------------------------------------------ across processes ---

class EventAcrossProcesses : public ::testing::TestWithParam<mproc::StartMethod> {};

void wait_then_report(mproc::Event ev, mproc::RawValue<int> result) {
  result.store(ev.wait(std::chrono::seconds(20)) ? 1 : -1);
}

void set_it(mproc::Event ev) { ev.set(); }

TEST_P(EventAcrossProcesses, SetInParentWakesWaitingChildren) {
  mproc::Event ev;
  std::vector<mproc::RawValue<int>> slots;
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 3; ++i) {
    slots.emplace_back(0);
    ps.push_back(start(GetParam(), wait_then_report, ev, slots.back()));
  }
  ev.set();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    ASSERT_TRUE(ps[i].join(kGuard));
    EXPECT_EQ(ps[i].exitcode(), 0);
    EXPECT_EQ(slots[i].load(), 1);
  }
}

TEST_P(EventAcrossProcesses, SetInChildWakesParent) {
  mproc::Event ev;
  auto p = start(GetParam(), set_it, ev);
  EXPECT_TRUE(ev.wait(kGuard));
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_TRUE(ev.is_set());
}

void die_without_setting(mproc::Event) { ::raise(SIGKILL); }

TEST_P(EventAcrossProcesses, WaiterWithTimeoutIsNotStuckWhenTheSetterDies) {
  mproc::Event ev;
  auto p = start(GetParam(), die_without_setting, ev);
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  EXPECT_FALSE(ev.wait(50ms));
}

INSTANTIATE_TEST_SUITE_P(StartMethod, EventAcrossProcesses, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

}  // namespace
