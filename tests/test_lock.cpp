// test_lock.cpp: tests of lock.hpp (Lock and RLock): Python's and C++'s
// names, misuse errors, mutual exclusion between threads and processes
// under every start method, and survival of a holder's death.

#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/event.hpp"
#include "mproc/lock.hpp"
#include "mproc/process.hpp"
#include "mproc/shared_value.hpp"
#include "sync_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_sync_test::start;
using mproc_test::kGuard;

// ------------------------------------------------------------ one process ---

TEST(Lock, AcquireAndReleaseWithPythonNames) {
  mproc::Lock lock;
  EXPECT_FALSE(lock.locked());
  lock.acquire();
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.acquire(true));
  lock.release();
  EXPECT_TRUE(lock.acquire(1s));
  lock.release();
}

TEST(Lock, IsNotRecursiveSoASecondAcquireFails) {
  mproc::Lock lock;
  lock.acquire();
  EXPECT_FALSE(lock.acquire(false));
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.acquire(20ms));  // held: must time out, whatever the timing
  EXPECT_FALSE(lock.try_lock_for(std::chrono::microseconds(500)));
  EXPECT_FALSE(lock.try_lock_until(std::chrono::system_clock::now() + 1ms));
  lock.release();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST(Lock, NegativeAndZeroTimeoutsOnlyTry) {
  mproc::Lock lock;
  EXPECT_TRUE(lock.acquire(-5s));
  EXPECT_FALSE(lock.acquire(0ms));
  EXPECT_FALSE(lock.acquire(std::chrono::duration<double>(-1.0)));
  lock.release();
}

TEST(Lock, ReleasingAnUnlockedLockThrows) {
  mproc::Lock lock;
  EXPECT_THROW(lock.release(), mproc::Error);
  lock.acquire();
  lock.release();
  try {
    lock.release();
    FAIL() << "a second release did not throw";
  } catch (const mproc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("Lock::release"), std::string::npos) << e.what();
  }
}

TEST(Lock, AnotherThreadMayReleaseIt) {
  // Python's Lock has no owner: any thread may release it.
  mproc::Lock lock;
  lock.acquire();
  std::thread t([lock]() mutable { lock.release(); });
  t.join();
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, WorksWithStandardGuards) {
  mproc::Lock a;
  mproc::Lock b;
  {
    std::lock_guard guard(a);
    EXPECT_TRUE(a.locked());
  }
  EXPECT_FALSE(a.locked());
  {
    std::unique_lock guard(a, std::try_to_lock);
    EXPECT_TRUE(guard.owns_lock());
    guard.unlock();
    EXPECT_TRUE(guard.try_lock_for(1s));
  }
  {
    std::scoped_lock both(a, b);
    EXPECT_TRUE(a.locked());
    EXPECT_TRUE(b.locked());
  }
  EXPECT_FALSE(a.locked());
  EXPECT_FALSE(b.locked());
}

TEST(Lock, CopiesShareOneLock) {
  mproc::Lock lock;
  mproc::Lock copy = lock;
  mproc::Lock moved = std::move(copy);
  lock.acquire();
  EXPECT_TRUE(moved.locked());
  EXPECT_FALSE(moved.try_lock());
  moved.release();
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, ExcludesThreads) {
  mproc::Lock lock;
  long counter = 0;  // guarded by `lock`; TSan checks that it really is
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        std::lock_guard guard(lock);
        ++counter;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 4 * 5000);
}

TEST(Lock, SleepingWaiterIsWokenByRelease) {
  mproc::Lock lock;
  lock.acquire();
  std::atomic<pid_t> tid{0};
  std::atomic<bool> got{false};
  std::thread t([&] {
    tid = mproc_sync_test::gettid_now();
    got = lock.acquire(kGuard);
  });
  ASSERT_TRUE(mproc_sync_test::wait_until_asleep(tid));
  lock.release();
  t.join();
  EXPECT_TRUE(got);
  EXPECT_FALSE(lock.previous_owner_died());
  lock.release();
}

