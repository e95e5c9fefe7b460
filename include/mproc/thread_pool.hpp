// thread_pool.hpp: mproc::ThreadPool, the Pool API on threads (Python's
// multiprocessing.pool.ThreadPool).
//
//   mproc::ThreadPool tp(4);
//   auto v = tp.map([&](int x) { return lookup(x); }, keys);  // any callable
//
// Same methods and semantics as mproc::Pool (map, starmap, apply,
// apply_async, map_async, starmap_async, imap, imap_unordered, callbacks,
// chunksize, close/join/terminate, PoolClosedError), except what threads
// cannot do:
//  - callables and values are not serialized, so anything callable works
//    (captures by reference included) and exceptions arrive as themselves;
//  - a thread cannot be killed: PoolOptions::task_timeout is refused at
//    construction (use mproc::Pool), terminate() drops queued tasks (their
//    results fail with PoolClosedError) and waits for running ones;
//  - maxtasksperchild is accepted and ignored (threads do not leak).
// The initializer runs once in each worker thread before its first task; if
// it throws, the pool is broken as a process Pool is: every task fails with
// that exception, and later calls throw it.
// An imap's results can be read after close(), and join() reads the rest of
// every imap's input first (past its window), as Python's pool has taken
// all of it by then: the results wait for the reader.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <thread>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include "mproc/async_result.hpp"
#include "mproc/detail/pool_core.hpp"
#include "mproc/detail/pool_jobs.hpp"
#include "mproc/errors.hpp"
#include "mproc/pool.hpp"

namespace mproc {

namespace detail {

// An imap's input as the executor sees it: while one is open, a closed
// pool's threads stay for the chunks its reader's progress lets in.
class ImapSource {
 public:
  virtual ~ImapSource() = default;
  // join(): take the rest of the input now, past the window.
  virtual void drain() = 0;
  // The executor ends: take no more input, and never call it again.
  virtual void detach() = 0;
};

// The threads of a ThreadPool, plus its callback thread.
class ThreadExecutor final : public CallbackSink {
 public:
  struct Task {
    std::function<void()> run;
    std::function<void(std::exception_ptr)> cancel;  // when terminate() drops it
  };

  ThreadExecutor(std::size_t threads, std::function<void()> initializer,
                 std::function<void(std::exception_ptr)> on_callback_error);
  ~ThreadExecutor() override;

  void submit(Task task);
  // As submit, but accepted after close() too (work of an accepted job).
  void submit_internal(Task task);
  void post_callback(std::function<void()> fn) override;
  void close();
  void terminate();
  void join();
  std::size_t threads() const noexcept { return n_; }
  bool accepting();
  // An imap whose input may still produce chunks; it calls source_done()
  // once it will not (its input ended, or its reader let go).
  void add_source(std::shared_ptr<ImapSource> source);
  void source_done(const ImapSource* source);

 private:
  void worker() noexcept;

