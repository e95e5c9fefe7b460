// test_pool.cpp: the API of mproc::Pool (pool.hpp, API.md section 4) and
// how task exceptions come back (API.md section 8), under every start
// method.
//
// Tasks are free functions, captureless or int-capturing lambdas and small
// function objects: what may cross a process boundary. A task cannot use
// gtest assertions (it runs in another process), so it returns what the
// test checks, or leaves a file in a TempDir whose path it gets as an
// argument. Every blocking call is bounded: a HangGuard per test aborts
// with the test's name before the ctest timeout, and calls where a hang is
// the plausible bug run under mproc_test::guarded, which fails the test
// and terminates the pool instead.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <ranges>
#include <set>
#include <stdexcept>
#include <cstdlib>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/async_result.hpp"
#include "mproc/errors.hpp"
#include "mproc/pool.hpp"
#include "mproc/process.hpp"
#include "mproc/queue.hpp"

// PoolOptions is filled with designated initializers, leaving the other
// fields at their defaults, as API.md shows; g++ 12's -Wextra warns about
// every such field.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

// Exception types of the error tests, in a named namespace so that their
// demangled names are predictable.
namespace pool_test_types {
class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Not registered anywhere, and not even a std::runtime_error.
struct UnknownFailure : std::exception {
  const char* what() const noexcept override { return "an unknown failure"; }
};
}  // namespace pool_test_types

namespace {

using mproc::StartMethod;
using mproc_test::guarded;
using mproc_test::kGuard;
using mproc_test::TempDir;
using mproc_test::wait_for_file;
using mproc_test::wait_until;
using namespace std::chrono_literals;

// ------------------------------------------------------------ task bodies ---

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int power(int base, int exp) {
  int r = 1;
  for (int i = 0; i < exp; ++i) r *= base;
  return r;
}
int length_of(std::string s) { return static_cast<int>(s.size()); }
int worker_pid(int) { return static_cast<int>(::getpid()); }
int fail_at_five(int x) {
  if (x == 5) throw std::out_of_range("item five failed");
  return x * 10;
}
void require_nonnegative(int x) {
  if (x < 0) throw std::domain_error("negative item " + std::to_string(x));
}
void write_marker(std::string path) { mproc_test::write_file(path, "done"); }

// Returns `value` once the file `path` exists (the test decides when).
int return_when_released(std::string path, int value) {
  return mproc_test::wait_for_path(path, 2 * kGuard) ? value : -1;
}

// Marks `path`, then runs until killed (bounded all the same).
int hang_after_marking(std::string path) {
  mproc_test::write_file(path, std::to_string(::getpid()));
  for (int i = 0; i < 1200; ++i) ::usleep(50 * 1000);
  return -1;
}

struct Scale {
  int factor;
  int operator()(int x) const { return x * factor; }
};

std::string pattern(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + static_cast<std::size_t>(seed) * 7) & 0xff);
  return s;
}

int g_initialized = 0;
void set_initialized(int v) { g_initialized = v; }
int read_initialized(int) { return g_initialized; }
void initializer_throws(int) { throw std::invalid_argument("the initializer refused"); }

// Records this worker's pid in `dir` (one file per item) and returns x*x:
// lets a test count how many items ran.
int mark_and_square(std::string dir, int x) {
  mproc_test::write_file(dir + "/item-" + std::to_string(x), std::to_string(::getpid()));
  return x * x;
}

// ------------------------------------------------------------------ fixture ---

class Pool : public ::testing::TestWithParam<StartMethod> {
 protected:
  void SetUp() override {
    if (mproc_test::fork_pool_unsafe_under_sanitizers(GetParam())) {
      GTEST_SKIP() << "fork-started pool workers under GCC 12's sanitizers (see pool_support.hpp)";
    }
  }
 protected:
  mproc::PoolOptions<> options(std::size_t n = 2) const {
    return mproc::PoolOptions<>{.processes = n, .start_method = GetParam()};
  }
  std::vector<int> squares(int n) const {
    std::vector<int> out;
    for (int i = 0; i < n; ++i) out.push_back(i * i);
    return out;
  }
  mproc_test::HangGuard hang_guard_;
};

// ---------------------------------------------------------------------- map ---

TEST_P(Pool, MapSquaresAVector) {
  mproc::Pool pool(options());
  EXPECT_EQ(pool.processes(), 2u);
  EXPECT_EQ(pool.map(square, std::vector{1, 2, 3, 4, 5}), (std::vector{1, 4, 9, 16, 25}));
}

TEST_P(Pool, MapTakesAnIotaView) {
  mproc::Pool pool(options());
  EXPECT_EQ(pool.map(square, std::views::iota(0, 100)), squares(100));
}

TEST_P(Pool, MapTakesANonSizedFilterView) {
  mproc::Pool pool(options());
  auto evens = std::views::iota(0, 40) | std::views::filter([](int x) { return x % 2 == 0; });
  static_assert(!std::ranges::sized_range<decltype(evens)>);
  std::vector<int> expected;
  for (int x = 0; x < 40; x += 2) expected.push_back(x * x);
  EXPECT_EQ(pool.map(square, evens), expected);
}

double halve(int x) { return x / 2.0; }
bool is_even(int x) { return x % 2 == 0; }
enum class Parity : std::uint8_t { even, odd };
Parity parity(long x) { return x % 2 == 0 ? Parity::even : Parity::odd; }
int fail_at_42_and_77(int x) {
  if (x == 42 || x == 77) throw std::out_of_range("item " + std::to_string(x));
  return x;
}

TEST_P(Pool, MapOfPlainValuesConvertsAndKeepsTypes) {
  // Plain items and results travel in bulk (pool_jobs.hpp): a contiguous
  // input of the parameter's type, one that must be converted (short ->
  // int, int -> long), a non-contiguous one, results of other plain types
  // (double, an enum) and bool (checked one by one).
  mproc::Pool pool(options());
  std::vector<int> ints;
  std::vector<short> shorts;
  std::vector<double> halves;
  std::vector<Parity> parities;
  std::vector<bool> evens;
  for (int i = 0; i < 3000; ++i) {
    ints.push_back(i);
    shorts.push_back(static_cast<short>(i));
    halves.push_back(i / 2.0);
    parities.push_back(i % 2 == 0 ? Parity::even : Parity::odd);
    evens.push_back(i % 2 == 0);
  }
  EXPECT_EQ(pool.map(halve, ints), halves);
  EXPECT_EQ(pool.map(halve, shorts, 7), halves);
  EXPECT_EQ(pool.map(halve, std::views::iota(0, 3000), 100), halves);
  EXPECT_EQ(pool.map(parity, ints, 64), parities);
  EXPECT_EQ(pool.map(is_even, ints), evens);
}

