// pool.hpp: mproc::Pool, a pool of worker processes (Python's
// multiprocessing.Pool), crash-proof, with per-task timeouts and lazy imap.
//
//   int square(int x) { return x * x; }
//
//   mproc::Pool pool(4);
//   std::vector<int> sq = pool.map(square, std::vector{1, 2, 3, 4, 5});   // {1,4,9,16,25}
//   auto r = pool.apply_async(cube, mproc::args(2, 3), mproc::on_result(print_it));
//   for (int v : pool.imap(square, std::views::iota(0))) { if (v > 100) break; }
//   pool.close();
//   pool.join();
//
// What Python users fight, fixed:
//  - A worker that dies while running a task (a signal, _exit, the OOM
//    killer) fails *that task* with mproc::WorkerLostError naming the signal
//    or exit code; the pool starts a replacement and every other task
//    completes. Tasks the worker had received but not started are re-queued.
//  - PoolOptions::task_timeout: a task running longer fails with
//    mproc::TimeoutError; its worker is killed and replaced.
//  - imap/imap_unordered are lazy on the input side: at most
//    `imap_window(processes, chunksize)` = max((2 * processes + 2) * chunksize,
//    16 * processes)
//    items are taken from the input ahead of the consumer, so an endless
//    input works and memory stays flat. (Once the window is full, input is
//    taken again when the consumer has freed a quarter of it.)
// Callables and arguments must be serializable (serialize.hpp); this is
// checked at compile time, whatever the start method.
//
// Errors: a task's exception is rethrown by get()/map()/the imap iterator
// as the same type where possible, and as mproc::RemoteError (errors.hpp).
// A map-style call in which tasks failed waits until every task of the call
// has an outcome, then throws the error of the lowest failing index; the
// pool stays usable. An exception thrown by the *input* range is the
// caller's own: map/starmap throw it as it is; imap/imap_unordered, as in
// Python, drop the chunk that was being taken and yield the error in its
// place, after the results of the chunks sent before it, then end.
//
// Lifetime and threads: Pool methods may be called from any thread.
// Callbacks run on one pool thread, one at a time, in the parent; an
// exception thrown by a callback is passed to PoolOptions::on_callback_error
// (default: printed to stderr) and does not affect the task's result. Never
// call join() or the destructor from a callback. The destructor acts like
// Python's `with Pool() as p:` exit: terminate() (SIGKILL to the workers),
// then join(). Submitting after close()/terminate() throws PoolClosedError.
// An imap range must not outlive its pool.
#pragma once

#include <chrono>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mproc/async_result.hpp"
#include "mproc/detail/callable.hpp"
#include "mproc/detail/pool_core.hpp"
#include "mproc/detail/pool_jobs.hpp"
#include "mproc/detail/task_entry.hpp"
#include "mproc/process.hpp"
#include "mproc/serialize.hpp"
#include "mproc/start_method.hpp"

