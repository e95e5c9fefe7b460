// test_shared_value.cpp: tests of shared_value.hpp (Value, Array,
// RawValue, RawArray): construction, element access, the lock and the
// lock-free atomic operations, use across processes under every start
// method (the seed's 4 x 10000 increments), a lock holder that dies, and
// handles that do not match the receiver's type.

#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/lock.hpp"
#include "mproc/shared_value.hpp"
#include "sync_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_sync_test::start;
using mproc_test::kGuard;

struct Point {
  double x;
  double y;
  int tag;
};

struct WithDefaults {
  int a = 5;
  char name[8] = "abc";
};

TEST(Value, DefaultIsValueInitialised) {
  mproc::Value<int> i;
  mproc::Value<double> d;
  mproc::Value<Point> p;
  EXPECT_EQ(i.load(), 0);
  EXPECT_EQ(d.load(), 0.0);
  EXPECT_EQ(p.load().tag, 0);
  mproc::Value<WithDefaults> w;
  EXPECT_EQ(w.load().a, 5);
}

TEST(Value, LoadStoreAndValueReference) {
  mproc::Value<int> v(7);
  EXPECT_EQ(v.load(), 7);
  v.store(9);
  EXPECT_EQ(v.value(), 9);
  {
    std::lock_guard guard(v.get_lock());
    v.value() += 1;
  }
  EXPECT_EQ(v.load(), 10);
  mproc::Value<Point> p(Point{1.5, 2.5, 3});
  {
    std::lock_guard guard(p);  // the Value itself is Lockable
    p.value().tag = 4;
  }
  EXPECT_EQ(p.load().x, 1.5);
  EXPECT_EQ(p.load().tag, 4);
}

TEST(Value, AtomicOperationsAreLockFree) {
  mproc::Value<std::int64_t> v(10);
  EXPECT_EQ(v.fetch_add(5), 10);
  EXPECT_EQ(v.fetch_sub(3), 15);
  EXPECT_EQ(v.fetch_or(0x100), 12);
  EXPECT_EQ(v.fetch_and(0x10f), 0x10c);
  EXPECT_EQ(v.fetch_xor(0x1), 0x10c);
  EXPECT_EQ(v.exchange(42), 0x10d);
  std::int64_t expected = 41;
  EXPECT_FALSE(v.compare_exchange(expected, 0));
  EXPECT_EQ(expected, 42);
  EXPECT_TRUE(v.compare_exchange(expected, 1));
  EXPECT_EQ(v.atomic().load(), 1);
  mproc::Value<double> d(1.0);
  EXPECT_EQ(d.fetch_add(0.5), 1.0);
  EXPECT_EQ(d.load(), 1.5);
}

TEST(Value, GetLockIsAnRLock) {
  mproc::Value<int> v(0);
  mproc::RLock& lock = v.get_lock();
  std::lock_guard outer(lock);
  std::lock_guard inner(v);  // recursive, as Python's default
  EXPECT_EQ(lock.recursion_depth(), 2u);
  EXPECT_EQ(v.load(), 0);  // load() takes the same lock: fine while held
}

