// async_result.hpp: the future-like object the pools' _async calls return.
//
//   mproc::AsyncResult<int> r = pool.apply_async(cube, 2, 3);
//   ... do other work ...
//   int v = r.get();                                   // 8, or rethrows
//   if (r.wait(std::chrono::milliseconds(10))) ...     // bounded wait
//
// get() may be called any number of times: the same value (a copy), or the
// same exception, every time. get(timeout) throws mproc::TimeoutError when
// the result is not ready in time (the task goes on). successful() throws
// mproc::Error if the result is not ready yet, as in Python.
//
// Callbacks given to the _async call (on_result / on_error) run on the
// pool's callback thread before the result becomes ready, so that after
// get() returns the callback has run.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "mproc/detail/futex.hpp"
#include "mproc/detail/spin.hpp"
#include "mproc/errors.hpp"

namespace mproc {

namespace detail {

// The shared state behind an AsyncResult: set once by the pool.
template <class R>
class ResultState {
 public:
  using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

  void set_value(Value v) {
    {
      std::lock_guard lock(mu_);
      value_.emplace(std::move(v));
      ready_ = true;
    }
    ready_flag_.store(true, std::memory_order_release);
    cv_.notify_all();
  }
  void set_error(std::exception_ptr e) {
    {
      std::lock_guard lock(mu_);
      error_ = std::move(e);
      ready_ = true;
    }
    ready_flag_.store(true, std::memory_order_release);
    cv_.notify_all();
  }

  bool ready() const {
    std::lock_guard lock(mu_);
    return ready_;
  }
  void wait() const {
    // A result that comes within microseconds (a quick task while the pool
    // is busy) is caught spinning: a blocking wake-up costs more here.
    if (spin_until_ready()) return;
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return ready_; });
    spin().woke();
  }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    if (timeout > std::chrono::duration<Rep, Period>::zero() && spin_until_ready()) return true;
    std::unique_lock lock(mu_);
    // Through a deadline: duration::max() (any period) means for ever, not
    // an overflow into the past.
    const Deadline deadline = deadline_after(timeout);
    const auto ready_now = [this] { return ready_; };
    const bool ready = deadline ? cv_.wait_until(lock, *deadline, ready_now) : (cv_.wait(lock, ready_now), true);
    spin().woke();
    return ready;
  }
  bool successful() const {
    std::lock_guard lock(mu_);
    if (!ready_) throw Error("mproc::AsyncResult::successful: result is not ready");
    return !error_;
  }
  // Precondition: ready.
  R get_ready() const {
    std::lock_guard lock(mu_);
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<R>) return *value_;
  }
  // Precondition: ready. Moves the value out (for the blocking calls, which
  // are its only reader); rethrows the error.
  R take() {
    std::lock_guard lock(mu_);
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<R>) return std::move(*value_);
  }
  std::exception_ptr error() const {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  static AdaptiveSpin& spin() {
    thread_local AdaptiveSpin s;
    return s;
  }
  bool spin_until_ready() const {
    return spin().until([this] { return ready_flag_.load(std::memory_order_acquire); });
  }

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::atomic<bool> ready_flag_{false};  // ready_, for spinning without the lock
  std::optional<Value> value_;
  std::exception_ptr error_;
  bool ready_ = false;
};

}  // namespace detail

template <class R>
class [[nodiscard]] AsyncResult {
 public:
  AsyncResult() = default;
  explicit AsyncResult(std::shared_ptr<detail::ResultState<R>> state) : state_(std::move(state)) {}

  // Waits for the result and returns it (a copy), or rethrows the task's
  // exception (see errors.hpp for how remote exceptions are rebuilt).
  R get() const {
    detail::ResultState<R>& s = state();
    s.wait();
    return s.get_ready();
  }
  // As get(), but throws mproc::TimeoutError if not ready within `timeout`.
  template <class Rep, class Period>
  R get(std::chrono::duration<Rep, Period> timeout) const {
    detail::ResultState<R>& s = state();
    if (!s.wait_for(timeout)) {
      throw TimeoutError("mproc::AsyncResult::get: result not ready after " +
                         std::to_string(std::chrono::duration<double>(timeout).count()) + " s");
    }
    return s.get_ready();
  }
  void wait() const { state().wait(); }
  // True if ready within `timeout`.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const { return state().wait_for(timeout); }
  bool ready() const { return state().ready(); }
  // True if the task returned normally. Throws mproc::Error if not ready.
  bool successful() const { return state().successful(); }
  bool valid() const noexcept { return static_cast<bool>(state_); }

 private:
  detail::ResultState<R>& state() const {
    if (!state_) throw Error("mproc::AsyncResult: empty (default-constructed) result");
    return *state_;
  }
  std::shared_ptr<detail::ResultState<R>> state_;
};

// Trailing arguments of the _async calls.
template <class F>
struct OnResult {
  F fn;
};
template <class F>
struct OnError {
  F fn;
};
// Called in the parent with the task's result (for map_async: the whole
// vector), on the pool's callback thread.
template <class F>
OnResult<std::decay_t<F>> on_result(F&& f) {
  return {std::forward<F>(f)};
}
// Called in the parent with the task's error as a std::exception_ptr, on the
// pool's callback thread.
template <class F>
OnError<std::decay_t<F>> on_error(F&& f) {
  return {std::forward<F>(f)};
}

namespace detail {
template <class T>
struct is_callback : std::false_type {};
template <class F>
struct is_callback<OnResult<F>> : std::true_type {};
template <class F>
struct is_callback<OnError<F>> : std::true_type {};
}  // namespace detail

// What may trail an _async call: mproc::on_result(...) / mproc::on_error(...).
template <class T>
concept callback_arg = detail::is_callback<std::decay_t<T>>::value;

// apply_async's arguments when callbacks follow:
//   pool.apply_async(f, mproc::args(2, 3), mproc::on_result(cb));
template <class... A>
struct Args {
  std::tuple<A...> values;
};
template <class... A>
Args<std::decay_t<A>...> args(A&&... a) {
  return {std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
}

}  // namespace mproc