namespace mproc {

namespace detail {
// What a pool backend gets to make its transport (src/pool/pool.cpp for
// local processes; mproc::mpi::Pool for ranks).
struct TransportRequest {
  std::size_t processes = 0;  // as PoolOptions::processes; 0 = the backend's default
  StartMethod start_method = StartMethod::fork;
  std::uint32_t maxtasksperchild = 0;
  bool flush_each_item = false;  // results item by item (task_timeout is set)
};
using TransportFactory = std::function<std::unique_ptr<Transport>(const TransportRequest&)>;

template <class T>
struct is_args : std::false_type {};
template <class... X>
struct is_args<Args<X...>> : std::true_type {};
// The decayed first type of a pack, or void for an empty one.
template <class... A>
struct first_or_void {
  using type = void;
};
template <class T, class... R>
struct first_or_void<T, R...> {
  using type = std::decay_t<T>;
};
}  // namespace detail

struct NoInitializer {};

// Options of a Pool; a plain aggregate: set what you need.
//   mproc::PoolOptions{.processes = 4, .initializer = init_fn,
//                      .initargs = std::make_tuple(42), .maxtasksperchild = 100,
//                      .start_method = mproc::StartMethod::spawn,
//                      .task_timeout = std::chrono::seconds(30)}
template <class Init = NoInitializer, class InitArgs = std::tuple<>>
struct PoolOptions {
  std::size_t processes = 0;  // 0 = cpu_count()
  Init initializer{};
  InitArgs initargs{};
  std::size_t maxtasksperchild = 0;  // 0 = unlimited; counts chunks, as Python
  std::optional<StartMethod> start_method;
  std::optional<std::chrono::nanoseconds> task_timeout;
  // Receives exceptions thrown by on_result/on_error callbacks.
  std::function<void(std::exception_ptr)> on_callback_error;
  // Show a progress line (done/total, rate, ETA) on stderr for map,
  // starmap, imap and imap_unordered, when stderr is a terminal.
  bool progress = false;
};

// The most workers a Pool or ThreadPool takes: far more than a machine
// runs usefully, and small enough to catch a negative count converted to
// std::size_t (Pool(-1)).
inline constexpr std::size_t kMaxPoolSize = std::size_t{1} << 16;

namespace detail {
// Throws mproc::Error, naming `who`, unless 1 <= n <= kMaxPoolSize.
void check_pool_size(std::size_t n, const char* who);
// Throws mproc::Error, naming `who`, if maxtasksperchild is beyond what a
// worker counts (2^32 - 1; a negative number converted, most likely).
void check_maxtasksperchild(std::size_t n, const char* who);
// imap's chunksize: 0 is taken as 1 (the default); one that is a negative
// number converted to size_t throws mproc::Error naming `who` (Python
// refuses chunksize < 1), rather than reading an endless input without end.
std::size_t checked_imap_chunksize(std::size_t chunksize, const char* who);
}  // namespace detail

// How many imap items may be taken from the input ahead of the consumer:
// enough that every worker can hold a few small chunks (so tiny tasks do
// not wait for round trips), and a constant, so memory stays flat.
// Saturates rather than wraps for a huge chunksize.
constexpr std::size_t imap_window(std::size_t processes, std::size_t chunksize) {
  const std::size_t per_chunk = chunksize == 0 ? 1 : chunksize;
  const std::size_t chunks = 2 * processes + 2;
  const std::size_t window =
      per_chunk > std::numeric_limits<std::size_t>::max() / chunks ? std::numeric_limits<std::size_t>::max() : chunks * per_chunk;
  return std::max<std::size_t>(window, 16 * processes);
}

// The lazy range returned by imap/imap_unordered. Single pass, like a
// Python iterator; iterating throws a task's exception at its position
// (imap) or when it completes (imap_unordered). Destroying it stops taking
// input; tasks in flight finish and their results are dropped.
template <class V>
class IMapRange {
 public:
  explicit IMapRange(std::shared_ptr<detail::IMapChannel<V>> ch) : ch_(std::move(ch)) {}
  IMapRange(IMapRange&&) noexcept = default;
  IMapRange& operator=(IMapRange&&) noexcept = default;
  ~IMapRange() {
    if (ch_) ch_->cancel();
  }

  class iterator;
  friend class iterator;
  class iterator {
   public:
    using value_type = V;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(IMapRange* r) : r_(r) {}
    const V& operator*() const { return *r_->current_; }
    iterator& operator++() {
      r_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool at_end() const { return !r_->current_; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.at_end(); }

   private:
    IMapRange* r_ = nullptr;
  };

