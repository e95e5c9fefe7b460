// test_semaphore.cpp: tests of semaphore.hpp (Semaphore and
// BoundedSemaphore): counting, timeouts, misuse errors, and use across
// processes under every start method.

#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/semaphore.hpp"
#include "mproc/shared_value.hpp"
#include "sync_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_sync_test::start;
using mproc_test::kGuard;

TEST(Semaphore, CountsUnitsDownAndUp) {
  mproc::Semaphore sem(2);
  EXPECT_EQ(sem.get_value(), 2);
  sem.acquire();
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_EQ(sem.get_value(), 0);
  EXPECT_FALSE(sem.try_lock());
  EXPECT_FALSE(sem.acquire(20ms));  // no unit: must time out
  sem.release();
  EXPECT_EQ(sem.get_value(), 1);
  sem.release(3);
  EXPECT_EQ(sem.get_value(), 4);
}

TEST(Semaphore, DefaultsToOneUnit) {
  mproc::Semaphore sem;
  EXPECT_EQ(sem.get_value(), 1);
  std::lock_guard guard(sem);
  EXPECT_EQ(sem.get_value(), 0);
}

TEST(Semaphore, UnboundedReleaseMayExceedTheInitialValue) {
  mproc::Semaphore sem(0);
  sem.release();
  sem.release();
  EXPECT_EQ(sem.get_value(), 2);
}

TEST(Semaphore, BadArgumentsThrow) {
  EXPECT_THROW(mproc::Semaphore(-1), mproc::Error);
  mproc::Semaphore sem(1);
  EXPECT_THROW(sem.release(0), mproc::Error);
  mproc::Semaphore big(0x7fffffff);
  EXPECT_THROW(big.release(), mproc::Error);
}

TEST(BoundedSemaphore, ReleasingPastTheInitialValueThrows) {
  mproc::BoundedSemaphore sem(2);
  EXPECT_EQ(sem.bound(), 2);
  EXPECT_THROW(sem.release(), mproc::Error);
  sem.acquire();
  sem.acquire();
  sem.release();
  EXPECT_THROW(sem.release(2), mproc::Error);
  sem.release();
  EXPECT_EQ(sem.get_value(), 2);
  try {
    sem.release();
    FAIL() << "over-release did not throw";
  } catch (const mproc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("BoundedSemaphore::release"), std::string::npos) << e.what();
  }
}

TEST(BoundedSemaphore, IsASemaphore) {
  mproc::BoundedSemaphore bounded(1);
  mproc::Semaphore& base = bounded;
  base.acquire();
  base.release();
  EXPECT_THROW(base.release(), mproc::Error);  // the bound is in the shared object
}

TEST(Semaphore, ReleaseWakesASleepingThread) {
  mproc::Semaphore sem(0);
  std::atomic<pid_t> tid{0};
  std::atomic<bool> got{false};
  std::thread t([&] {
    tid = mproc_sync_test::gettid_now();
    got = sem.acquire(kGuard);
  });
  ASSERT_TRUE(mproc_sync_test::wait_until_asleep(tid));
  sem.release();
  t.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(sem.get_value(), 0);
}

TEST(Semaphore, HandleCrossesAsBytesAndDescriptor) {
  mproc::BoundedSemaphore sem(3);
  mproc::detail::Writer w;
  mproc::detail::encode_value(w, sem);
  {
    mproc::detail::Reader r(w.bytes(), w.fds());
    auto other = mproc::detail::decode_value<mproc::BoundedSemaphore>(r);
    other.acquire();
    EXPECT_EQ(sem.get_value(), 2);
  }
  {
    mproc::detail::Reader r(w.bytes(), w.fds());
    auto as_plain = mproc::detail::decode_value<mproc::Semaphore>(r);
    EXPECT_EQ(as_plain.get_value(), 2);
  }
  mproc::Semaphore plain(1);
  mproc::detail::Writer w2;
  mproc::detail::encode_value(w2, plain);
  mproc::detail::Reader r2(w2.bytes(), w2.fds());
  EXPECT_THROW(mproc::detail::decode_value<mproc::BoundedSemaphore>(r2), mproc::SerializationError);
}

// ------------------------------------------------------ across processes ---

class SemaphoreAcrossProcesses : public ::testing::TestWithParam<mproc::StartMethod> {};

// Enters the section guarded by `sem` `rounds` times and records the largest
// number of processes seen inside at once.
void enter_section(mproc::Semaphore sem, mproc::RawValue<int> inside, mproc::RawValue<int> most, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    std::lock_guard guard(sem);
    const int now = inside.fetch_add(1) + 1;
    int seen = most.load();
    while (now > seen && !most.compare_exchange(seen, now)) {
    }
    inside.fetch_sub(1);
  }
}

TEST_P(SemaphoreAcrossProcesses, NeverLetsMoreThanItsValueIn) {
  mproc::Semaphore sem(2);
  mproc::RawValue<int> inside(0);
  mproc::RawValue<int> most(0);
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 4; ++i) ps.push_back(start(GetParam(), enter_section, sem, inside, most, 500));
  for (auto& p : ps) {
    ASSERT_TRUE(p.join(kGuard));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_GE(most.load(), 1);
  EXPECT_LE(most.load(), 2);
  EXPECT_EQ(sem.get_value(), 2);
}

void take_one(mproc::Semaphore sem, mproc::RawValue<int> result) {
  result.store(sem.acquire(std::chrono::seconds(20)) ? 1 : -1);
}

TEST_P(SemaphoreAcrossProcesses, ReleaseInParentWakesChild) {
  mproc::Semaphore sem(0);
  mproc::RawValue<int> result(0);
  auto p = start(GetParam(), take_one, sem, result);
  sem.release();
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(result.load(), 1);
  EXPECT_EQ(sem.get_value(), 0);
}

void take_and_die(mproc::Semaphore sem) {
  sem.acquire();
  ::raise(SIGKILL);
}

TEST_P(SemaphoreAcrossProcesses, AUnitTakenByADeadProcessIsGoneButTimeoutsStillEnd) {
  // A semaphore has no owner (as in Python): the unit is not given back,
  // and a waiter with a timeout returns false instead of hanging.
  mproc::Semaphore sem(1);
  auto p = start(GetParam(), take_and_die, sem);
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  EXPECT_EQ(sem.get_value(), 0);
  EXPECT_FALSE(sem.acquire(50ms));
}

INSTANTIATE_TEST_SUITE_P(StartMethod, SemaphoreAcrossProcesses, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

}  // namespace