  std::size_t n_;
  std::function<void()> initializer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  enum class State { run, close, terminate } state_ = State::run;
  std::size_t busy_ = 0;
  std::vector<std::thread> workers_;
  CallbackThread callbacks_;
  std::mutex join_mu_;
  bool joined_ = false;
  std::exception_ptr init_error_;  // the first initializer's failure
  std::vector<std::shared_ptr<ImapSource>> sources_;
};

// imap on threads: runners pull chunks of the input under the job's lock
// while fewer than `window` items wait for the consumer.
template <class F, class Item, bool Unpack, class R, class View, bool Ordered>
class ThreadIMap final : public IMapChannel<value_t<R>>,
                         public ImapSource,
                         public std::enable_shared_from_this<ThreadIMap<F, Item, Unpack, R, View, Ordered>> {
 public:
  using V = value_t<R>;
  ThreadIMap(F f, View view, std::size_t chunksize, std::size_t window, ThreadExecutor* ex)
      : f_(std::move(f)), view_(std::move(view)), it_(std::ranges::begin(view_)),
        chunksize_(std::max<std::size_t>(chunksize, 1)), window_(std::max(window, chunksize_)), ex_(ex) {}

  void pump() {
    std::unique_lock lock(mu_);
    // Whole chunks only (but the input's last), as the process Pool.
    while (ex_ != nullptr && !done_input_ && !cancelled_ && runners_ < ex_->threads() &&
           pulled_ - consumed_ + chunksize_ <= window_) {
      std::vector<std::pair<std::size_t, Item>> batch;
      const std::size_t first = pulled_;
      try {
        for (std::size_t n = 0; n < chunksize_; ++n) {
          if (it_ == std::ranges::end(view_)) break;
          batch.emplace_back(pulled_, make(*it_));
          ++pulled_;
          ++it_;
        }
        if (it_ == std::ranges::end(view_)) done_input_ = true;
      } catch (...) {
        // The input threw: as in Python (and the process Pool), the chunk
        // being pulled is dropped and the error takes its place, after the
        // results of the chunks before it; then the end.
        done_input_ = true;
        batch.clear();
        pulled_ = first + 1;
        outcomes_.emplace(first, std::current_exception());
      }
      if (batch.empty()) break;
      ++runners_;
      auto self = this->shared_from_this();
      auto shared_batch = std::make_shared<decltype(batch)>(std::move(batch));
      ThreadExecutor::Task t{[self, shared_batch] { self->run(*shared_batch); },
                             [self, shared_batch](std::exception_ptr e) { self->drop(*shared_batch, e); }};
      call_executor(lock, [&t](ThreadExecutor* ex) { ex->submit_internal(std::move(t)); });
    }
    release_if_done(lock);
    cv_.notify_all();
  }

  void drain() override {
    {
      std::lock_guard lock(mu_);
      window_ = std::numeric_limits<std::size_t>::max();
    }
    pump();
  }
  void detach() override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return calling_ == 0; });
    ex_ = nullptr;
    done_input_ = true;
    released_ = true;
    cv_.notify_all();
  }

  std::optional<V> next(Deadline deadline = std::nullopt) override {
    std::unique_lock lock(mu_);
    for (;;) {
      auto it = Ordered ? outcomes_.find(next_) : outcomes_.begin();
      if (it != outcomes_.end()) {
        auto o = std::move(it->second);
        outcomes_.erase(it);
        ++consumed_;
        ++next_;
        lock.unlock();
        pump();
        if (auto* e = std::get_if<std::exception_ptr>(&o)) std::rethrow_exception(*e);
        return std::move(std::get<V>(o));
      }
      if (consumed_ == pulled_ && (done_input_ || cancelled_) && runners_ == 0) return std::nullopt;
      if (!deadline) {
        cv_.wait(lock);
      } else if (cv_.wait_until(lock, *deadline) == std::cv_status::timeout) {
        throw TimeoutError("mproc::ThreadPool::imap: no result within the timeout");
      }
    }
  }
  void cancel() override {
    std::unique_lock lock(mu_);
    cancelled_ = true;
    release_if_done(lock);
  }

 private:
  template <class E>
  Item make(E&& e) {
    if constexpr (std::is_same_v<std::decay_t<E>, Item>) {
      return Item(std::forward<E>(e));
    } else if constexpr (Unpack) {
      return std::apply([](auto&&... a) { return Item(a...); }, e);
    } else {
      return Item(std::forward<E>(e));
    }
  }
  void run(std::vector<std::pair<std::size_t, Item>>& batch) {
    for (auto& [index, item] : batch) {
      std::variant<V, std::exception_ptr> o;
      try {
        if constexpr (std::is_void_v<R>) {
          call_item<F, Item, Unpack>(f_, item);
          o = V{};
        } else {
          o = V(call_item<F, Item, Unpack>(f_, item));
        }
      } catch (...) {
        o = std::current_exception();
      }
      std::lock_guard lock(mu_);
      if (!cancelled_) outcomes_.emplace(index, std::move(o));
      else ++consumed_;
      cv_.notify_all();
    }
    {
      std::lock_guard lock(mu_);
      --runners_;
      cv_.notify_all();
    }
    pump();
  }
  void drop(std::vector<std::pair<std::size_t, Item>>& batch, std::exception_ptr e) {
    // (Called under the executor's lock when terminate() refuses a chunk:
    // no call back into the executor from here.)
    std::lock_guard lock(mu_);
    for (auto& entry : batch) outcomes_.emplace(entry.first, e);
    done_input_ = true;
    --runners_;
    cv_.notify_all();
  }
  // Calls fn(executor) without this job's lock, while detach() waits.
  template <class Fn>
  void call_executor(std::unique_lock<std::mutex>& lock, Fn&& fn) {
    ThreadExecutor* ex = ex_;
    ++calling_;
    lock.unlock();
    fn(ex);
    lock.lock();
    --calling_;
    cv_.notify_all();
  }
  // Tells the executor, once, that this input will produce no more chunks.
  void release_if_done(std::unique_lock<std::mutex>& lock) {
    if (released_ || ex_ == nullptr || !(done_input_ || cancelled_)) return;
    released_ = true;
    call_executor(lock, [this](ThreadExecutor* ex) { ex->source_done(this); });
  }

  F f_;
  View view_;
  std::ranges::iterator_t<View> it_;
  std::size_t chunksize_, window_;
  ThreadExecutor* ex_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::size_t, std::variant<V, std::exception_ptr>> outcomes_;
  std::size_t pulled_ = 0, consumed_ = 0, next_ = 0, runners_ = 0;
  bool done_input_ = false, cancelled_ = false;
  bool released_ = false;  // source_done() called (or detached)
  int calling_ = 0;        // calls into the executor under way
};

}  // namespace detail