  // Fetches the next result (may block, may throw): as with a Python
  // iterator, a loop goes on from where an earlier next() or a loop left
  // by `break` stopped (`head = next(it); for x in it:`).
  iterator begin() {
    advance();
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

  // Python's next(it): the next result, or nullopt at the end.
  std::optional<V> next() { return ch_->next(); }
  // Python's it.next(timeout): throws mproc::TimeoutError if no result is
  // ready within `timeout` (the iteration may go on afterwards).
  template <class Rep, class Period>
  std::optional<V> next(std::chrono::duration<Rep, Period> timeout) {
    return ch_->next(detail::deadline_after(timeout));
  }

 private:
  void advance() { current_ = ch_->next(); }
  std::shared_ptr<detail::IMapChannel<V>> ch_;
  std::optional<V> current_;
};

class Pool {
 public:
  // processes = cpu_count().
  Pool() : Pool(PoolOptions<>{}) {}
  // Throws mproc::Error unless 1 <= processes <= kMaxPoolSize.
  explicit Pool(std::size_t processes) : Pool(make_options(processes)) {}

  template <class Init, class InitArgs>
  explicit Pool(const PoolOptions<Init, InitArgs>& options) {
    start(options);
  }

  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&&) noexcept = default;
  ~Pool() = default;  // PoolCore's destructor: terminate() + join()

  std::size_t processes() const noexcept { return core_->processes(); }

  // ------------------------------------------------------------- apply ---

  // Runs f(args...) in a worker and waits for the result.
  template <class F, class... A>
  auto apply(F&& f, A&&... a) {
    return apply_async(std::forward<F>(f), std::forward<A>(a)...).get();
  }

  // Runs f(args...) in a worker. Trailing mproc::on_result(cb) /
  // mproc::on_error(ecb) add callbacks; then the arguments must be wrapped
  // in mproc::args(...).
  template <class F, class... A>
  [[nodiscard]] auto apply_async(F&& f, A&&... a) {
    if constexpr (detail::is_args<typename detail::first_or_void<A...>::type>::value) {
      auto all = std::forward_as_tuple(std::forward<A>(a)...);
      return std::apply(
          [&](auto&& packed, auto&&... cbs) {
            return std::apply(
                [&](auto&&... xs) {
                  return submit_apply(std::forward<F>(f), make_callbacks_for<F, decltype(xs)...>(cbs...),
                                      std::forward<decltype(xs)>(xs)...);
                },
                std::move(packed.values));
          },
          std::move(all));
    } else {
      return submit_apply(std::forward<F>(f), NoCallbacks{}, std::forward<A>(a)...);
    }
  }

  // --------------------------------------------------------------- map ---

  // f applied to every element of a sized range; results in input order.
  // chunksize 0 = automatic (len / (4 * processes), rounded up, at most
  // 256 KiB of encoded items per chunk; chunk_plan()).
  template <class F, std::ranges::input_range Range>
  auto map(F&& f, Range&& range, std::size_t chunksize = 0) {
    return map_impl<false>(std::forward<F>(f), std::forward<Range>(range), chunksize);
  }
  // Like map, with each element a tuple unpacked into f's arguments.
  template <class F, std::ranges::input_range Range>
  auto starmap(F&& f, Range&& range, std::size_t chunksize = 0) {
    return map_impl<true>(std::forward<F>(f), std::forward<Range>(range), chunksize);
  }
  // Non-blocking map; the input is copied at the call (as Python's list()).
  template <class F, std::ranges::input_range Range, callback_arg... Cb>
  [[nodiscard]] auto map_async(F&& f, Range&& range, Cb&&... cbs) {
    return map_async_impl<false>(std::forward<F>(f), std::forward<Range>(range), 0, std::forward<Cb>(cbs)...);
  }
  template <class F, std::ranges::input_range Range, callback_arg... Cb>
  [[nodiscard]] auto map_async(F&& f, Range&& range, std::size_t chunksize, Cb&&... cbs) {
    return map_async_impl<false>(std::forward<F>(f), std::forward<Range>(range), chunksize,
                                 std::forward<Cb>(cbs)...);
  }
  template <class F, std::ranges::input_range Range, callback_arg... Cb>
  [[nodiscard]] auto starmap_async(F&& f, Range&& range, Cb&&... cbs) {
    return map_async_impl<true>(std::forward<F>(f), std::forward<Range>(range), 0, std::forward<Cb>(cbs)...);
  }
  template <class F, std::ranges::input_range Range, callback_arg... Cb>
  [[nodiscard]] auto starmap_async(F&& f, Range&& range, std::size_t chunksize, Cb&&... cbs) {
    return map_async_impl<true>(std::forward<F>(f), std::forward<Range>(range), chunksize,
                                std::forward<Cb>(cbs)...);
  }

