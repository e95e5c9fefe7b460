// test_thread_pool.cpp: mproc::ThreadPool (thread_pool.hpp), the Pool API
// on threads (API.md section 4, last line).
//
// The same calls as test_pool.cpp, checked the same way, plus what differs
// on threads: any callable works (captures by reference, std::string
// captures), exceptions arrive as themselves (the very object, of any
// type), task_timeout is refused, and terminate() drops queued tasks with
// PoolClosedError while running ones finish. Blocking tasks wait on a
// std::promise the test fulfils, never on time; a HangGuard per test turns
// a hang into a named failure.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/thread_pool.hpp"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"  // designated PoolOptions, see test_pool.cpp

namespace {

using mproc_test::guarded;
using mproc_test::kGuard;
using mproc_test::wait_until;
using namespace std::chrono_literals;

int square(int x) { return x * x; }
int power(int base, int exp) {
  int r = 1;
  for (int i = 0; i < exp; ++i) r *= base;
  return r;
}
int fail_at_five(int x) {
  if (x == 5) throw std::out_of_range("item five failed");
  return x * 10;
}

// Not a std::exception: on threads it must still arrive as itself.
struct CustomFailure {
  int code;
};

std::vector<int> squares(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i * i);
  return v;
}

// A gate the test opens; tasks wait at it (bounded, so a test that fails
// before opening it does not hang its pool's destructor).
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 2 * kGuard, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

class ThreadPool : public ::testing::Test {
 protected:
  mproc_test::HangGuard hang_guard_;
};

// --------------------------------------------------------------------- map ---

TEST_F(ThreadPool, MapOverVectorsViewsAndEmptyInputs) {
  mproc::ThreadPool tp(2);
  EXPECT_EQ(tp.processes(), 2u);
  EXPECT_EQ(tp.map(square, std::vector{1, 2, 3, 4, 5}), (std::vector{1, 4, 9, 16, 25}));
  EXPECT_EQ(tp.map(square, std::views::iota(0, 100)), squares(100));
  auto evens = std::views::iota(0, 40) | std::views::filter([](int x) { return x % 2 == 0; });
  std::vector<int> expected;
  for (int x = 0; x < 40; x += 2) expected.push_back(x * x);
  EXPECT_EQ(tp.map(square, evens), expected);
  auto empty = guarded(tp, "map over an empty vector", [&] { return tp.map(square, std::vector<int>{}); });
  EXPECT_TRUE(empty.get().empty());
  for (std::size_t chunksize : {0u, 1u, 7u}) {
    EXPECT_EQ(tp.map(square, std::views::iota(0, 50), chunksize), squares(50)) << "chunksize " << chunksize;
  }
}

TEST_F(ThreadPool, AnyCallableWorksCapturesByReferenceIncluded) {
  mproc::ThreadPool tp(2);
  std::atomic<int> calls{0};
  const std::string prefix = "item-";
  const auto named = tp.map(
      [&](int x) {
        ++calls;
        return prefix + std::to_string(x);
      },
      std::vector{1, 2});
  EXPECT_EQ(named, (std::vector<std::string>{"item-1", "item-2"}));
  EXPECT_EQ(calls.load(), 2);
  std::vector<int> out(10, 0);
  tp.map([&out](int i) { out[static_cast<std::size_t>(i)] = i * 3; }, std::views::iota(0, 10));
  EXPECT_EQ(out, (std::vector{0, 3, 6, 9, 12, 15, 18, 21, 24, 27}));
  std::function<int(int)> fn = [](int x) { return x + 1; };
  EXPECT_EQ(tp.apply(fn, 41), 42);
}

TEST_F(ThreadPool, StarmapAndApply) {
  mproc::ThreadPool tp(2);
  std::vector<std::tuple<int, int>> args{{2, 2}, {3, 3}, {4, 4}};
  EXPECT_EQ(tp.starmap(power, args), (std::vector{4, 27, 256}));
  EXPECT_EQ(tp.apply(power, 2, 10), 1024);
  EXPECT_EQ(tp.apply([](const std::string& s) { return s.size(); }, std::string("hello")), 5u);
}

TEST_F(ThreadPool, MapOfAVoidFunctionReturnsVoid) {
  mproc::ThreadPool tp(2);
  std::atomic<int> sum{0};
  static_assert(std::is_void_v<decltype(tp.map([&](int x) { sum += x; }, std::vector<int>{}))>);
  tp.map([&](int x) { sum += x; }, std::views::iota(1, 11));
  EXPECT_EQ(sum.load(), 55);
  auto r = tp.apply_async([&] { sum += 100; });
  static_assert(std::is_same_v<decltype(r), mproc::AsyncResult<void>>);
  r.get();
  EXPECT_EQ(sum.load(), 155);
}

// ------------------------------------------------------------- async results ---