TEST(RLock, IsRecursiveForTheOwningThread) {
  mproc::RLock lock;
  lock.acquire();
  EXPECT_TRUE(lock.acquire(false));
  EXPECT_TRUE(lock.acquire(1s));
  EXPECT_EQ(lock.recursion_depth(), 3u);
  EXPECT_TRUE(lock.is_owned());
  lock.release();
  lock.release();
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_FALSE(lock.is_owned());
  EXPECT_EQ(lock.recursion_depth(), 0u);
}

TEST(RLock, OtherThreadsAreExcludedAndMayNotRelease) {
  mproc::RLock lock;
  lock.acquire();
  std::thread t([&] {
    EXPECT_FALSE(lock.try_lock());
    EXPECT_FALSE(lock.is_owned());
    EXPECT_THROW(lock.release(), mproc::Error);
  });
  t.join();
  EXPECT_TRUE(lock.is_owned());
  lock.release();
}

TEST(RLock, ReleasingAnUnheldRLockThrows) {
  mproc::RLock lock;
  EXPECT_THROW(lock.release(), mproc::Error);
  EXPECT_THROW(lock.unlock(), mproc::Error);
}

TEST(RLock, WorksWithStandardGuards) {
  mproc::RLock lock;
  std::lock_guard outer(lock);
  {
    std::unique_lock inner(lock);
    EXPECT_EQ(lock.recursion_depth(), 2u);
  }
  EXPECT_EQ(lock.recursion_depth(), 1u);
}

TEST(Lock, HandleCrossesAsBytesAndDescriptor) {
  // What spawn and pool tasks do: encode, then decode into a new handle
  // that maps the same lock.
  mproc::Lock lock;
  mproc::detail::Writer w;
  mproc::detail::encode_value(w, lock);
  mproc::detail::Reader r(w.bytes(), w.fds());
  auto other = mproc::detail::decode_value<mproc::Lock>(r);
  lock.acquire();
  EXPECT_TRUE(other.locked());
  other.release();
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, DecodingAnotherKindIsASerializationError) {
  mproc::RLock rlock;
  mproc::detail::Writer w;
  mproc::detail::encode_value(w, rlock);
  mproc::detail::Reader r(w.bytes(), w.fds());
  EXPECT_THROW(mproc::detail::decode_value<mproc::Lock>(r), mproc::SerializationError);
  mproc::detail::Reader truncated(w.bytes().first(6), w.fds());
  EXPECT_THROW(mproc::detail::decode_value<mproc::RLock>(truncated), mproc::SerializationError);
}

// ------------------------------------------------------ across processes ---

class LockAcrossProcesses : public ::testing::TestWithParam<mproc::StartMethod> {};

void add_under_lock(mproc::Lock lock, mproc::RawValue<long> total, int times) {
  for (int i = 0; i < times; ++i) {
    std::lock_guard guard(lock);
    // A deliberately non-atomic read-modify-write: only the lock makes it
    // correct.
    const long v = total.value();
    total.value() = v + 1;
  }
}