  // -------------------------------------------------------------- imap ---

  // Lazy map over any input range (endless ones too), results in input
  // order. An lvalue range must outlive the iteration; a temporary is kept.
  template <class F, std::ranges::input_range Range>
  [[nodiscard]] auto imap(F&& f, Range&& range, std::size_t chunksize = 1) {
    return imap_impl<true>(std::forward<F>(f), std::forward<Range>(range), chunksize);
  }
  // As imap, results in completion order.
  template <class F, std::ranges::input_range Range>
  [[nodiscard]] auto imap_unordered(F&& f, Range&& range, std::size_t chunksize = 1) {
    return imap_impl<false>(std::forward<F>(f), std::forward<Range>(range), chunksize);
  }

  // --------------------------------------------------------- lifecycle ---

  // No more tasks; workers exit once queued tasks are done.
  void close() { core_->close(); }
  // Kills the workers now (SIGKILL); pending tasks fail with PoolClosedError.
  void terminate() { core_->terminate(); }
  // Waits for the workers to exit. Call close() or terminate() first.
  void join() { core_->join(); }

 protected:
  // The same pool over another transport (mproc::mpi::Pool): `make` gets
  // the options' process count (0 = its default) and returns the transport.
  template <class Init, class InitArgs>
  Pool(const PoolOptions<Init, InitArgs>& options, detail::TransportFactory make) {
    start(options, std::move(make));
  }

 private:
  struct NoCallbacks {};

  static PoolOptions<> make_options(std::size_t processes) {
    detail::check_pool_size(processes, "mproc::Pool");
    PoolOptions<> o;
    o.processes = processes;
    return o;
  }

  template <class Init, class InitArgs>
  void start(const PoolOptions<Init, InitArgs>& o, detail::TransportFactory make = nullptr);
  // `make` null: local worker processes (pool.cpp).
  void start_core(std::size_t processes, StartMethod method, std::size_t maxtasks,
                  std::optional<std::chrono::nanoseconds> timeout, detail::Writer init,
                  std::shared_ptr<const void> keepalive, std::function<void(std::exception_ptr)> on_cb_error,
                  detail::TransportFactory make);

  template <class V, class... Cb>
  static detail::Callbacks<V> callbacks(Cb&&... cbs) {
    return detail::make_callbacks<V>(std::forward<Cb>(cbs)...);
  }

  template <class F, class... X, class... Cb>
  static auto make_callbacks_for(Cb&&... cbs) {
    using Fn = std::decay_t<F>;
    using Item = detail::stored_args_t<Fn, X...>;
    using R = detail::apply_result_t<Fn, Item>;
    return callbacks<detail::value_t<R>>(std::forward<Cb>(cbs)...);
  }