TEST_P(Pool, MapOfPlainValuesReportsTheLowestFailingItem) {
  // Failures in the middle of runs of plain results: the call ends (every
  // item answered) and throws the error of the lowest failing index.
  mproc::Pool pool(options());
  std::vector<int> xs(100);
  for (int i = 0; i < 100; ++i) xs[static_cast<std::size_t>(i)] = i;
  for (std::size_t chunksize : {0u, 1u, 50u, 100u}) {
    try {
      (void)pool.map(fail_at_42_and_77, xs, chunksize);
      ADD_FAILURE() << "no error, chunksize " << chunksize;
    } catch (const std::out_of_range& e) {
      EXPECT_STREQ(e.what(), "item 42") << "chunksize " << chunksize;
    }
  }
  EXPECT_EQ(pool.map(fail_at_42_and_77, std::vector{1, 2, 3}), (std::vector{1, 2, 3}));
}

std::int64_t fail_on_multiples_of_3(int x) {
  if (x % 3 == 0) throw std::domain_error("multiple of 3: " + std::to_string(x));
  return std::int64_t{x} * 1000;
}
struct Wide {  // a plain result of 64 bytes: big outputs from few items
  std::int64_t v[8];
};
Wide always_fail(int x) { throw std::invalid_argument("no " + std::to_string(x)); }

TEST_P(Pool, PlainChunksWithFailuresEverywhereAnswerEveryItem) {
  // The plain-values loop (task_entry.hpp) runs items in runs; a throw in
  // the middle of a run (here every third item, the first and the last)
  // fails that item only, and the run goes on after it.
  mproc::Pool pool(options());
  for (std::size_t chunksize : {1u, 2u, 7u, 300u, 1000u}) {
    auto fut = guarded(pool, "imap over plain values failing every third item", [&] {
      std::vector<std::string> seen;
      auto range = pool.imap(fail_on_multiples_of_3, std::views::iota(0, 1000), chunksize);
      for (;;) {
        try {
          const auto v = range.next();
          if (!v) break;
          seen.push_back(std::to_string(*v));
        } catch (const std::domain_error& e) {
          seen.push_back(e.what());
        }
      }
      return seen;
    });
    const std::vector<std::string> seen = fut.get();
    ASSERT_EQ(seen.size(), 1000u) << "chunksize " << chunksize;
    for (int i = 0; i < 1000; ++i) {
      const std::string want = i % 3 == 0 ? "multiple of 3: " + std::to_string(i) : std::to_string(i * 1000);
      EXPECT_EQ(seen[static_cast<std::size_t>(i)], want) << "item " << i << ", chunksize " << chunksize;
    }
  }
}