TEST_P(LockAcrossProcesses, ExcludesProcesses) {
  mproc::Lock lock;
  mproc::RawValue<long> total(0);
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(start(GetParam(), add_under_lock, lock, total, 2000));
  add_under_lock(lock, total, 2000);
  for (auto& p : ps) {
    ASSERT_TRUE(p.join(kGuard));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(total.load(), 4 * 2000);
}

void release_from_child(mproc::Lock lock) { lock.release(); }

TEST_P(LockAcrossProcesses, AnotherProcessMayReleaseIt) {
  mproc::Lock lock;
  lock.acquire();
  auto p = start(GetParam(), release_from_child, lock);
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(lock.locked());
}

// Takes the lock and dies inside the critical section.
void acquire_and_die(mproc::Lock lock) {
  lock.acquire();
  ::raise(SIGKILL);
}

void racquire_and_die(mproc::RLock lock) {
  lock.acquire();
  lock.acquire();
  ::raise(SIGKILL);
}

TEST_P(LockAcrossProcesses, DeadHoldersLockIsTakenOverAndReported) {
  mproc::Lock lock;
  auto p = start(GetParam(), acquire_and_die, lock);
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  EXPECT_TRUE(lock.locked());
  EXPECT_EQ(lock.owner_deaths(), 0u);
  {
    std::lock_guard guard(lock);  // must neither throw nor block for ever
    EXPECT_TRUE(lock.previous_owner_died());
    EXPECT_EQ(lock.owner_deaths(), 1u);
  }
  EXPECT_FALSE(lock.locked());
  EXPECT_FALSE(lock.previous_owner_died());  // cleared by the release
  EXPECT_TRUE(lock.acquire(kGuard));
  EXPECT_FALSE(lock.previous_owner_died());
  lock.release();
}

TEST_P(LockAcrossProcesses, TryLockAlsoTakesOverFromADeadHolder) {
  mproc::Lock lock;
  auto p = start(GetParam(), acquire_and_die, lock);
  ASSERT_TRUE(p.join(kGuard));
  ASSERT_TRUE(mproc_test::wait_until([&] { return lock.try_lock(); }));
  EXPECT_TRUE(lock.previous_owner_died());
  lock.release();
}

TEST_P(LockAcrossProcesses, DeadHoldersRLockIsTakenOverAndReported) {
  mproc::RLock lock;
  auto p = start(GetParam(), racquire_and_die, lock);
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  EXPECT_TRUE(lock.acquire(kGuard));
  EXPECT_TRUE(lock.previous_owner_died());
  EXPECT_EQ(lock.recursion_depth(), 1u);  // the dead holder's depth is gone
  lock.release();
  EXPECT_FALSE(lock.locked());
}

// Holds the lock until told to die; `held` says it holds it.
void hold_until_told_then_die(mproc::Lock lock, mproc::Event held, mproc::Event die) {
  lock.acquire();
  held.set();
  die.wait(std::chrono::seconds(30));
  ::raise(SIGKILL);
}

TEST_P(LockAcrossProcesses, WaiterThatSleepsWhenTheHolderDiesGetsTheLock) {
  mproc::Lock lock;
  mproc::Event held;
  mproc::Event die;
  auto p = start(GetParam(), hold_until_told_then_die, lock, held, die);
  ASSERT_TRUE(held.wait(kGuard));
  std::atomic<pid_t> tid{0};
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    tid = mproc_sync_test::gettid_now();
    got = lock.acquire(kGuard);
  });
  ASSERT_TRUE(mproc_sync_test::wait_until_asleep(tid));
  die.set();
  waiter.join();
  ASSERT_TRUE(got);
  EXPECT_TRUE(lock.previous_owner_died());
  lock.release();
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
}

// Several processes wait on a lock whose holder dies: exactly one takes it
// over, and all of them get it in turn.
void take_and_count(mproc::Lock lock, mproc::RawValue<int> got, mproc::RawValue<int> died_reports) {
  if (!lock.acquire(std::chrono::seconds(20))) return;
  if (lock.previous_owner_died()) died_reports.fetch_add(1);
  got.fetch_add(1);
  lock.release();
}

TEST_P(LockAcrossProcesses, OnlyOneWaiterTakesOverADeadHoldersLock) {
  mproc::Lock lock;
  mproc::Event held;
  mproc::Event die;
  mproc::RawValue<int> got(0);
  mproc::RawValue<int> died_reports(0);
  auto holder = start(GetParam(), hold_until_told_then_die, lock, held, die);
  ASSERT_TRUE(held.wait(kGuard));
  std::vector<mproc::Process> waiters;
  for (int i = 0; i < 3; ++i) waiters.push_back(start(GetParam(), take_and_count, lock, got, died_reports));
  die.set();
  for (auto& w : waiters) {
    ASSERT_TRUE(w.join(kGuard));
    EXPECT_EQ(w.exitcode(), 0);
  }
  ASSERT_TRUE(holder.join(kGuard));
  EXPECT_EQ(got.load(), 3);
  EXPECT_EQ(died_reports.load(), 1);
  EXPECT_EQ(lock.owner_deaths(), 1u);
  EXPECT_FALSE(lock.locked());
}

INSTANTIATE_TEST_SUITE_P(StartMethod, LockAcrossProcesses, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

}  // namespace