  template <class F, class CbsOrNone, class... A>
  auto submit_apply(F&& f, CbsOrNone cbs, A&&... a) {
    using Fn = std::decay_t<F>;
    static_assert(detail::serializable_check<Fn>::ok);
    using Item = detail::stored_args_t<Fn, A...>;
    if constexpr (detail::signature<Fn>::known) {
      static_assert(std::tuple_size_v<Item> == sizeof...(A),
                    "mproc::Pool::apply: the number of arguments does not match the function's parameters");
    }
    static_assert(detail::serializable_check<Item>::ok);
    static_assert(detail::invocable_with_v<Fn, Item>, "mproc::Pool::apply: f cannot be called with these arguments");
    using R = detail::apply_result_t<Fn, Item>;
    using V = detail::value_t<R>;
    detail::Callbacks<V> c;
    if constexpr (!std::is_same_v<CbsOrNone, NoCallbacks>) c = std::move(cbs);
    auto job = std::make_shared<detail::ApplyJob<Fn, Item, R>>(Fn(std::forward<F>(f)), Item(std::forward<A>(a)...),
                                                              std::move(c));
    auto state = job->state();
    core_->submit(std::move(job));
    return AsyncResult<R>(std::move(state));
  }

  template <bool Unpack, class Fn, class Range>
  using item_of = typename std::conditional_t<Unpack, detail::star_item<Fn, std::ranges::range_reference_t<Range>>,
                                              detail::map_item<Fn, std::ranges::range_reference_t<Range>>>::type;

  template <bool Unpack, class Fn, class Item>
  static constexpr void check_callable() {
    static_assert(detail::serializable_check<Fn>::ok);
    static_assert(detail::serializable_check<Item>::ok);
    if constexpr (Unpack) {
      static_assert(detail::invocable_with_v<Fn, Item>,
                    "mproc::Pool::starmap: f cannot be called with the elements of the tuples");
    } else {
      static_assert(std::is_invocable_v<Fn&, Item&>, "mproc::Pool::map: f cannot be called with the elements");
    }
  }

  // chunksize 0 = automatic: Python's len / (4 * processes), rounded up,
  // but no more than 256 KiB of encoded items per chunk (then a few
  // buffers, warm after the first chunks, carry the whole map: a fresh
  // page costs more than the bytes in it; one more message per 256 KiB
  // costs little).
  detail::ChunkPlan chunk_plan(std::size_t chunksize, std::size_t n) const {
    if (chunksize != 0) return {chunksize, 0};
    const std::size_t per = 4 * processes();
    std::size_t c = n / per;
    if (n % per) ++c;
    return {std::max<std::size_t>(c, 1), kAutoChunkBytes};
  }
  static constexpr std::size_t kAutoChunkBytes = std::size_t{256} << 10;

  template <bool Unpack, class F, class Range>
  auto map_impl(F&& f, Range&& range, std::size_t chunksize) {
    using Fn = std::decay_t<F>;
    static_assert(detail::serializable_check<Fn>::ok);
    if constexpr (!std::ranges::sized_range<Range>) {
      // Not sized (a filter view, an input stream): take it whole first.
      std::vector<std::ranges::range_value_t<Range>> all;
      for (auto&& e : range) all.push_back(std::forward<decltype(e)>(e));
      return map_impl<Unpack>(std::forward<F>(f), std::move(all), chunksize);
    } else {
      using Item = item_of<Unpack, Fn, Range>;
      check_callable<Unpack, Fn, Item>();
      using R = typename detail::item_result<Fn, Item, Unpack>::type;
      using View = std::views::all_t<Range>;
      const std::size_t n = static_cast<std::size_t>(std::ranges::size(range));
      auto job = std::make_shared<detail::MapJob<Fn, Item, Unpack, R, View>>(
          Fn(std::forward<F>(f)), std::views::all(std::forward<Range>(range)),
          chunk_plan(chunksize, n), detail::Callbacks<typename detail::MapJob<Fn, Item, Unpack, R, View>::OutValue>{},
          progress_, /*caller_fills=*/true);
      auto state = job->state();
      core_->submit(job);
      job->fill_output();
      state->wait();
      return state->take();
    }
  }