TEST_P(Pool, BigMapsOfPlainValuesAreExactAndFailCleanly) {
  // Outputs of 1 MiB and more are faulted in by the caller while the
  // workers run (MapJob::fill_output): every value still lands, and a map
  // whose every item fails ends with the lowest item's error.
  mproc::Pool pool(options());
  const int n = 300000;  // 2.4 MB of results; automatic chunks of 64 Ki ints
  std::vector<int> xs;
  for (int x = 1; x < n; ++x) {
    if (x % 3 != 0) xs.push_back(x);
  }
  auto fut = guarded(pool, "a big map of plain values", [&] { return pool.map(fail_on_multiples_of_3, xs); });
  const std::vector<std::int64_t> out = fut.get();
  ASSERT_EQ(out.size(), xs.size());
  for (std::size_t k = 0; k < xs.size(); ++k) ASSERT_EQ(out[k], std::int64_t{xs[k]} * 1000) << "item " << xs[k];
  auto fut2 = guarded(pool, "a big map whose every item fails", [&] {
    try {
      (void)pool.map(always_fail, std::views::iota(0, 20000));  // 1.28 MB of output
      return std::string("no error");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
  });
  EXPECT_EQ(fut2.get(), "no 0");
  EXPECT_EQ(pool.map(square, std::vector{5}), std::vector{25});
}

std::string reversed(std::string s) { return {s.rbegin(), s.rend()}; }
std::string blob_of(int i) { return pattern(2u << 20, i); }

TEST_P(Pool, BigPayloadsCrossBothWaysWhole) {
  // Bodies of 64 KiB to 16 MiB cross through each worker's shared-memory
  // rings (bulk_ring.hpp), bigger ones through the socket; both in one map,
  // singly and several to a chunk, and back as results.
  mproc::Pool pool(options());
  std::vector<std::string> in;
  for (std::size_t n : {std::size_t{1} << 10, std::size_t{70} << 10, std::size_t{3} << 20, std::size_t{17} << 20,
                        std::size_t{300} << 10, std::size_t{64} << 10, std::size_t{5} << 20}) {
    in.push_back(pattern(n, static_cast<int>(in.size())));
  }
  std::vector<std::string> want;
  for (const auto& s : in) want.push_back(reversed(s));
  for (std::size_t chunksize : {0u, 1u, 3u}) {
    auto fut = guarded(pool, "a map over big payloads", [&] { return pool.map(reversed, in, chunksize); });
    const std::vector<std::string> out = fut.get();
    ASSERT_EQ(out.size(), want.size());
    for (std::size_t i = 0; i < out.size(); ++i) EXPECT_TRUE(out[i] == want[i]) << "item " << i << ", chunksize " << chunksize;
  }
  // 40 results of 2 MiB each, consumed only at the end: more than a ring
  // holds, so some wait in the ring and the rest go through the socket,
  // all in order.
  auto fut = guarded(pool, "imap over big results", [&] {
    std::vector<std::string> got;
    for (auto& r : pool.imap(blob_of, std::views::iota(0, 40))) got.push_back(std::move(r));
    return got;
  });
  const std::vector<std::string> got = fut.get();
  ASSERT_EQ(got.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(got[static_cast<std::size_t>(i)] == blob_of(i)) << "result " << i;
}

TEST_P(Pool, MapOfAnEmptyInputIsEmpty) {
  mproc::Pool pool(options());
  auto fut = guarded(pool, "map over an empty vector", [&] { return pool.map(square, std::vector<int>{}); });
  EXPECT_TRUE(fut.get().empty());
  auto fut2 = guarded(pool, "map over an empty iota", [&] { return pool.map(square, std::views::iota(0, 0)); });
  EXPECT_TRUE(fut2.get().empty());
  auto fut3 = guarded(pool, "map_async over an empty vector", [&] {
    return pool.map_async(square, std::vector<int>{}).get();
  });
  EXPECT_TRUE(fut3.get().empty());
  // The pool is still usable, and shuts down cleanly.
  EXPECT_EQ(pool.map(square, std::vector{3}), std::vector{9});
  pool.close();
  guarded(pool, "join after empty maps", [&] { pool.join(); }).get();
}

TEST_P(Pool, StarmapUnpacksTuples) {
  mproc::Pool pool(options());
  std::vector<std::tuple<int, int>> args{{2, 2}, {3, 3}, {4, 4}};
  EXPECT_EQ(pool.starmap(power, args), (std::vector{4, 27, 256}));
}

TEST_P(Pool, ChunksizesGiveTheSameResults) {
  mproc::Pool pool(options());
  for (std::size_t chunksize : {0u, 1u, 7u}) {
    EXPECT_EQ(pool.map(square, std::views::iota(0, 50), chunksize), squares(50)) << "chunksize " << chunksize;
    std::vector<std::tuple<int, int>> pairs;
    std::vector<int> sums;
    for (int i = 0; i < 23; ++i) {
      pairs.emplace_back(i, 100 * i);
      sums.push_back(101 * i);
    }
    EXPECT_EQ(pool.starmap(add, pairs, chunksize), sums) << "chunksize " << chunksize;
  }
}

TEST_P(Pool, MapOfAVoidFunctionReturnsVoid) {
  mproc::Pool pool(options());
  static_assert(std::is_void_v<decltype(pool.map(require_nonnegative, std::vector<int>{}))>);
  EXPECT_NO_THROW(pool.map(require_nonnegative, std::views::iota(0, 20)));
  try {
    pool.map(require_nonnegative, std::vector{1, 2, -3, 4});
    ADD_FAILURE() << "map of a failing void task did not throw";
  } catch (const std::domain_error& e) {
    EXPECT_STREQ(e.what(), "negative item -3");
  }
}

TEST_P(Pool, LambdaWithCapturedIntsAndFunctionObjects) {
  mproc::Pool pool(options());
  const int offset = 1000;
  const int factor = 3;
  EXPECT_EQ(pool.map([offset, factor](int x) { return x * factor + offset; }, std::vector{1, 2, 3}),
            (std::vector{1003, 1006, 1009}));
  EXPECT_EQ(pool.map(Scale{7}, std::vector{1, 2, 3}), (std::vector{7, 14, 21}));
  EXPECT_EQ(pool.apply([offset](int a, int b) { return a + b + offset; }, 1, 2), 1003);
  EXPECT_EQ(pool.apply(Scale{5}, 4), 20);
  // A captureless lambda.
  EXPECT_EQ(pool.apply([] { return 42; }), 42);
}

// -------------------------------------------------------------------- apply ---

TEST_P(Pool, ApplyReturnsTheValue) {
  mproc::Pool pool(options());
  EXPECT_EQ(pool.apply(add, 2, 3), 5);
  EXPECT_EQ(pool.apply(length_of, "hello"), 5);  // const char* travels as std::string
  EXPECT_EQ(pool.apply(power, 2, 10), 1024);
}

TEST_P(Pool, ApplyAsyncGetTimesOutWhileTheTaskRunsThenGivesTheValue) {
  mproc::Pool pool(options());
  TempDir dir;
  const std::string release = dir.file("release");
  mproc::AsyncResult<int> r = pool.apply_async(return_when_released, release, 7);
  EXPECT_THROW(r.get(10ms), mproc::TimeoutError);
  EXPECT_FALSE(r.ready());
  EXPECT_FALSE(r.wait(1ms));
  EXPECT_THROW((void)r.successful(), mproc::Error);
  ASSERT_TRUE(mproc_test::write_file(release, "go"));
  EXPECT_EQ(r.get(kGuard), 7);
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_EQ(r.get(), 7) << "get() may be called again";
  r.wait();
  EXPECT_TRUE(r.wait(0ms));
}

TEST_P(Pool, AsyncResultOfAFailedTaskIsNotSuccessful) {
  mproc::Pool pool(options());
  auto r = pool.apply_async(fail_at_five, 5);
  ASSERT_TRUE(r.wait(kGuard));
  EXPECT_TRUE(r.ready());
  EXPECT_FALSE(r.successful());
  EXPECT_THROW(r.get(), std::out_of_range);
  EXPECT_THROW(r.get(), std::out_of_range) << "get() rethrows the same error again";
}

TEST_P(Pool, ApplyAsyncOfAVoidFunctionGivesAsyncResultVoid) {
  mproc::Pool pool(options());
  TempDir dir;
  auto r = pool.apply_async(write_marker, dir.file("marker"));
  static_assert(std::is_same_v<decltype(r), mproc::AsyncResult<void>>);
  ASSERT_TRUE(r.wait(kGuard));
  EXPECT_TRUE(r.successful());
  r.get();
  EXPECT_EQ(mproc_test::read_file(dir.file("marker")), "done");

  auto bad = pool.apply_async(require_nonnegative, -1);
  EXPECT_THROW(bad.get(), std::domain_error);
}

// ---------------------------------------------------------------- callbacks ---

TEST_P(Pool, MapAsyncCallbackRunsInTheParentOnAnotherThreadBeforeGetReturns) {
  mproc::Pool pool(options());
  std::mutex mu;
  std::vector<int> seen;
  std::thread::id cb_thread;
  pid_t cb_pid = 0;
  auto r = pool.map_async(square, std::vector{1, 2, 3}, mproc::on_result([&](const std::vector<int>& v) {
                            std::lock_guard lock(mu);
                            seen = v;
                            cb_thread = std::this_thread::get_id();
                            cb_pid = ::getpid();
                          }));
  EXPECT_EQ(r.get(kGuard), (std::vector{1, 4, 9}));
  std::lock_guard lock(mu);
  EXPECT_EQ(seen, (std::vector{1, 4, 9})) << "the callback ran before the result became ready";
  EXPECT_EQ(cb_pid, ::getpid());
  EXPECT_NE(cb_thread, std::this_thread::get_id());
}

TEST_P(Pool, MapAsyncOnErrorReceivesTheTaskError) {
  mproc::Pool pool(options());
  std::atomic<bool> result_called{false};
  std::exception_ptr got;
  auto r = pool.map_async(
      // The chunksize is spelled std::size_t: with an int literal the
      // callbacks-only overload is chosen and the call does not compile
      // (reported; see the pool test report).
      fail_at_five, std::views::iota(0, 10), std::size_t{1}, mproc::on_result([&](const std::vector<int>&) { result_called = true; }),
      mproc::on_error([&](std::exception_ptr e) { got = e; }));
  EXPECT_THROW(r.get(kGuard), std::out_of_range);
  EXPECT_FALSE(result_called.load());
  ASSERT_TRUE(got);
  EXPECT_THROW(std::rethrow_exception(got), std::out_of_range);
}

TEST_P(Pool, StarmapAsyncWithCallbacks) {
  mproc::Pool pool(options());
  std::vector<int> seen;
  std::vector<std::tuple<int, int>> args{{2, 2}, {3, 3}, {4, 4}};
  auto r = pool.starmap_async(power, args, mproc::on_result([&](const std::vector<int>& v) { seen = v; }));
  EXPECT_EQ(r.get(kGuard), (std::vector{4, 27, 256}));
  EXPECT_EQ(seen, (std::vector{4, 27, 256}));

  std::exception_ptr error;
  std::vector<std::tuple<int, int>> bad{{1, 2}, {5, 0}};
  auto failing = pool.starmap_async([](int a, int b) { return fail_at_five(a) + b; }, bad, std::size_t{1},
                                    mproc::on_error([&](std::exception_ptr e) { error = e; }));
  EXPECT_THROW(failing.get(kGuard), std::out_of_range);
  EXPECT_TRUE(error);
}

TEST_P(Pool, ApplyAsyncCallbacksNeverRunConcurrently) {
  mproc::Pool pool(options());
  std::atomic<bool> inside{false};
  std::atomic<int> overlaps{0}, calls{0}, errors{0};
  std::mutex mu;
  std::set<std::thread::id> threads;
  auto enter = [&] {
    if (inside.exchange(true)) ++overlaps;
    {
      std::lock_guard lock(mu);
      threads.insert(std::this_thread::get_id());
    }
    // Stay inside a little, so that a concurrent call would be caught.
    for (int i = 0; i < 50; ++i) std::this_thread::yield();
    inside = false;
  };
  std::vector<mproc::AsyncResult<int>> results;
  for (int i = 0; i < 40; ++i) {
    if (i % 4 == 3) {
      results.push_back(pool.apply_async(fail_at_five, mproc::args(5), mproc::on_error([&](std::exception_ptr) {
                                           enter();
                                           ++errors;
                                         })));
    } else {
      results.push_back(pool.apply_async(square, mproc::args(i), mproc::on_result([&](int) {
                                           enter();
                                           ++calls;
                                         })));
    }
  }
  for (int i = 0; i < 40; ++i) {
    if (i % 4 == 3) {
      EXPECT_THROW(results[i].get(kGuard), std::out_of_range);
    } else {
      EXPECT_EQ(results[i].get(kGuard), i * i);
    }
  }
  EXPECT_EQ(calls.load(), 30);
  EXPECT_EQ(errors.load(), 10);
  EXPECT_EQ(overlaps.load(), 0);
  std::lock_guard lock(mu);
  EXPECT_EQ(threads.size(), 1u) << "callbacks run on one pool thread";
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST_P(Pool, ApplyAsyncCallbackOfAVoidTask) {
  mproc::Pool pool(options());
  TempDir dir;
  std::atomic<int> called{0};
  auto r = pool.apply_async(write_marker, mproc::args(dir.file("m")), mproc::on_result([&] { ++called; }));
  r.get(kGuard);
  EXPECT_EQ(called.load(), 1);
}

// -------------------------------------------------------------- initializer ---

TEST_P(Pool, InitializerRunsInEveryWorker) {
  g_initialized = 0;
  mproc::Pool pool(mproc::PoolOptions{.processes = 2,
                                      .initializer = set_initialized,
                                      .initargs = std::make_tuple(41),
                                      .start_method = GetParam()});
  const auto got = pool.map(read_initialized, std::views::iota(0, 20), 1);
  EXPECT_EQ(got, std::vector<int>(20, 41));
  EXPECT_EQ(g_initialized, 0) << "the initializer ran in the workers, not here";
}

std::string g_big_init;
void set_big_init(std::string s) { g_big_init = std::move(s); }
std::size_t big_init_hash(int) { return std::hash<std::string>{}(g_big_init); }

TEST_P(Pool, BigInitargsReachEveryWorker) {
  // 1 MiB of initargs: the init message is big enough to cross through the
  // worker's shared-memory ring.
  const std::string big = pattern(1u << 20, 9);
  mproc::Pool pool(mproc::PoolOptions{.processes = 2,
                                      .initializer = set_big_init,
                                      .initargs = std::make_tuple(big),
                                      .start_method = GetParam()});
  const auto got = pool.map(big_init_hash, std::views::iota(0, 8), 1);
  EXPECT_EQ(got, std::vector<std::size_t>(8, std::hash<std::string>{}(big)));
}

TEST_P(Pool, ThrowingInitializerFailsTasksWithItsException) {
  mproc::Pool pool(mproc::PoolOptions{.processes = 2,
                                      .initializer = initializer_throws,
                                      .initargs = std::make_tuple(1),
                                      .start_method = GetParam()});
  auto fut = guarded(pool, "apply on a pool whose initializer throws", [&] { return pool.apply(square, 3); });
  try {
    (void)fut.get();
    ADD_FAILURE() << "a task ran although the initializer threw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "the initializer refused");
  }
  auto fut2 = guarded(pool, "map on a pool whose initializer throws", [&] {
    return pool.map(square, std::vector{1, 2, 3});
  });
  EXPECT_THROW((void)fut2.get(), std::invalid_argument);
}

TEST_P(Pool, MaxTasksPerChildOneStartsAFreshWorkerForEveryChunk) {
  auto o = options();
  o.maxtasksperchild = 1;
  mproc::Pool pool(o);
  const auto pids = pool.map(worker_pid, std::views::iota(0, 8), 1);
  ASSERT_EQ(pids.size(), 8u);
  EXPECT_EQ(std::set<int>(pids.begin(), pids.end()).size(), 8u) << "each chunk ran in a worker of its own";
  EXPECT_EQ(pool.map(square, std::views::iota(0, 12), 1), squares(12));
  EXPECT_EQ(pool.map(square, std::views::iota(0, 12), 4), squares(12));
}

// ---------------------------------------------------------------- lifecycle ---

TEST_P(Pool, CloseLetsQueuedTasksFinishThenJoinReturns) {
  mproc::Pool pool(options());
  TempDir dir;
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 6; ++i) rs.push_back(pool.apply_async(mark_and_square, dir.path(), i));
  pool.close();
  guarded(pool, "join after close", [&] { pool.join(); }).get();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(rs[i].get(0ms), i * i);
  EXPECT_EQ(mproc_test::count_entries(dir.path()), 6u);
  EXPECT_THROW((void)pool.apply_async(square, 1), mproc::PoolClosedError);
  EXPECT_THROW(pool.map(square, std::vector{1}), mproc::PoolClosedError);
  EXPECT_NO_THROW(pool.join()) << "a second join is harmless";
}

TEST_P(Pool, JoinBeforeCloseThrows) {
  mproc::Pool pool(options());
  EXPECT_THROW(pool.join(), mproc::Error);
  EXPECT_EQ(pool.apply(square, 3), 9) << "the failed join changed nothing";
  pool.close();
  guarded(pool, "join", [&] { pool.join(); }).get();
}

TEST_P(Pool, SubmittingAfterCloseOrTerminateThrowsPoolClosedError) {
  {
    mproc::Pool pool(options());
    pool.close();
    EXPECT_THROW((void)pool.apply_async(square, 1), mproc::PoolClosedError);
    EXPECT_THROW(pool.apply(square, 1), mproc::PoolClosedError);
    EXPECT_THROW(pool.map(square, std::vector{1, 2}), mproc::PoolClosedError);
    EXPECT_THROW((void)pool.map_async(square, std::vector{1, 2}), mproc::PoolClosedError);
    EXPECT_THROW((void)pool.imap(square, std::views::iota(0, 3)), mproc::PoolClosedError);
    guarded(pool, "join after close", [&] { pool.join(); }).get();
  }
  {
    mproc::Pool pool(options());
    pool.terminate();
    EXPECT_THROW((void)pool.apply_async(square, 1), mproc::PoolClosedError);
    EXPECT_THROW(pool.starmap(add, std::vector<std::tuple<int, int>>{{1, 2}}), mproc::PoolClosedError);
    EXPECT_THROW((void)pool.imap_unordered(square, std::views::iota(0, 3)), mproc::PoolClosedError);
    guarded(pool, "join after terminate", [&] { pool.join(); }).get();
  }
}

TEST_P(Pool, ZeroProcessesThrows) {
  EXPECT_THROW(mproc::Pool pool(std::size_t{0}), mproc::Error);
}

TEST_P(Pool, DestructorTerminatesAHungTask) {
  auto pool = std::make_unique<mproc::Pool>(options());
  TempDir dir;
  auto r = pool->apply_async(hang_after_marking, dir.file("started"));
  ASSERT_TRUE(wait_for_file(dir.file("started"))) << "the task never started";
  auto fut = std::async(std::launch::async, [&] { pool.reset(); });
  if (fut.wait_for(kGuard) != std::future_status::ready) {
    std::fprintf(stderr, "~Pool hangs on a hung task\n");
    std::abort();
  }
  EXPECT_THROW(r.get(kGuard), mproc::PoolClosedError);
}

// --------------------------------------------------------------------- imap ---

TEST_P(Pool, ImapYieldsResultsInInputOrder) {
  mproc::Pool pool(options());
  for (std::size_t chunksize : {1u, 3u}) {
    std::vector<int> got;
    for (int v : pool.imap(square, std::views::iota(0, 50), chunksize)) got.push_back(v);
    EXPECT_EQ(got, squares(50)) << "chunksize " << chunksize;
  }
  // An lvalue vector, and next() as Python's next(it).
  const std::vector<int> input{5, 6, 7};
  auto it = pool.imap(square, input);
  EXPECT_EQ(it.next(), 25);
  EXPECT_EQ(it.next(), 36);
  EXPECT_EQ(it.next(), 49);
  EXPECT_EQ(it.next(), std::nullopt);
}

TEST_P(Pool, ImapUnorderedYieldsTheSameMultiset) {
  mproc::Pool pool(options());
  for (std::size_t chunksize : {1u, 3u}) {
    std::multiset<int> got;
    for (int v : pool.imap_unordered([](int x) { return x % 7; }, std::views::iota(0, 70), chunksize)) got.insert(v);
    std::multiset<int> expected;
    for (int x = 0; x < 70; ++x) expected.insert(x % 7);
    EXPECT_EQ(got, expected) << "chunksize " << chunksize;
  }
}

TEST_P(Pool, ImapOfAnEmptyInputEndsAndThePoolStillCloses) {
  mproc::Pool pool(options());
  auto n = guarded(pool, "iterating imap of an empty input", [&] {
    int count = 0;
    for (int v : pool.imap(square, std::vector<int>{})) count += v + 1;
    return count;
  });
  EXPECT_EQ(n.get(), 0);
  pool.close();
  guarded(pool, "join after an empty imap", [&] { pool.join(); }).get();
}

TEST_P(Pool, ImapOverAnEndlessInput) {
  mproc::Pool pool(options());
  std::vector<int> got;
  for (int v : pool.imap(square, std::views::iota(0), 3)) {
    got.push_back(v);
    if (got.size() == 1000) break;
  }
  ASSERT_EQ(got.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(got[i], i * i) << "at " << i;
}

TEST_P(Pool, ImapPullsAtMostTheWindowAheadOfTheConsumer) {
  mproc::Pool pool(options());
  for (std::size_t chunksize : {1u, 3u}) {
    std::atomic<std::size_t> pulls{0};
    auto counted = std::views::iota(0) | std::views::transform([&pulls](int x) {
                     pulls.fetch_add(1);
                     return x;
                   });
    const std::size_t window = mproc::imap_window(pool.processes(), chunksize);
    // Waits until the number of pulls stays the same for a while (bounded).
    auto settled = [&] {
      std::size_t last = pulls.load();
      int same = 0;
      const auto deadline = std::chrono::steady_clock::now() + kGuard;
      while (same < 5 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(40ms);
        const std::size_t now = pulls.load();
        same = now == last ? same + 1 : 0;
        last = now;
      }
      return last;
    };
    auto results = pool.imap(square, counted, chunksize);
    ASSERT_TRUE(wait_until([&] { return pulls.load() > 0; })) << "imap never took any input";
    const std::size_t before = settled();
    EXPECT_GT(before, 0u);
    EXPECT_LE(before, window) << "chunksize " << chunksize;
    // Consuming makes room: once a quarter of the window is free, input is
    // pulled again, still bounded.
    const int consumed = static_cast<int>(window / 4) + 1;
    for (int i = 0; i < consumed; ++i) ASSERT_EQ(results.next(), i * i);
    const std::size_t after = settled();
    EXPECT_GT(after, before);
    EXPECT_LE(after, window + static_cast<std::size_t>(consumed)) << "chunksize " << chunksize;
  }
}

TEST_P(Pool, ImapThrowsATaskErrorAtItsPosition) {
  mproc::Pool pool(options());
  for (std::size_t chunksize : {1u, 3u}) {
    auto range = pool.imap(fail_at_five, std::views::iota(0, 10), chunksize);
    std::vector<int> got;
    int thrown_at = -1;
    for (int i = 0; i < 10; ++i) {
      try {
        auto v = range.next();
        ASSERT_TRUE(v.has_value()) << "ended early at " << i;
        got.push_back(*v);
      } catch (const std::out_of_range& e) {
        thrown_at = i;
        EXPECT_STREQ(e.what(), "item five failed");
        got.push_back(-1);
      }
    }
    EXPECT_EQ(thrown_at, 5) << "chunksize " << chunksize;
    EXPECT_EQ(got, (std::vector{0, 10, 20, 30, 40, -1, 60, 70, 80, 90}));
    EXPECT_EQ(range.next(), std::nullopt);
  }
  // In a range-for the exception leaves the loop after the items before it.
  std::vector<int> before;
  try {
    for (int v : pool.imap(fail_at_five, std::views::iota(0, 10))) before.push_back(v);
    ADD_FAILURE() << "the loop ended without the task's exception";
  } catch (const std::out_of_range&) {
  }
  EXPECT_EQ(before, (std::vector{0, 10, 20, 30, 40}));
}

TEST_P(Pool, DestroyingAnImapEarlyKeepsThePoolUsable) {
  mproc::Pool pool(options());
  {
    auto range = pool.imap(square, std::views::iota(0, 100000));
    EXPECT_EQ(range.next(), 0);
    EXPECT_EQ(range.next(), 1);
  }
  {
    // Destroyed before the first result was read.
    auto range = pool.imap_unordered(square, std::views::iota(0));
  }
  {
    // Destroyed once everything it pulled has been answered.
    auto range = pool.imap([d = 0](int x) { return x + d; }, std::views::iota(0, 3));
    std::vector<int> got;
    for (int i = 0; i < 3; ++i) got.push_back(range.next().value_or(-1));
    EXPECT_EQ(got, (std::vector{0, 1, 2}));
  }
  EXPECT_EQ(pool.map(square, std::views::iota(0, 20)), squares(20));
  pool.close();
  guarded(pool, "join after abandoned imaps", [&] { pool.join(); }).get();
}

// With MPROC_SPIN_US=0 (read when a pool starts) neither the supervisor nor
// the workers spin: every hand-off between them goes through the sleep
// announcement and the bell (docs/design/pool.md, "Waking"), each way, for
// every task. A lost wake-up would hang a call; the guards turn that into a
// failure.
TEST_P(Pool, EveryHandOffWorksWithSpinningOff) {
  const char* old = std::getenv("MPROC_SPIN_US");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("MPROC_SPIN_US", "0", 1);
  mproc::Pool pool(options());
  if (old != nullptr) {
    ::setenv("MPROC_SPIN_US", saved.c_str(), 1);
  } else {
    ::unsetenv("MPROC_SPIN_US");
  }
  guarded(pool, "round trips without spinning", [&] {
    for (int i = 0; i < 300; ++i) ASSERT_EQ(pool.apply_async(square, i).get(), i * i);
  }).get();
  guarded(pool, "imap_unordered without spinning", [&] {
    long long sum = 0;
    for (int v : pool.imap_unordered(square, std::views::iota(0, 2000), 1)) sum += v;
    EXPECT_EQ(sum, 1999LL * 2000 * 3999 / 6);
  }).get();
  EXPECT_EQ(guarded(pool, "map without spinning", [&] { return pool.map(square, std::views::iota(0, 5000)); }).get(),
            squares(5000));
  pool.close();
  guarded(pool, "join without spinning", [&] { pool.join(); }).get();
}

// A task may start processes of its own: a whole Pool, or a Process that
// answers through a Queue. (Python forbids both: its pool workers are
// daemonic, and "daemonic processes are not allowed to have children".
// mproc's children die with their parent, so a worker's children cannot
// outlive it.)
long long nested_pool_sum(int n, StartMethod method) {
  mproc::Pool inner(mproc::PoolOptions<>{.processes = 2, .start_method = method});
  long long sum = 0;
  for (int v : inner.map(square, std::views::iota(0, n))) sum += v;
  inner.close();
  inner.join();
  return sum;
}
int process_in_worker(int n, StartMethod method) {
  mproc::Queue<int> q;
  mproc::Process child(mproc::ProcessOptions{.start_method = method}, [](mproc::Queue<int> out, int k) { out.put(k * 10); },
                       q, n);
  child.start();
  const auto got = q.get(std::chrono::seconds(30));
  child.join();
  return got + *child.exitcode();
}

TEST_P(Pool, ATaskMayStartItsOwnPoolAndProcesses) {
  mproc::Pool pool(options());
  const auto sums = guarded(pool, "pools inside tasks", [&] {
                      return pool.starmap(nested_pool_sum,
                                          std::vector<std::tuple<int, StartMethod>>{{3, GetParam()}, {10, GetParam()}});
                    }).get();
  EXPECT_EQ(sums, (std::vector<long long>{5, 285}));
  const auto answers = guarded(pool, "processes inside tasks", [&] {
                         return pool.starmap(process_in_worker,
                                             std::vector<std::tuple<int, StartMethod>>{{1, GetParam()}, {2, GetParam()}});
                       }).get();
  EXPECT_EQ(answers, (std::vector<int>{10, 20}));
}

INSTANTIATE_TEST_SUITE_P(StartMethod, Pool, mproc_test::all_start_methods(), mproc_test::start_method_name);

// =============================================================== errors (§8) ===

int throw_kind(int kind, std::string message) {
  switch (kind) {
    case 0: throw std::invalid_argument(message);
    case 1: throw std::domain_error(message);
    case 2: throw std::length_error(message);
    case 3: throw std::out_of_range(message);
    case 4: throw std::logic_error(message);
    case 5: throw std::range_error(message);
    case 6: throw std::overflow_error(message);
    case 7: throw std::underflow_error(message);
    case 8: throw std::runtime_error(message);
    case 9: throw std::bad_alloc();
    case 10: throw pool_test_types::ParseError(message);
    case 11: throw pool_test_types::UnknownFailure();
    case 12: throw 42;
    default: return kind;
  }
}

// Not inlined, so that it is a frame of its own in the worker's traceback.
[[gnu::noinline]] int pool_errors_function_that_throws(int x) {
  if (x >= 0) throw std::invalid_argument("thrown from a named function");
  return x;
}

void register_parse_error() { mproc::register_exception<pool_test_types::ParseError>(); }

class PoolErrors : public ::testing::TestWithParam<StartMethod> {
 protected:
  void SetUp() override {
    if (mproc_test::fork_pool_unsafe_under_sanitizers(GetParam())) {
      GTEST_SKIP() << "fork-started pool workers under GCC 12's sanitizers (see pool_support.hpp)";
    }
  }
 protected:
  mproc::PoolOptions<> options() const { return {.processes = 2, .start_method = GetParam()}; }

  // Runs throw_kind(kind) and checks that what arrives is exactly
  // RemoteException<E> with the original type name and message.
  template <class E>
  void expect_rebuilt_as(mproc::Pool& pool, int kind, const std::string& type_name) {
    const std::string message = "message of " + type_name;
    try {
      pool.apply(throw_kind, kind, message);
      ADD_FAILURE() << type_name << ": nothing thrown";
    } catch (const E& e) {
      EXPECT_EQ(typeid(e), typeid(mproc::RemoteException<E>)) << type_name << " arrived as a base type";
      EXPECT_EQ(std::string(e.what()), message);
      const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
      ASSERT_NE(remote, nullptr) << type_name;
      EXPECT_EQ(remote->type_name(), type_name);
      EXPECT_EQ(remote->message(), message);
    } catch (const std::exception& e) {
      ADD_FAILURE() << type_name << ": arrived as " << typeid(e).name() << ": " << e.what();
    }
  }
  mproc_test::HangGuard hang_guard_;
};

TEST_P(PoolErrors, StdexceptTypesArriveAsThemselves) {
  mproc::Pool pool(options());
  expect_rebuilt_as<std::invalid_argument>(pool, 0, "std::invalid_argument");
  expect_rebuilt_as<std::domain_error>(pool, 1, "std::domain_error");
  expect_rebuilt_as<std::length_error>(pool, 2, "std::length_error");
  expect_rebuilt_as<std::out_of_range>(pool, 3, "std::out_of_range");
  expect_rebuilt_as<std::logic_error>(pool, 4, "std::logic_error");
  expect_rebuilt_as<std::range_error>(pool, 5, "std::range_error");
  expect_rebuilt_as<std::overflow_error>(pool, 6, "std::overflow_error");
  expect_rebuilt_as<std::underflow_error>(pool, 7, "std::underflow_error");
  expect_rebuilt_as<std::runtime_error>(pool, 8, "std::runtime_error");
}

TEST_P(PoolErrors, BadAllocArrivesAsBadAlloc) {
  mproc::Pool pool(options());
  try {
    pool.apply(throw_kind, 9, std::string());
    ADD_FAILURE() << "nothing thrown";
  } catch (const std::bad_alloc& e) {
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), "std::bad_alloc");
    EXPECT_EQ(std::string(e.what()), std::string(std::bad_alloc().what()));
  }
}

TEST_P(PoolErrors, TracebackNamesTheThrowingFunction) {
  mproc::Pool pool(options());
  try {
    pool.apply(pool_errors_function_that_throws, 1);
    ADD_FAILURE() << "nothing thrown";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "thrown from a named function");
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->message(), "thrown from a named function");
    EXPECT_FALSE(remote->traceback().empty());
    EXPECT_NE(remote->traceback().find("pool_errors_function_that_throws"), std::string::npos)
        << "traceback:\n"
        << remote->traceback();
  }
}