TEST_F(ThreadPool, ApplyAsyncGetTimesOutWhileTheTaskRunsThenGivesTheValue) {
  mproc::ThreadPool tp(2);
  Gate gate;
  auto r = tp.apply_async([&] { return gate.wait() ? 7 : -1; });
  EXPECT_THROW(r.get(10ms), mproc::TimeoutError);
  EXPECT_FALSE(r.ready());
  EXPECT_FALSE(r.wait(1ms));
  EXPECT_THROW((void)r.successful(), mproc::Error);
  gate.open();
  EXPECT_EQ(r.get(kGuard), 7);
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_EQ(r.get(), 7);
}

TEST_F(ThreadPool, ExceptionsArriveAsThemselves) {
  mproc::ThreadPool tp(2);
  auto r = tp.apply_async([]() -> int { throw CustomFailure{42}; });
  ASSERT_TRUE(r.wait(kGuard));
  EXPECT_FALSE(r.successful());
  try {
    (void)r.get();
    ADD_FAILURE() << "nothing thrown";
  } catch (const CustomFailure& e) {
    EXPECT_EQ(e.code, 42);
  }
  try {
    tp.map(fail_at_five, std::views::iota(0, 10));
    ADD_FAILURE() << "nothing thrown";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "item five failed");
    EXPECT_EQ(dynamic_cast<const mproc::RemoteError*>(&e), nullptr) << "no remote wrapper on threads";
  }
}

TEST_F(ThreadPool, CallbacksRunOnOneOtherThreadNeverConcurrently) {
  mproc::ThreadPool tp(4);
  std::atomic<bool> inside{false};
  std::atomic<int> overlaps{0}, results{0}, errors{0};
  std::mutex mu;
  std::set<std::thread::id> threads;
  auto enter = [&] {
    if (inside.exchange(true)) ++overlaps;
    {
      std::lock_guard lock(mu);
      threads.insert(std::this_thread::get_id());
    }
    for (int i = 0; i < 50; ++i) std::this_thread::yield();
    inside = false;
  };
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 40; ++i) {
    if (i % 4 == 3) {
      rs.push_back(tp.apply_async(fail_at_five, mproc::args(5), mproc::on_error([&](std::exception_ptr) {
                                    enter();
                                    ++errors;
                                  })));
    } else {
      rs.push_back(tp.apply_async(square, mproc::args(i), mproc::on_result([&](int) {
                                    enter();
                                    ++results;
                                  })));
    }
  }
  for (int i = 0; i < 40; ++i) {
    if (i % 4 == 3) {
      EXPECT_THROW(rs[i].get(kGuard), std::out_of_range);
    } else {
      EXPECT_EQ(rs[i].get(kGuard), i * i);
    }
  }
  EXPECT_EQ(results.load(), 30);
  EXPECT_EQ(errors.load(), 10);
  EXPECT_EQ(overlaps.load(), 0);
  std::lock_guard lock(mu);
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST_F(ThreadPool, MapAsyncAndStarmapAsyncCallbacks) {
  mproc::ThreadPool tp(2);
  std::vector<int> seen;
  std::thread::id cb_thread;
  auto r = tp.map_async(square, std::vector{1, 2, 3}, mproc::on_result([&](const std::vector<int>& v) {
                          seen = v;
                          cb_thread = std::this_thread::get_id();
                        }));
  EXPECT_EQ(r.get(kGuard), (std::vector{1, 4, 9}));
  EXPECT_EQ(seen, (std::vector{1, 4, 9}));
  EXPECT_NE(cb_thread, std::this_thread::get_id());
  std::exception_ptr error;
  auto bad = tp.map_async(fail_at_five, std::views::iota(0, 10), std::size_t{3},
                          mproc::on_error([&](std::exception_ptr e) { error = e; }));
  EXPECT_THROW(bad.get(kGuard), std::out_of_range);
  EXPECT_TRUE(error);
  std::vector<int> starred;
  std::vector<std::tuple<int, int>> args{{2, 2}, {3, 3}, {4, 4}};
  auto s = tp.starmap_async(power, args, mproc::on_result([&](const std::vector<int>& v) { starred = v; }));
  EXPECT_EQ(s.get(kGuard), (std::vector{4, 27, 256}));
  EXPECT_EQ(starred, (std::vector{4, 27, 256}));
}