  template <bool Unpack, class F, class Range, class... Cb>
  auto map_async_impl(F&& f, Range&& range, std::size_t chunksize, Cb&&... cbs) {
    using Fn = std::decay_t<F>;
    static_assert(detail::serializable_check<Fn>::ok);
    using Item = item_of<Unpack, Fn, Range>;
    check_callable<Unpack, Fn, Item>();
    using R = typename detail::item_result<Fn, Item, Unpack>::type;
    // Copy the input now, converted to what is sent: the caller may change
    // or drop its range while the job runs.
    std::vector<Item> items;
    if constexpr (std::ranges::sized_range<Range>) items.reserve(std::ranges::size(range));
    for (auto&& e : range) {
      if constexpr (Unpack) {
        items.push_back(std::apply([](auto&&... a) { return Item(a...); }, e));
      } else {
        items.push_back(Item(e));
      }
    }
    using View = std::views::all_t<std::vector<Item>>;
    using Job = detail::MapJob<Fn, Item, Unpack, R, View>;
    const std::size_t n = items.size();
    auto job = std::make_shared<Job>(Fn(std::forward<F>(f)), std::views::all(std::move(items)),
                                     chunk_plan(chunksize, n),
                                     callbacks<typename Job::OutValue>(std::forward<Cb>(cbs)...), progress_);
    auto state = job->state();
    core_->submit(std::move(job));
    return AsyncResult<typename Job::Out>(std::move(state));
  }

  template <bool Ordered, class F, class Range>
  auto imap_impl(F&& f, Range&& range, std::size_t chunksize) {
    using Fn = std::decay_t<F>;
    static_assert(detail::serializable_check<Fn>::ok);
    using Item = item_of<false, Fn, Range>;
    check_callable<false, Fn, Item>();
    using R = typename detail::item_result<Fn, Item, false>::type;
    using View = std::views::all_t<Range>;
    using Job = detail::IMapJob<Fn, Item, false, R, View, Ordered>;
    chunksize = detail::checked_imap_chunksize(chunksize, Ordered ? "mproc::Pool::imap" : "mproc::Pool::imap_unordered");
    auto job = std::make_shared<Job>(Fn(std::forward<F>(f)), std::views::all(std::forward<Range>(range)), chunksize,
                                     imap_window(processes(), chunksize), core_.get(), progress_);
    std::shared_ptr<detail::IMapChannel<detail::value_t<R>>> channel = job;
    core_->submit(std::move(job));
    return IMapRange<detail::value_t<R>>(std::move(channel));
  }

  std::unique_ptr<detail::PoolCore> core_;
  bool progress_ = false;
};

template <class Init, class InitArgs>
void Pool::start(const PoolOptions<Init, InitArgs>& o, detail::TransportFactory make) {
  detail::Writer init;
  init.write_pod(detail::PoolMsg::init);
  std::shared_ptr<const void> keepalive;
  if constexpr (std::is_same_v<Init, NoInitializer>) {
    static_assert(std::tuple_size_v<InitArgs> == 0, "mproc::PoolOptions: initargs given without an initializer");
    init.write_pod(std::uint8_t{0});
  } else {
    using Fn = std::decay_t<Init>;
    static_assert(detail::serializable_check<Fn>::ok);
    static_assert(detail::serializable_check<InitArgs>::ok);
    static_assert(detail::invocable_with_v<Fn, InitArgs>,
                  "mproc::PoolOptions: the initializer cannot be called with initargs (check their number and types)");
    init.write_pod(std::uint8_t{1});
    init.write_pod(detail::Registered<detail::InitEntry<Fn, InitArgs>>::key);
    detail::encode_value(init, o.initializer);
    detail::encode_value(init, o.initargs);
    // Handles among initargs must stay open while workers may (re)start.
    keepalive = std::make_shared<InitArgs>(o.initargs);
  }
  progress_ = o.progress;
  start_core(o.processes, o.start_method.value_or(get_start_method()), o.maxtasksperchild, o.task_timeout,
             std::move(init), std::move(keepalive), o.on_callback_error, std::move(make));
}

}  // namespace mproc