TEST_P(PoolErrors, RemoteErrorsFromMapAndImapCarryTheFacts) {
  mproc::Pool pool(options());
  try {
    pool.map(fail_at_five, std::views::iota(0, 10));
    ADD_FAILURE() << "nothing thrown";
  } catch (const std::out_of_range& e) {
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), "std::out_of_range");
    EXPECT_EQ(remote->message(), "item five failed");
  }
}

TEST_P(PoolErrors, RegisteredTypeArrivesAsItselfWhenEveryProcessRegistersIt) {
  // register_exception's contract: every process that may throw or catch
  // the type registers it. The test binary's main() does not, so the
  // workers do it in their initializer.
  mproc::register_exception<pool_test_types::ParseError>();
  mproc::Pool pool(mproc::PoolOptions{.processes = 2, .initializer = register_parse_error, .start_method = GetParam()});
  expect_rebuilt_as<pool_test_types::ParseError>(pool, 10, "pool_test_types::ParseError");
}

TEST_P(PoolErrors, RegisteredOnlyInTheParent) {
  // Registered here, before the pool starts, but not in the workers'
  // main(). Under fork a worker inherits the registration, and the type
  // arrives as itself. Under spawn and forkserver the worker does not know
  // the type: today it arrives as the nearest standard base the worker
  // knows (std::runtime_error), still naming the exact type. (The parent,
  // which knows the type by that name, could rebuild it as itself; see the
  // report on src/errors.cpp. This test holds either way.)
  mproc::register_exception<pool_test_types::ParseError>();
  mproc::Pool pool(options());
  if (GetParam() == StartMethod::fork) {
    expect_rebuilt_as<pool_test_types::ParseError>(pool, 10, "pool_test_types::ParseError");
    return;
  }
  try {
    pool.apply(throw_kind, 10, std::string("bad token"));
    ADD_FAILURE() << "nothing thrown";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "bad token");
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), "pool_test_types::ParseError");
    EXPECT_EQ(remote->message(), "bad token");
  }
}