TEST_F(ThreadPool, ExceptionInACallbackGoesToOnCallbackError) {
  std::mutex mu;
  std::vector<std::string> reported;
  mproc::PoolOptions<> o;
  o.processes = 2;
  o.on_callback_error = [&](std::exception_ptr e) {
    std::lock_guard lock(mu);
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      reported.push_back(x.what());
    }
  };
  mproc::ThreadPool tp(o);
  auto r = tp.apply_async(square, mproc::args(3), mproc::on_result([](int) { throw std::logic_error("cb failed"); }));
  EXPECT_EQ(r.get(kGuard), 9);
  std::atomic<bool> later{false};
  auto r2 = tp.apply_async(square, mproc::args(4), mproc::on_result([&](int) { later = true; }));
  EXPECT_EQ(r2.get(kGuard), 16);
  EXPECT_TRUE(later.load());
  std::lock_guard lock(mu);
  EXPECT_EQ(reported, std::vector<std::string>{"cb failed"});
}

// ------------------------------------------------------------------ options ---

thread_local int tl_initialized = 0;
void set_tl(int v) { tl_initialized = v; }

TEST_F(ThreadPool, InitializerRunsInEveryWorkerThread) {
  mproc::ThreadPool tp(mproc::PoolOptions{.processes = 3, .initializer = set_tl, .initargs = std::make_tuple(41)});
  const auto got = tp.map([](int) { return tl_initialized; }, std::views::iota(0, 30), 1);
  EXPECT_EQ(got, std::vector<int>(30, 41));
  EXPECT_EQ(tl_initialized, 0);
}

TEST_F(ThreadPool, TaskTimeoutIsRefused) {
  mproc::PoolOptions<> o;
  o.processes = 2;
  o.task_timeout = 1s;
  EXPECT_THROW(mproc::ThreadPool tp(o), mproc::Error);
}

TEST_F(ThreadPool, MaxTasksPerChildIsAccepted) {
  mproc::PoolOptions<> o;
  o.processes = 2;
  o.maxtasksperchild = 1;
  mproc::ThreadPool tp(o);
  EXPECT_EQ(tp.map(square, std::views::iota(0, 20), 1), squares(20));
}

TEST_F(ThreadPool, ZeroThreadsThrows) { EXPECT_THROW(mproc::ThreadPool tp(std::size_t{0}), mproc::Error); }

// ---------------------------------------------------------------- lifecycle ---

TEST_F(ThreadPool, CloseLetsQueuedTasksFinish) {
  mproc::ThreadPool tp(2);
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(tp.apply_async(square, i));
  tp.close();
  guarded(tp, "join after close", [&] { tp.join(); }).get();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(rs[i].get(0ms), i * i);
  EXPECT_THROW((void)tp.apply_async(square, 1), mproc::PoolClosedError);
  EXPECT_THROW(tp.map(square, std::vector{1}), mproc::PoolClosedError);
  EXPECT_THROW((void)tp.imap(square, std::vector{1}), mproc::PoolClosedError);
}

TEST_F(ThreadPool, JoinBeforeCloseThrows) {
  mproc::ThreadPool tp(2);
  EXPECT_THROW(tp.join(), mproc::Error);
  EXPECT_EQ(tp.apply(square, 3), 9);
}

TEST_F(ThreadPool, TerminateDropsQueuedTasksWithPoolClosedError) {
  mproc::ThreadPool tp(1);
  Gate gate;
  std::promise<void> started;
  auto running = tp.apply_async([&] {
    started.set_value();
    return gate.wait() ? 1 : -1;
  });
  ASSERT_EQ(started.get_future().wait_for(kGuard), std::future_status::ready);
  std::atomic<int> ran{0};
  std::vector<mproc::AsyncResult<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(tp.apply_async([&] { return ++ran; }));
  auto queued_map = tp.map_async(square, std::views::iota(0, 10), std::size_t{1});
  tp.terminate();
  EXPECT_THROW((void)tp.apply_async(square, 1), mproc::PoolClosedError);
  gate.open();
  guarded(tp, "join after terminate", [&] { tp.join(); }).get();
  EXPECT_EQ(running.get(kGuard), 1) << "the running task finished";
  for (auto& q : queued) EXPECT_THROW((void)q.get(kGuard), mproc::PoolClosedError);
  EXPECT_THROW((void)queued_map.get(kGuard), mproc::PoolClosedError);
  EXPECT_EQ(ran.load(), 0) << "a dropped task ran";
}

// --------------------------------------------------------------------- imap ---

TEST_F(ThreadPool, ImapInOrderUnorderedAndEndless) {
  mproc::ThreadPool tp(3);
  for (std::size_t chunksize : {1u, 3u}) {
    std::vector<int> got;
    for (int v : tp.imap(square, std::views::iota(0, 50), chunksize)) got.push_back(v);
    EXPECT_EQ(got, squares(50)) << "chunksize " << chunksize;
    std::multiset<int> un;
    for (int v : tp.imap_unordered(square, std::views::iota(0, 50), chunksize)) un.insert(v);
    const auto sq = squares(50);
    EXPECT_EQ(un, std::multiset<int>(sq.begin(), sq.end())) << "chunksize " << chunksize;
  }
  std::vector<int> first;
  for (int v : tp.imap(square, std::views::iota(0), 3)) {
    first.push_back(v);
    if (first.size() == 1000) break;
  }
  EXPECT_EQ(first, squares(1000));
  int count = 0;
  for (int v : tp.imap(square, std::vector<int>{})) count += v + 1;
  EXPECT_EQ(count, 0);
}

