// test_async_result.cpp: mproc::AsyncResult (async_result.hpp) on its own.
//
// The pools' tests check AsyncResult as the pools fill it; here the result
// state is filled by the test itself (detail::ResultState, what a pool
// holds), from another thread where it matters, so each promise of the
// header is checked without a pool in the way: get() again gives the same
// value or exception, get(timeout) throws TimeoutError while not ready,
// wait/ready/successful, void results, copies share and moves transfer,
// and an empty (default-constructed) result throws mproc::Error instead of
// crashing. Every wait is bounded.

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/test_support.hpp"
#include "mproc/async_result.hpp"
#include "mproc/errors.hpp"

namespace {

using mproc_test::kGuard;
using namespace std::chrono_literals;

template <class R>
std::pair<mproc::AsyncResult<R>, std::shared_ptr<mproc::detail::ResultState<R>>> make_result() {
  auto state = std::make_shared<mproc::detail::ResultState<R>>();
  return {mproc::AsyncResult<R>(state), state};
}

TEST(AsyncResult, DefaultConstructedIsEmptyAndThrowsError) {
  mproc::AsyncResult<int> r;
  EXPECT_FALSE(r.valid());
  EXPECT_THROW((void)r.get(), mproc::Error);
  EXPECT_THROW((void)r.get(1ms), mproc::Error);
  EXPECT_THROW(r.wait(), mproc::Error);
  EXPECT_THROW((void)r.wait(1ms), mproc::Error);
  EXPECT_THROW((void)r.ready(), mproc::Error);
  EXPECT_THROW((void)r.successful(), mproc::Error);
}

TEST(AsyncResult, NotReadyUntilSetThenTheValueEveryTime) {
  auto [r, state] = make_result<std::string>();
  EXPECT_TRUE(r.valid());
  EXPECT_FALSE(r.ready());
  EXPECT_FALSE(r.wait(1ms));
  EXPECT_THROW((void)r.get(1ms), mproc::TimeoutError);
  EXPECT_THROW((void)r.successful(), mproc::Error);
  std::thread setter([s = state] { s->set_value("forty-two"); });
  EXPECT_EQ(r.get(kGuard), "forty-two");
  setter.join();
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_TRUE(r.wait(0ms));
  r.wait();
  EXPECT_EQ(r.get(), "forty-two");
  EXPECT_EQ(r.get(), "forty-two") << "get() gives a copy; the value stays";
}

TEST(AsyncResult, GetRethrowsTheSameExceptionEveryTime) {
  auto [r, state] = make_result<int>();
  state->set_error(std::make_exception_ptr(std::out_of_range("gone")));
  EXPECT_TRUE(r.ready());
  EXPECT_FALSE(r.successful());
  const std::exception* first = nullptr;
  for (int i = 0; i < 3; ++i) {
    try {
      (void)r.get();
      ADD_FAILURE() << "nothing thrown";
    } catch (const std::out_of_range& e) {
      EXPECT_STREQ(e.what(), "gone");
      if (first == nullptr) first = &e;
      EXPECT_EQ(&e, first) << "the same exception object each time";
    }
  }
  EXPECT_THROW((void)r.get(1ms), std::out_of_range);
}

TEST(AsyncResult, VoidResult) {
  auto [r, state] = make_result<void>();
  EXPECT_THROW(r.get(1ms), mproc::TimeoutError);
  state->set_value({});
  r.get();
  r.get(1ms);
  EXPECT_TRUE(r.successful());
  static_assert(std::is_void_v<decltype(r.get())>);

  auto [bad, bad_state] = make_result<void>();
  bad_state->set_error(std::make_exception_ptr(std::runtime_error("void failed")));
  EXPECT_THROW(bad.get(), std::runtime_error);
  EXPECT_FALSE(bad.successful());
}

TEST(AsyncResult, CopiesShareTheResultAndMovesTransferIt) {
  auto [r, state] = make_result<int>();
  mproc::AsyncResult<int> copy = r;
  mproc::AsyncResult<int> moved = std::move(copy);
  EXPECT_FALSE(copy.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty, documented by valid()
  EXPECT_TRUE(moved.valid());
  state->set_value(5);
  EXPECT_EQ(r.get(), 5);
  EXPECT_EQ(moved.get(), 5);
  std::vector<mproc::AsyncResult<int>> many;
  many.push_back(std::move(moved));
  EXPECT_EQ(many[0].get(), 5);
}

TEST(AsyncResult, ManyWaitersAllWakeWithTheValue) {
  auto [r, state] = make_result<int>();
  std::atomic<int> sum{0}, timeouts{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&, r = r] {
      try {
        sum += r.get(kGuard);
      } catch (const mproc::TimeoutError&) {
        ++timeouts;
      }
    });
  }
  state->set_value(10);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(timeouts.load(), 0);
  EXPECT_EQ(sum.load(), 40);
}

TEST(AsyncResult, WaitWithTimeoutReturnsOnceReady) {
  auto [r, state] = make_result<int>();
  std::atomic<bool> waiting{false};
  std::thread setter([&, s = state] {
    // Set only once the main thread is (about to be) waiting: the wait
    // must return true because the value arrived, whatever the timing.
    while (!waiting.load()) std::this_thread::yield();
    s->set_value(1);
  });
  waiting = true;
  EXPECT_TRUE(r.wait(kGuard));
  setter.join();
  EXPECT_EQ(r.get(0ms), 1);
}

}  // namespace