TEST_P(PoolErrors, UnknownTypeArrivesAsRuntimeErrorWithItsName) {
  mproc::Pool pool(options());
  try {
    pool.apply(throw_kind, 11, std::string());
    ADD_FAILURE() << "nothing thrown";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(typeid(e), typeid(mproc::RemoteException<std::runtime_error>));
    EXPECT_STREQ(e.what(), "an unknown failure");
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), "pool_test_types::UnknownFailure");
  }
  try {
    pool.apply(throw_kind, 12, std::string());
    ADD_FAILURE() << "nothing thrown";
  } catch (const std::runtime_error& e) {
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), "int");
  }
}

TEST_P(PoolErrors, ExceptionInACallbackGoesToOnCallbackErrorAndTheCallbackThreadSurvives) {
  std::mutex mu;
  std::vector<std::string> reported;
  auto o = options();
  o.on_callback_error = [&](std::exception_ptr e) {
    std::lock_guard lock(mu);
    try {
      std::rethrow_exception(e);
    } catch (const std::logic_error& x) {
      reported.push_back(std::string("logic_error: ") + x.what());
    } catch (...) {
      reported.push_back("other");
    }
  };
  mproc::Pool pool(o);
  auto r = pool.apply_async(square, mproc::args(3),
                            mproc::on_result([](int) { throw std::logic_error("callback failed"); }));
  EXPECT_EQ(r.get(kGuard), 9) << "the task's result is unaffected by its callback's exception";
  EXPECT_TRUE(r.successful());
  std::atomic<bool> later{false};
  auto r2 = pool.apply_async(square, mproc::args(4), mproc::on_result([&](int) { later = true; }));
  EXPECT_EQ(r2.get(kGuard), 16);
  EXPECT_TRUE(later.load()) << "a later callback still ran";
  auto r3 = pool.map_async(square, std::vector{1, 2}, mproc::on_result([](const std::vector<int>&) {
                             throw std::logic_error("map callback failed");
                           }));
  EXPECT_EQ(r3.get(kGuard), (std::vector{1, 4}));
  auto r4 = pool.apply_async(square, mproc::args(5), mproc::on_result([](int) {}));
  EXPECT_EQ(r4.get(kGuard), 25);
  // r4's callback ran after the reports of the earlier ones (one thread).
  std::lock_guard lock(mu);
  EXPECT_EQ(reported, (std::vector<std::string>{"logic_error: callback failed", "logic_error: map callback failed"}));
}