TEST(Value, ThreadsIncrementingUnderTheLockLoseNothing) {
  mproc::Value<int> v(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([v] {
      for (int i = 0; i < 2000; ++i) {
        std::lock_guard guard(v.get_lock());
        v.value() += 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(v.load(), 8000);
}

TEST(Value, CopiesShareOneValue) {
  mproc::Value<int> v(1);
  mproc::Value<int> copy = v;
  copy.store(2);
  EXPECT_EQ(v.load(), 2);
  mproc::RawValue<int> raw(3);
  auto raw_copy = raw;
  raw_copy.value() = 4;
  EXPECT_EQ(raw.load(), 4);
}

TEST(RawValue, HasNoLockButAtomicOperations) {
  mproc::RawValue<unsigned> v;
  EXPECT_EQ(v.load(), 0u);
  v.store(3);
  EXPECT_EQ(v.fetch_add(1), 3u);
  EXPECT_EQ(v.value(), 4u);
}

TEST(Array, FromASizeIsZeroInitialised) {
  mproc::Array<double> a(1000);
  EXPECT_EQ(a.size(), 1000u);
  EXPECT_FALSE(a.empty());
  EXPECT_TRUE(std::all_of(a.begin(), a.end(), [](double x) { return x == 0.0; }));
  mproc::Array<WithDefaults> w(3);
  EXPECT_EQ(w[2].a, 5);
}

TEST(Array, FromAnInitializerListOrAFill) {
  mproc::Array<double> a({1.0, 2.0, 3.5});
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0], 1.0);
  EXPECT_EQ(a[2], 3.5);
  mproc::Array<int> f(4, 7);
  EXPECT_EQ(std::accumulate(f.begin(), f.end(), 0), 28);
  std::vector<int> src{1, 2, 3};
  mproc::Array<int> s{std::span<const int>(src)};
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s[1], 2);
}

TEST(Array, IndexIteratorsSpanAndAt) {
  mproc::Array<int> a(5);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<int>(i * i);
  int sum = 0;
  for (int x : a) sum += x;
  EXPECT_EQ(sum, 0 + 1 + 4 + 9 + 16);
  std::span<int> s = a.span();
  EXPECT_EQ(s.size(), 5u);
  EXPECT_EQ(s[3], 9);
  EXPECT_EQ(a.data(), &a[0]);
  EXPECT_EQ(a.at(4), 16);
  EXPECT_THROW((void)a.at(5), std::out_of_range);
  EXPECT_EQ(a.atomic(2).fetch_add(1), 4);
  EXPECT_EQ(a[2], 5);
}

TEST(Array, LockGuardsCompoundUpdates) {
  mproc::Array<int> a(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([a] {
      for (int i = 0; i < 1000; ++i) {
        std::lock_guard guard(a.get_lock());
        a[0] += 1;
        a[1] = a[0] * 2;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(a[0], 3000);
  EXPECT_EQ(a[1], 6000);
}

TEST(Array, EmptyHandlesAndZeroLength) {
  mproc::Array<int> empty;
  EXPECT_FALSE(empty);
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.begin(), empty.end());
  EXPECT_THROW(empty.get_lock().acquire(), mproc::Error);
  mproc::Array<int> zero(std::size_t{0});
  EXPECT_TRUE(zero);
  EXPECT_EQ(zero.size(), 0u);
  std::lock_guard guard(zero);
}

TEST(RawArray, HasNoLock) {
  mproc::RawArray<char> a(16);
  std::fill(a.begin(), a.end(), 'x');
  EXPECT_EQ(std::count(a.begin(), a.end(), 'x'), 16);
  mproc::RawArray<std::int16_t> b({1, 2});
  EXPECT_EQ(b[1], 2);
}

TEST(Value, HandlesCrossAndMustMatchTheReceiversType) {
  mproc::Value<int> v(5);
  mproc::Array<int> a({1, 2, 3});
  mproc::detail::Writer w;
  mproc::detail::encode_value(w, v);
  mproc::detail::encode_value(w, a);
  {
    mproc::detail::Reader r(w.bytes(), w.fds());
    auto v2 = mproc::detail::decode_value<mproc::Value<int>>(r);
    auto a2 = mproc::detail::decode_value<mproc::Array<int>>(r);
    v2.store(6);
    EXPECT_EQ(v.load(), 6);
    EXPECT_EQ(a2.size(), 3u);
    a2[0] = 10;
    EXPECT_EQ(a[0], 10);
    // The decoded Value's lock is the same lock.
    std::lock_guard guard(v2.get_lock());
    EXPECT_TRUE(v.get_lock().locked());
  }
  {
    mproc::detail::Reader r(w.bytes(), w.fds());
    EXPECT_THROW(mproc::detail::decode_value<mproc::Value<double>>(r), mproc::SerializationError);
  }
  {
    mproc::detail::Reader r(w.bytes(), w.fds());
    EXPECT_THROW(mproc::detail::decode_value<mproc::RawValue<int>>(r), mproc::SerializationError);
  }
  {
    mproc::detail::Reader r(w.bytes(), w.fds());
    (void)mproc::detail::decode_value<mproc::Value<int>>(r);
    EXPECT_THROW(mproc::detail::decode_value<mproc::Array<unsigned char>>(r), mproc::SerializationError);
  }
}

// ------------------------------------------------------ across processes ---

class SharedValueAcrossProcesses : public ::testing::TestWithParam<mproc::StartMethod> {};

// The seed example: add 1 ten thousand times under the lock.
void add_ten_thousand(mproc::Value<int> counter, mproc::Lock lock) {
  for (int i = 0; i < 10000; ++i) {
    std::lock_guard guard(lock);
    counter.value() += 1;
  }
}

TEST_P(SharedValueAcrossProcesses, FourProcessesAddTenThousandEachUnderALock) {
  mproc::Value<int> counter(0);
  mproc::Lock lock;
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 4; ++i) ps.push_back(start(GetParam(), add_ten_thousand, counter, lock));
  for (auto& p : ps) {
    ASSERT_TRUE(p.join(kGuard));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(counter.load(), 40000);
}

void add_with_own_lock_and_atomics(mproc::Value<long> locked, mproc::Value<long> atomic, int times) {
  for (int i = 0; i < times; ++i) {
    {
      std::lock_guard guard(locked.get_lock());
      locked.value() += 1;
    }
    atomic.fetch_add(1);
  }
}

TEST_P(SharedValueAcrossProcesses, GetLockAndFetchAddFromSeveralProcesses) {
  mproc::Value<long> locked(0);
  mproc::Value<long> atomic(0);
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(start(GetParam(), add_with_own_lock_and_atomics, locked, atomic, 3000));
  add_with_own_lock_and_atomics(locked, atomic, 3000);
  for (auto& p : ps) {
    ASSERT_TRUE(p.join(kGuard));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(locked.load(), 4 * 3000);
  EXPECT_EQ(atomic.load(), 4 * 3000);
}

void fill_slice(mproc::Array<double> a, std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) a[i] = static_cast<double>(i) * 0.5;
}

TEST_P(SharedValueAcrossProcesses, ChildrenFillSlicesOfOneArray) {
  constexpr std::size_t kN = 10000;
  mproc::Array<double> a(kN);
  std::vector<mproc::Process> ps;
  for (std::size_t k = 0; k < 4; ++k) ps.push_back(start(GetParam(), fill_slice, a, k * kN / 4, (k + 1) * kN / 4));
  for (auto& p : ps) {
    ASSERT_TRUE(p.join(kGuard));
    EXPECT_EQ(p.exitcode(), 0);
  }
  for (std::size_t i = 0; i < kN; ++i) ASSERT_EQ(a[i], static_cast<double>(i) * 0.5) << "at " << i;
}

void write_raw(mproc::RawArray<std::int32_t> a, mproc::RawValue<Point> p) {
  for (auto& x : a) x = 7;
  p.store(Point{3.0, 4.0, 5});
}

TEST_P(SharedValueAcrossProcesses, RawValuesCrossToo) {
  mproc::RawArray<std::int32_t> a(64);
  mproc::RawValue<Point> p;
  auto child = start(GetParam(), write_raw, a, p);
  ASSERT_TRUE(child.join(kGuard));
  EXPECT_EQ(child.exitcode(), 0);
  EXPECT_EQ(std::count(a.begin(), a.end(), 7), 64);
  EXPECT_EQ(p.load().y, 4.0);
}

void die_holding_value_lock(mproc::Value<int> v) {
  v.get_lock().acquire();
  v.value() = -1;  // half-way through an update
  ::raise(SIGKILL);
}

TEST_P(SharedValueAcrossProcesses, DeadHolderOfTheValuesLockIsReported) {
  mproc::Value<int> v(1);
  auto p = start(GetParam(), die_holding_value_lock, v);
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  std::lock_guard guard(v.get_lock());
  EXPECT_TRUE(v.get_lock().previous_owner_died());
  EXPECT_EQ(v.value(), -1);
}

INSTANTIATE_TEST_SUITE_P(StartMethod, SharedValueAcrossProcesses, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

}  // namespace