class ThreadPool {
 public:
  ThreadPool() : ThreadPool(PoolOptions<>{}) {}
  explicit ThreadPool(std::size_t threads) {
    detail::check_pool_size(threads, "mproc::ThreadPool");
    ex_ = std::make_unique<detail::ThreadExecutor>(threads, nullptr, nullptr);
  }
  template <class Init, class InitArgs>
  explicit ThreadPool(const PoolOptions<Init, InitArgs>& o) {
    if (o.task_timeout) {
      throw Error("mproc::ThreadPool: task_timeout needs killable workers; use mproc::Pool");
    }
    detail::check_maxtasksperchild(o.maxtasksperchild, "mproc::ThreadPool");
    std::function<void()> init;
    if constexpr (!std::is_same_v<Init, NoInitializer>) {
      init = [f = o.initializer, a = o.initargs]() mutable { std::apply(f, a); };
    }
    ex_ = std::make_unique<detail::ThreadExecutor>(o.processes == 0 ? cpu_count() : o.processes, std::move(init),
                                                   o.on_callback_error);
  }
  ThreadPool(ThreadPool&&) noexcept = default;
  ThreadPool& operator=(ThreadPool&&) noexcept = default;
  ~ThreadPool() = default;

  std::size_t processes() const noexcept { return ex_->threads(); }

  template <class F, class... A>
  auto apply(F&& f, A&&... a) {
    return apply_async(std::forward<F>(f), std::forward<A>(a)...).get();
  }

  template <class F, class... A>
  [[nodiscard]] auto apply_async(F&& f, A&&... a) {
    if constexpr (detail::is_args<typename detail::first_or_void<A...>::type>::value) {
      auto all = std::forward_as_tuple(std::forward<A>(a)...);
      return std::apply(
          [&](auto&& packed, auto&&... cbs) {
            return std::apply(
                [&](auto&&... xs) {
                  using Item = std::tuple<std::decay_t<decltype(xs)>...>;
                  using R = detail::apply_result_t<std::decay_t<F>, Item>;
                  return submit_apply(std::forward<F>(f), Item(std::forward<decltype(xs)>(xs)...),
                                      callbacks<detail::value_t<R>>(cbs...));
                },
                std::move(packed.values));
          },
          std::move(all));
    } else {
      using Item = std::tuple<std::decay_t<A>...>;
      using R = detail::apply_result_t<std::decay_t<F>, Item>;
      return submit_apply(std::forward<F>(f), Item(std::forward<A>(a)...), detail::Callbacks<detail::value_t<R>>{});
    }
  }