TEST_P(PoolErrors, ExceptionInACallbackWithoutAHandlerIsPrinted) {
  mproc_test::StderrCapture capture;
  {
    mproc::Pool pool(options());
    auto r = pool.apply_async(square, mproc::args(3),
                              mproc::on_result([](int) { throw std::logic_error("unhandled in callback"); }));
    EXPECT_EQ(r.get(kGuard), 9);
    auto r2 = pool.apply_async(square, mproc::args(4), mproc::on_result([](int) {}));
    EXPECT_EQ(r2.get(kGuard), 16);
  }
  EXPECT_NE(capture.text().find("unhandled in callback"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(StartMethod, PoolErrors, mproc_test::all_start_methods(), mproc_test::start_method_name);

// How a map cuts its input (pool_jobs.hpp, ChunkPlan): an automatic
// chunksize stops at 256 KiB of encoded items; an explicit one is exact.
template <class Item, class Range>
std::vector<std::uint32_t> chunk_sizes(Range& input, mproc::detail::ChunkPlan plan) {
  using F = std::size_t (*)(const Item&);
  F f = [](const Item&) -> std::size_t { return 0; };
  using View = std::views::all_t<Range&>;
  mproc::detail::MapJob<F, Item, false, std::size_t, View> job(f, std::views::all(input), plan, {});
  std::vector<std::uint32_t> sizes;
  mproc::detail::ChunkWriter cw;
  while (job.next_chunk(cw)) sizes.push_back(cw.finish());
  return sizes;
}

TEST(PoolChunks, AutomaticChunksHoldAtMost256KiBOfItems) {
  std::vector<int> ints(1000000);
  // Python's automatic size for 10^6 items on 2 workers is 125,000; 256 KiB
  // of ints is 65,536.
  const auto plain = chunk_sizes<int>(ints, {125000, 256 << 10});
  ASSERT_EQ(plain.size(), 16u);
  for (std::size_t i = 0; i + 1 < plain.size(); ++i) EXPECT_EQ(plain[i], 65536u);
  EXPECT_EQ(plain.back(), 1000000u - 15 * 65536u);
  EXPECT_EQ(chunk_sizes<int>(ints, {125000, 0}), std::vector<std::uint32_t>(8, 125000u));

  // Items of 100 KiB: three per chunk (the chunk ends once it holds 256 KiB
  // or more), never fewer than one, even for items bigger than the limit.
  std::vector<std::string> blobs(10, std::string(100 << 10, 'x'));
  EXPECT_EQ(chunk_sizes<std::string>(blobs, {5, 256 << 10}), (std::vector<std::uint32_t>{3, 3, 3, 1}));
  EXPECT_EQ(chunk_sizes<std::string>(blobs, {5, 0}), (std::vector<std::uint32_t>{5, 5}));
  std::vector<std::string> huge(3, std::string(1 << 20, 'y'));
  EXPECT_EQ(chunk_sizes<std::string>(huge, {2, 256 << 10}), (std::vector<std::uint32_t>{1, 1, 1}));
}

}  // namespace