TEST_F(ThreadPool, ImapPullsAtMostTheWindowAheadOfTheConsumer) {
  mproc::ThreadPool tp(2);
  for (std::size_t chunksize : {1u, 3u}) {
    std::atomic<std::size_t> pulls{0};
    auto counted = std::views::iota(0) | std::views::transform([&pulls](int x) {
                     pulls.fetch_add(1);
                     return x;
                   });
    const std::size_t window = mproc::imap_window(tp.processes(), chunksize);
    auto settled = [&] {
      std::size_t last = pulls.load();
      int same = 0;
      const auto deadline = std::chrono::steady_clock::now() + kGuard;
      while (same < 5 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
        const std::size_t now = pulls.load();
        same = now == last ? same + 1 : 0;
        last = now;
      }
      return last;
    };
    auto results = tp.imap(square, counted, chunksize);
    ASSERT_TRUE(wait_until([&] { return pulls.load() > 0; }));
    const std::size_t before = settled();
    EXPECT_GT(before, 0u);
    EXPECT_LE(before, window) << "chunksize " << chunksize;
    for (int i = 0; i < 10; ++i) ASSERT_EQ(results.next(), i * i);
    const std::size_t after = settled();
    EXPECT_GT(after, before);
    EXPECT_LE(after, window + 10) << "chunksize " << chunksize;
  }
}

TEST_F(ThreadPool, ImapThrowsATaskErrorAtItsPosition) {
  mproc::ThreadPool tp(2);
  auto range = tp.imap(fail_at_five, std::views::iota(0, 10), 2);
  std::vector<int> got;
  int thrown_at = -1;
  for (int i = 0; i < 10; ++i) {
    try {
      auto v = range.next();
      ASSERT_TRUE(v.has_value());
      got.push_back(*v);
    } catch (const std::out_of_range&) {
      thrown_at = i;
      got.push_back(-1);
    }
  }
  EXPECT_EQ(thrown_at, 5);
  EXPECT_EQ(got, (std::vector{0, 10, 20, 30, 40, -1, 60, 70, 80, 90}));
  EXPECT_EQ(range.next(), std::nullopt);
}

TEST_F(ThreadPool, DestroyingAnImapEarlyKeepsThePoolUsable) {
  mproc::ThreadPool tp(2);
  {
    auto range = tp.imap(square, std::views::iota(0, 100000));
    EXPECT_EQ(range.next(), 0);
  }
  { auto range = tp.imap_unordered(square, std::views::iota(0)); }
  EXPECT_EQ(tp.map(square, std::views::iota(0, 20)), squares(20));
  tp.close();
  guarded(tp, "join after abandoned imaps", [&] { tp.join(); }).get();
}

// An imap range may outlive its pool: once the pool is gone it takes no
// more input and never calls into the dead pool (ASan would see it); what
// it holds, and then the end, is all it yields.
TEST_F(ThreadPool, AnImapRangeThatOutlivesItsPoolEnds) {
  std::atomic<int> pulled{0};
  auto counted = std::views::iota(0) | std::views::transform([&pulled](int x) {
                   ++pulled;
                   return x;
                 });
  std::optional<mproc::IMapRange<int>> range;
  {
    mproc::ThreadPool tp(2);
    range.emplace(tp.imap(square, counted));
    EXPECT_EQ(range->next(), 0);
  }  // terminate() and join()
  const int taken = pulled.load();
  std::size_t rest = 0;  // results, or PoolClosedError for dropped chunks
  for (;;) {
    try {
      if (!range->next()) break;  // ends: the pool is gone
    } catch (const mproc::PoolClosedError&) {
    }
    ++rest;
  }
  EXPECT_LT(rest, static_cast<std::size_t>(taken));
  EXPECT_EQ(pulled.load(), taken) << "the range took input after its pool was gone";
}

// A closed ThreadPool still serves an imap whose reader comes later, and
// join() runs the rest of its input first (tests/test_cpython_audit_pool.cpp
// has the CPython forms of both).
TEST_F(ThreadPool, JoinRunsTheRestOfAnImapWhoseReaderComesLater) {
  mproc::ThreadPool tp(2);
  auto it = tp.imap(square, std::views::iota(0, 500));
  tp.close();
  guarded(tp, "join with an imap not yet read", [&] { tp.join(); }).get();
  std::vector<int> got;
  while (auto v = it.next(kGuard)) got.push_back(*v);
  EXPECT_EQ(got, squares(500));
}

}  // namespace