  template <class F, std::ranges::input_range Range>
  auto map(F&& f, Range&& range, std::size_t chunksize = 0) {
    auto r = map_async_impl<false>(std::forward<F>(f), std::forward<Range>(range), chunksize, nullptr);
    return r.get();
  }
  template <class F, std::ranges::input_range Range>
  auto starmap(F&& f, Range&& range, std::size_t chunksize = 0) {
    auto r = map_async_impl<true>(std::forward<F>(f), std::forward<Range>(range), chunksize, nullptr);
    return r.get();
  }
  template <class F, std::ranges::input_range Range, callback_arg... Cb>
  [[nodiscard]] auto map_async(F&& f, Range&& range, Cb&&... cbs) {
    return map_async_impl<false>(std::forward<F>(f), std::forward<Range>(range), 0, nullptr, std::forward<Cb>(cbs)...);
  }
  template <class F, std::ranges::input_range Range, callback_arg... Cb>
  [[nodiscard]] auto map_async(F&& f, Range&& range, std::size_t chunksize, Cb&&... cbs) {
    return map_async_impl<false>(std::forward<F>(f), std::forward<Range>(range), chunksize, nullptr,
                                 std::forward<Cb>(cbs)...);
  }
  template <class F, std::ranges::input_range Range, callback_arg... Cb>
  [[nodiscard]] auto starmap_async(F&& f, Range&& range, Cb&&... cbs) {
    return map_async_impl<true>(std::forward<F>(f), std::forward<Range>(range), 0, nullptr, std::forward<Cb>(cbs)...);
  }
  template <class F, std::ranges::input_range Range, callback_arg... Cb>
  [[nodiscard]] auto starmap_async(F&& f, Range&& range, std::size_t chunksize, Cb&&... cbs) {
    return map_async_impl<true>(std::forward<F>(f), std::forward<Range>(range), chunksize, nullptr,
                                std::forward<Cb>(cbs)...);
  }

  template <class F, std::ranges::input_range Range>
  [[nodiscard]] auto imap(F&& f, Range&& range, std::size_t chunksize = 1) {
    return imap_impl<true>(std::forward<F>(f), std::forward<Range>(range), chunksize);
  }
  template <class F, std::ranges::input_range Range>
  [[nodiscard]] auto imap_unordered(F&& f, Range&& range, std::size_t chunksize = 1) {
    return imap_impl<false>(std::forward<F>(f), std::forward<Range>(range), chunksize);
  }

  void close() { ex_->close(); }
  void terminate() { ex_->terminate(); }
  void join() { ex_->join(); }

 private:
  template <class V, class... Cb>
  static detail::Callbacks<V> callbacks(Cb&&... cbs) {
    return detail::make_callbacks<V>(std::forward<Cb>(cbs)...);
  }

  template <class F, class Item, class V>
  auto submit_apply(F&& f, Item item, detail::Callbacks<V> cbs) {
    using Fn = std::decay_t<F>;
    using R = detail::apply_result_t<Fn, Item>;
    auto state = std::make_shared<detail::ResultState<R>>();
    auto fn = std::make_shared<std::pair<Fn, Item>>(std::forward<F>(f), std::move(item));
    auto shared_cbs = std::make_shared<detail::Callbacks<V>>(std::move(cbs));
    detail::ThreadExecutor* ex = ex_.get();
    ex_->submit({[state, fn, shared_cbs, ex] {
                   std::optional<V> value;
                   std::exception_ptr error;
                   try {
                     if constexpr (std::is_void_v<R>) {
                       detail::call_item<Fn, Item, true>(fn->first, fn->second);
                       value.emplace();
                     } else {
                       value.emplace(detail::call_item<Fn, Item, true>(fn->first, fn->second));
                     }
                   } catch (...) {
                     error = std::current_exception();
                   }
                   detail::publish<R, V>(*ex, state, std::move(*shared_cbs), std::move(value), error);
                 },
                 [state](std::exception_ptr e) { state->set_error(e); }});
    return AsyncResult<R>(std::move(state));
  }

  template <bool Unpack, class F, class Range, class... Cb>
  auto map_async_impl(F&& f, Range&& range, std::size_t chunksize, std::nullptr_t, Cb&&... cbs) {
    using Fn = std::decay_t<F>;
    using E = std::ranges::range_reference_t<Range>;
    using Item = std::conditional_t<Unpack, std::decay_t<E>, std::decay_t<E>>;
    using R = typename detail::item_result<Fn, Item, Unpack>::type;
    using V = detail::value_t<R>;
    using Out = std::conditional_t<std::is_void_v<R>, void, std::vector<V>>;
    using OutValue = detail::value_t<Out>;
    if (!accepting()) throw PoolClosedError("mproc::ThreadPool: the pool is closed; no more tasks can be submitted");
    // Threads share memory, but not the caller's range after the call
    // returns: the input is copied, as Python's map_async lists it.
    auto items = std::make_shared<std::vector<Item>>();
    for (auto&& e : range) items->push_back(Item(e));
    const std::size_t n = items->size();
    if (chunksize == 0) {
      const std::size_t per = 4 * processes();
      chunksize = std::max<std::size_t>(n / per + (n % per ? 1 : 0), 1);
    }
    struct Shared {
      std::mutex mu;
      std::vector<std::optional<V>> results;
      std::size_t remaining_chunks = 0;
      std::size_t error_index = SIZE_MAX;
      std::exception_ptr error;
    };
    auto shared = std::make_shared<Shared>();
    if constexpr (!std::is_void_v<R>) shared->results.resize(n);
    auto state = std::make_shared<detail::ResultState<Out>>();
    auto fn = std::make_shared<Fn>(std::forward<F>(f));
    auto cb = std::make_shared<detail::Callbacks<OutValue>>(callbacks<OutValue>(std::forward<Cb>(cbs)...));
    detail::ThreadExecutor* ex = ex_.get();
    auto finish = [shared, state, cb, ex] {
      std::optional<OutValue> out;
      if (!shared->error) {
        out.emplace();
        if constexpr (!std::is_void_v<R>) {
          out->reserve(shared->results.size());
          for (auto& r : shared->results) out->push_back(std::move(*r));
        }
      }
      detail::publish<Out, OutValue>(*ex, state, std::move(*cb), std::move(out), shared->error);
    };
    if (n == 0) {
      finish();
      return AsyncResult<Out>(std::move(state));
    }
    shared->remaining_chunks = (n + chunksize - 1) / chunksize;
    for (std::size_t first = 0; first < n; first += chunksize) {
      const std::size_t last = std::min(n, first + chunksize);
      auto settle = [shared, finish](std::size_t index, std::exception_ptr e, bool chunk_end) {
        std::lock_guard lock(shared->mu);
        if (e && index < shared->error_index) {
          shared->error_index = index;
          shared->error = e;
        }
        if (chunk_end && --shared->remaining_chunks == 0) finish();
      };
      ex_->submit({[items, fn, shared, first, last, settle] {
                     for (std::size_t i = first; i < last; ++i) {
                       std::exception_ptr e;
                       try {
                         if constexpr (std::is_void_v<R>) {
                           detail::call_item<Fn, Item, Unpack>(*fn, (*items)[i]);
                         } else {
                           auto v = detail::call_item<Fn, Item, Unpack>(*fn, (*items)[i]);
                           std::lock_guard lock(shared->mu);
                           shared->results[i].emplace(std::move(v));
                         }
                       } catch (...) {
                         e = std::current_exception();
                       }
                       settle(i, e, i + 1 == last);
                     }
                   },
                   [settle, first, last](std::exception_ptr e) {
                     for (std::size_t i = first; i < last; ++i) settle(i, e, i + 1 == last);
                   }});
    }
    return AsyncResult<Out>(std::move(state));
  }

  template <bool Ordered, class F, class Range>
  auto imap_impl(F&& f, Range&& range, std::size_t chunksize) {
    using Fn = std::decay_t<F>;
    using Item = std::decay_t<std::ranges::range_reference_t<Range>>;
    using R = typename detail::item_result<Fn, Item, false>::type;
    using View = std::views::all_t<Range>;
    using Job = detail::ThreadIMap<Fn, Item, false, R, View, Ordered>;
    if (!accepting()) throw PoolClosedError("mproc::ThreadPool: the pool is closed; no more tasks can be submitted");
    chunksize = detail::checked_imap_chunksize(chunksize, Ordered ? "mproc::ThreadPool::imap" : "mproc::ThreadPool::imap_unordered");
    auto job = std::make_shared<Job>(Fn(std::forward<F>(f)), std::views::all(std::forward<Range>(range)), chunksize,
                                     imap_window(processes(), chunksize), ex_.get());
    ex_->add_source(job);
    job->pump();
    return IMapRange<detail::value_t<R>>(std::move(job));
  }

  bool accepting() { return ex_->accepting(); }

  std::unique_ptr<detail::ThreadExecutor> ex_;
};

}  // namespace mproc
