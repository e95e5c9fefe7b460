// detail/pool_jobs.hpp: the jobs behind Pool::apply/map/imap (one per call).
//
// A job turns its input into chunks for the core (detail/pool_core.hpp) and
// gathers the outcomes: ApplyJob (one item), MapJob (a sized input, results
// in input order, the call's error is that of the lowest failing index once
// every item has an outcome), IMapJob (a lazy input pulled only while fewer
// than `window` items are waiting to be consumed; results handed out in
// input order or completion order).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <set>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include "mproc/async_result.hpp"
#include "mproc/detail/callable.hpp"
#include "mproc/detail/huge_pages.hpp"
#include "mproc/detail/pool_core.hpp"
#include "mproc/detail/spin.hpp"
#include "mproc/detail/progress.hpp"
#include "mproc/detail/registry.hpp"
#include "mproc/detail/task_entry.hpp"
#include "mproc/serialize.hpp"

namespace mproc::detail {

template <class R>
using value_t = std::conditional_t<std::is_void_v<R>, std::monostate, std::decay_t<R>>;

template <class R>
value_t<R> decode_result(Reader& r) {
  if constexpr (std::is_void_v<R>) {
    return {};
  } else {
    return decode_value<std::decay_t<R>>(r);
  }
}

// ------------------------------------------------ item types and results ---

// The type one item of map() is sent as: the function's parameter type when
// it is known, else the element type.
template <class Fn, class E>
struct map_item {
  using type = arg_storage_t<E>;
};
template <class Fn, class E>
  requires signature<Fn>::known
struct map_item<Fn, E> {
  using params = typename signature<Fn>::params;
  static_assert(std::tuple_size_v<params> == 1,
                "mproc::Pool::map/imap: the function must take exactly one argument "
                "(use starmap for several)");
  using type = std::tuple_element_t<0, params>;
};

template <class Tuple>
struct tuple_storage;
template <template <class...> class T, class... A>
struct tuple_storage<T<A...>> {
  using type = std::tuple<arg_storage_t<A>...>;
};
template <class T, std::size_t N>
struct tuple_storage<std::array<T, N>> {
  using type = decltype(std::tuple_cat(std::declval<std::array<arg_storage_t<T>, N>>()));
};

// The type one item of starmap() is sent as: the parameter tuple.
template <class Fn, class E>
struct star_item {
  using type = typename tuple_storage<std::decay_t<E>>::type;
};
template <class Fn, class E>
  requires signature<Fn>::known
struct star_item<Fn, E> {
  using type = typename signature<Fn>::params;
};

template <class Fn, class Item, bool Unpack>
struct item_result;
template <class Fn, class Item>
struct item_result<Fn, Item, false> {
  using type = std::decay_t<std::invoke_result_t<Fn&, Item&>>;
};
template <class Fn, class Item>
struct item_result<Fn, Item, true> {
  using type = apply_result_t<Fn, Item>;
};

// Writes element `e` as an Item, converting only when the types differ.
template <class Item, bool Unpack, class E>
void encode_item(Writer& w, const E& e) {
  if constexpr (std::is_same_v<std::decay_t<E>, Item>) {
    encode_value(w, e);
  } else if constexpr (Unpack) {
    encode_value(w, std::apply([](const auto&... a) { return Item(a...); }, e));
  } else {
    encode_value(w, Item(e));
  }
}

// Callbacks of one _async call, type-erased.
template <class V>
struct Callbacks {
  std::function<void(const V&)> on_result;
  std::function<void(std::exception_ptr)> on_error;
  bool any() const { return on_result || on_error; }
};

template <class V, class G>
void add_callback(Callbacks<V>& out, OnResult<G> cb) {
  if constexpr (std::is_same_v<V, std::monostate> && std::is_invocable_v<G&>) {
    out.on_result = [g = std::move(cb.fn)](const V&) mutable { g(); };  // void tasks
  } else {
    out.on_result = [g = std::move(cb.fn)](const V& v) mutable { g(v); };
  }
}
template <class V, class G>
void add_callback(Callbacks<V>& out, OnError<G> cb) {
  out.on_error = [g = std::move(cb.fn)](std::exception_ptr e) mutable { g(e); };
}
// The callbacks of an _async call from its trailing on_result/on_error.
template <class V, class... Cb>
Callbacks<V> make_callbacks(Cb&&... cbs) {
  Callbacks<V> out;
  (add_callback(out, std::forward<Cb>(cbs)), ...);
  return out;
}

// Publishes an outcome: runs the callback on the callback thread first (so
// that get() returns after it), then makes the result ready even if the
// callback threw (the throw then goes to the pool's callback error report).
template <class R, class V>
void publish(CallbackSink& core, std::shared_ptr<ResultState<R>> state, Callbacks<V> cbs,
             std::optional<V> value, std::exception_ptr error) {
  // The exception_ptr is moved, never copied, into the result: its
  // reference count lives in libstdc++, which TSan does not see, so the
  // last reference to a task's exception should be dropped through the
  // result state (a shared_ptr, whose count TSan sees), not by whichever
  // pool thread happens to hold a copy last.
  if (!cbs.any()) {
    if (error) {
      state->set_error(std::move(error));
    } else {
      state->set_value(std::move(*value));
    }
    return;
  }
  core.post_callback([state, cbs = std::move(cbs), value = std::move(value), error = std::move(error)]() mutable {
    struct SetLater {
      std::shared_ptr<ResultState<R>>& state;
      std::optional<V>& value;
      std::exception_ptr& error;
      ~SetLater() {
        if (error) {
          state->set_error(std::move(error));
        } else {
          state->set_value(std::move(*value));
        }
      }
    } set_later{state, value, error};
    if (error) {
      if (cbs.on_error) cbs.on_error(error);
    } else if (cbs.on_result) {
      cbs.on_result(*value);
    }
  });
}

// ----------------------------------------------------------------- apply ---

template <class F, class Item, class R>
class ApplyJob final : public JobBase {
 public:
  using V = value_t<R>;
  ApplyJob(F f, Item item, Callbacks<V> cbs)
      : f_(std::move(f)), item_(std::move(item)), cbs_(std::move(cbs)), state_(std::make_shared<ResultState<R>>()) {}

  std::shared_ptr<ResultState<R>> state() const { return state_; }

  std::optional<std::size_t> next_chunk(ChunkWriter& cw) override {
    if (sent_) return std::nullopt;
    sent_ = true;
    cw.begin(Registered<TaskEntry<F, Item, true>>::key);
    encode_value(cw.writer(), f_);
    cw.end_callable();
    cw.begin_item();
    encode_value(cw.writer(), item_);
    return 0;
  }
  bool input_exhausted() const override { return sent_; }
  void deliver(std::size_t, Reader& r) override {
    value_.emplace(decode_result<R>(r));
    done_ = true;
  }
  void fail(std::size_t, std::exception_ptr e) override {
    error_ = std::move(e);
    done_ = true;
  }
  bool finished() const override { return done_; }
  void complete(PoolCore& core) override {
    publish<R, V>(core, state_, std::move(cbs_), std::move(value_), std::move(error_));
  }
  void abandon(std::exception_ptr e) override {
    sent_ = true;
    if (!done_) fail(0, std::move(e));
  }

 private:
  F f_;
  Item item_;
  Callbacks<V> cbs_;
  std::shared_ptr<ResultState<R>> state_;
  bool sent_ = false, done_ = false;
  std::optional<V> value_;
  std::exception_ptr error_;
};

// ------------------------------------------------------------------- map ---

// How a map cuts its input: `items` per chunk, and, for an automatic
// chunksize, at most `max_bytes` of encoded items (0 = no limit), so that
// big chunks of big items do not need buffers larger than any before (fresh
// pages cost ~2 us each on the VMs here, more than moving the bytes).
struct ChunkPlan {
  std::size_t items = 1;
  std::size_t max_bytes = 0;
};

template <class F, class Item, bool Unpack, class R, class View>
class MapJob final : public JobBase {
 public:
  using V = value_t<R>;
  using Out = std::conditional_t<std::is_void_v<R>, void, std::vector<V>>;
  using OutValue = value_t<Out>;

  // `caller_fills` (synchronous map): a big output is not faulted in here
  // but by fill_output(), which the calling thread runs after submitting
  // the job, while the workers run the first chunks.
  MapJob(F f, View view, ChunkPlan plan, Callbacks<OutValue> cbs, bool progress = false, bool caller_fills = false)
      : f_(std::move(f)),
        view_(std::move(view)),
        it_(std::ranges::begin(view_)),
        total_(static_cast<std::size_t>(std::ranges::size(view_))),
        chunksize_(std::max<std::size_t>(plan.items, 1)),
        max_chunk_bytes_(plan.max_bytes),
        cbs_(std::move(cbs)),
        state_(std::make_shared<ResultState<Out>>()),
        progress_(progress, total_) {
    if constexpr (!std::is_void_v<R>) {
      // The output's pages are faulted in here, by resize: as huge pages
      // when the output is big (detail/huge_pages.hpp).
      results_.reserve(total_);
      if constexpr (!std::is_same_v<ResultSlot, bool>) advise_huge_pages(results_.data(), total_ * sizeof(ResultSlot));
      if constexpr (std::is_nothrow_default_constructible_v<ResultSlot>) {
        if (caller_fills && total_ * sizeof(ResultSlot) >= kLateOutputBytes) return;
      }
      results_.resize(total_);
    }
    output_ready_.store(true, std::memory_order_relaxed);
  }

  // Faults the output in, unless the constructor did. Cannot throw: the
  // storage is reserved and its elements are made without throwing.
  void fill_output() noexcept {
    if (output_ready_.load(std::memory_order_relaxed)) return;
    if constexpr (std::is_nothrow_default_constructible_v<ResultSlot>) results_.resize(total_);
    output_ready_.store(true, std::memory_order_release);
    output_ready_.notify_all();
  }

  std::shared_ptr<ResultState<Out>> state() const { return state_; }
  std::size_t total() const { return total_; }

  std::optional<std::size_t> next_chunk(ChunkWriter& cw) override {
    if (pulled_ == total_ || abandoned_) return std::nullopt;
    const std::size_t first = pulled_;
    cw.begin(Registered<TaskEntry<F, Item, Unpack>>::key);
    encode_value(cw.writer(), f_);
    cw.end_callable();
    if constexpr (!Unpack && is_plain_v<Item>) {
      // Plain items are their bytes: copied in one go from a contiguous
      // input of that very type, else converted one by one.
      std::size_t n = std::min(chunksize_, total_ - pulled_);
      if (max_chunk_bytes_ != 0) n = std::clamp<std::size_t>(max_chunk_bytes_ / sizeof(Item), 1, n);
      std::byte* out = cw.add_fixed_items(n, sizeof(Item));
      if constexpr (std::ranges::contiguous_range<View> && std::is_same_v<std::ranges::range_value_t<View>, Item>) {
        std::memcpy(out, std::to_address(it_), n * sizeof(Item));
        it_ += static_cast<std::ranges::range_difference_t<View>>(n);
      } else {
        for (std::size_t k = 0; k < n; ++k, ++it_) {
          const Item v(*it_);
          std::memcpy(out + k * sizeof(Item), &v, sizeof(Item));
        }
      }
      pulled_ += n;
    } else {
      const std::size_t start = cw.writer().size();
      for (std::size_t n = 0; n < chunksize_ && pulled_ < total_; ++n, ++pulled_, ++it_) {
        if (n != 0 && max_chunk_bytes_ != 0 && cw.writer().size() - start >= max_chunk_bytes_) break;
        cw.begin_item();
        encode_item<Item, Unpack>(cw.writer(), *it_);
      }
    }
    return first;
  }
  bool input_exhausted() const override { return pulled_ == total_ || abandoned_; }
  void deliver(std::size_t index, Reader& r) override {
    await_output();
    if constexpr (kDirect) {
      results_[index] = decode_result<R>(r);
    } else if constexpr (!std::is_void_v<R>) {
      results_[index].emplace(decode_result<R>(r));
    }
    ++answered_;
    if (progress_.active()) progress_.advance();
  }
  std::uint32_t deliver_run(std::size_t index, std::uint32_t max, Reader& r) override {
    if constexpr (kDirect && is_plain_v<V>) {
      await_output();
      // Each outcome is a tag byte and the value's bytes; successes are
      // copied straight into the output.
      constexpr std::size_t kStep = 1 + sizeof(V);
      const std::span<const std::byte> in = r.rest();
      const std::size_t fit = std::min<std::size_t>({max, in.size() / kStep, total_ - std::min(index, total_)});
      std::size_t n = 0;
      while (n < fit && in[n * kStep] == std::byte{1}) {
        std::memcpy(&results_[index + n], in.data() + n * kStep + 1, sizeof(V));
        ++n;
      }
      (void)r.take(n * kStep);
      answered_ += n;
      if (progress_.active() && n != 0) progress_.advance(n);
      return static_cast<std::uint32_t>(n);
    } else {
      (void)index, (void)max, (void)r;
      return 0;
    }
  }
  void fail(std::size_t index, std::exception_ptr e) override {
    if (index < error_index_) {
      error_index_ = index;
      error_ = std::move(e);
    }
    ++answered_;
    if (progress_.active()) progress_.advance();
  }
  bool finished() const override { return input_exhausted() && answered_ == pulled_; }
  void complete(PoolCore& core) override {
    await_output();
    progress_.finish();
    std::optional<OutValue> out;
    if (!error_) {
      if constexpr (std::is_void_v<R>) {
        out.emplace();
      } else if constexpr (kDirect) {
        out.emplace(std::move(results_));
      } else {
        out.emplace();
        out->reserve(total_);
        for (auto& r : results_) out->push_back(std::move(*r));
        results_.clear();
      }
    }
    publish<Out, OutValue>(core, state_, std::move(cbs_), std::move(out), std::move(error_));
  }
  void abandon(std::exception_ptr e) override {
    abandoned_ = true;
    if (!error_ || error_index_ > pulled_) {
      error_ = e;
      error_index_ = 0;
    }
    answered_ = pulled_;
  }

 private:
  F f_;
  View view_;
  std::ranges::iterator_t<View> it_;
  std::size_t total_;
  std::size_t chunksize_;
  std::size_t max_chunk_bytes_;
  Callbacks<OutValue> cbs_;
  std::shared_ptr<ResultState<Out>> state_;
  // Results go straight into the output vector when V can be made empty
  // first (most types): no optional per item, no copy at the end.
  static constexpr bool kDirect =
      !std::is_void_v<R> && std::is_default_constructible_v<V> && std::is_move_assignable_v<V>;
  using ResultSlot = std::conditional_t<kDirect, V, std::optional<V>>;
  // From this size on, a synchronous map's output is faulted in by the
  // caller after submitting (~1 ms per 8 MiB here, even as huge pages).
  static constexpr std::size_t kLateOutputBytes = std::size_t{1} << 20;
  // The supervisor waits here for fill_output() before it touches the
  // output (only at the first results of a big map, if at all).
  void await_output() {
    if (!output_ready_.load(std::memory_order_acquire)) [[unlikely]] {
      output_ready_.wait(false, std::memory_order_acquire);
    }
  }
  std::vector<ResultSlot> results_;
  std::atomic<bool> output_ready_{false};
  std::size_t pulled_ = 0, answered_ = 0;
  std::size_t error_index_ = SIZE_MAX;
  std::exception_ptr error_;
  bool abandoned_ = false;
  Progress progress_;
};

// ------------------------------------------------------------------ imap ---

// What an imap consumer sees; shared by IMapJob and its range.
template <class V>
class IMapChannel {
 public:
  virtual ~IMapChannel() = default;
  // The next result (nullopt at the end) or the item's exception. With a
  // deadline, throws mproc::TimeoutError if nothing is ready by then.
  virtual std::optional<V> next(Deadline deadline = std::nullopt) = 0;
  virtual void cancel() = 0;
};

template <class F, class Item, bool Unpack, class R, class View, bool Ordered>
class IMapJob final : public JobBase, public IMapChannel<value_t<R>> {
 public:
  using V = value_t<R>;

  IMapJob(F f, View view, std::size_t chunksize, std::size_t window, PoolCore* core, bool progress = false)
      : f_(std::move(f)),
        view_(std::move(view)),
        it_(std::ranges::begin(view_)),
        chunksize_(std::max<std::size_t>(chunksize, 1)),
        window_(std::max(window, chunksize_)),
        core_(core),
        progress_(progress, known_size(view_)) {}

  static std::optional<std::size_t> known_size(View& v) {
    if constexpr (std::ranges::sized_range<View>) {
      return static_cast<std::size_t>(std::ranges::size(v));
    } else {
      return std::nullopt;
    }
  }

  std::optional<std::size_t> next_chunk(ChunkWriter& cw) override {
    std::lock_guard lock(mu_);
    if (cancelled_ || input_done_) return std::nullopt;
    if (it_ == std::ranges::end(view_)) {
      input_done_ = true;
      arrived_.fetch_add(1, std::memory_order_release);
    cv_.notify_all();
      return std::nullopt;
    }
    // Whole chunks only (but the input's last): a chunk cut short by the
    // window would be a few items sent on their own, and chunk borders
    // would move away from multiples of chunksize.
    if (pulled_ - consumed_ + chunksize_ > window_) {
      starved_ = true;  // the consumer wakes the core once it made room
      return std::nullopt;
    }
    const std::size_t first = pulled_;
    try {
      cw.begin(Registered<TaskEntry<F, Item, Unpack>>::key);
      encode_value(cw.writer(), f_);
      cw.end_callable();
      for (std::size_t n = 0; n < chunksize_; ++n) {
        if (it_ == std::ranges::end(view_)) break;
        cw.begin_item();
        encode_item<Item, Unpack>(cw.writer(), *it_);
        pending_.insert(pulled_);
        ++pulled_;
        ++it_;
      }
      if (it_ == std::ranges::end(view_)) input_done_ = true;
    } catch (...) {
      input_failed(first, std::current_exception());
      return std::nullopt;
    }
    return first;
  }
  bool input_exhausted() const override {
    std::lock_guard lock(mu_);
    return input_done_ || cancelled_;
  }
  void drain() override {
    std::lock_guard lock(mu_);
    window_ = std::numeric_limits<std::size_t>::max();
  }
  void deliver(std::size_t index, Reader& r) override {
    V v = decode_result<R>(r);
    std::lock_guard lock(mu_);
    ++answered_;
    pending_.erase(index);
    if (!cancelled_) add_outcome(index, Outcome{std::move(v)});
    arrived_.fetch_add(1, std::memory_order_release);
    cv_.notify_all();
    progress_.advance();
  }
  void fail(std::size_t index, std::exception_ptr e) override {
    std::lock_guard lock(mu_);
    ++answered_;
    pending_.erase(index);
    if (!cancelled_) add_outcome(index, Outcome{std::move(e)});
    arrived_.fetch_add(1, std::memory_order_release);
    cv_.notify_all();
    progress_.advance();
  }
  bool finished() const override {
    std::lock_guard lock(mu_);
    return (input_done_ || cancelled_) && answered_ == pulled_;
  }
  void complete(PoolCore&) override {
    progress_.finish();
    std::lock_guard lock(mu_);
    completed_ = true;
    arrived_.fetch_add(1, std::memory_order_release);
    cv_.notify_all();
  }
  void abandon(std::exception_ptr e) override {
    std::lock_guard lock(mu_);
    // Every item sent and not answered fails; a consumer that wants more
    // than was ever sent gets the same error once, then the end.
    for (std::size_t i : pending_) {
      if (!cancelled_) add_outcome(i, Outcome{e});
      ++answered_;
    }
    pending_.clear();
    if (!input_done_) terminal_ = e;
    input_done_ = true;
    arrived_.fetch_add(1, std::memory_order_release);
    cv_.notify_all();
  }

  std::optional<V> next(Deadline deadline = std::nullopt) override {
    std::unique_lock lock(mu_);
    for (;;) {
      if constexpr (Ordered) {
        auto it = outcomes_.find(next_ordered_);
        if (it != outcomes_.end()) return take(lock, it);
      } else {
        if (!outcomes_.empty()) return take(lock, outcomes_.begin());
      }
      const bool all_consumed = consumed_ == pulled_;
      if (all_consumed && (input_done_ || cancelled_)) {
        if (terminal_) {
          auto e = std::exchange(terminal_, nullptr);
          std::rethrow_exception(e);
        }
        return std::nullopt;
      }
      // Results of quick tasks come within microseconds: look for the
      // next one spinning, without the lock, before sleeping.
      const std::uint64_t seen = arrived_.load(std::memory_order_relaxed);
      lock.unlock();
      thread_local AdaptiveSpin spin;
      const bool came = spin.until([&] { return arrived_.load(std::memory_order_acquire) != seen; });
      lock.lock();
      if (came || arrived_.load(std::memory_order_relaxed) != seen) continue;
      if (!deadline) {
        cv_.wait(lock);
      } else if (cv_.wait_until(lock, *deadline) == std::cv_status::timeout) {
        throw TimeoutError("mproc::Pool::imap: no result within the timeout");
      }
      spin.woke();
    }
  }

  void cancel() override {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      outcomes_.clear();
    }
    core_->wake();
  }

 private:
  struct Outcome {
    std::variant<V, std::exception_ptr> v;
  };

  // Reading the input (or encoding an item) threw while the chunk that
  // starts at `first` was being written. As in Python, that chunk is
  // dropped and the error takes its place: the consumer gets the results
  // of every chunk sent before it, then the error, then the end.
  void input_failed(std::size_t first, std::exception_ptr e) {
    for (std::size_t i = first; i < pulled_; ++i) pending_.erase(i);
    pulled_ = first + 1;
    ++answered_;
    add_outcome(first, Outcome{std::move(e)});
    input_done_ = true;
    arrived_.fetch_add(1, std::memory_order_release);
    cv_.notify_all();
  }

  void add_outcome(std::size_t index, Outcome&& o) {
    if constexpr (Ordered) {
      outcomes_.emplace(index, std::move(o));
    } else {
      outcomes_.emplace_back(index, std::move(o));
    }
  }

  template <class It>
  std::optional<V> take(std::unique_lock<std::mutex>& lock, It it) {
    Outcome o = std::move(it->second);
    outcomes_.erase(it);
    ++consumed_;
    ++next_ordered_;
    // The core found the window full: wake it once a quarter of the window
    // (and at least a chunk) is free again, not for every item (a wake-up
    // costs more than a task).
    const bool wake = starved_ && pulled_ - consumed_ + std::max(chunksize_, window_ / 4) <= window_;
    if (wake) starved_ = false;
    lock.unlock();
    if (wake) core_->wake();  // room for more input
    if (auto* e = std::get_if<std::exception_ptr>(&o.v)) std::rethrow_exception(*e);
    return std::move(std::get<V>(o.v));
  }

  F f_;
  View view_;
  std::ranges::iterator_t<View> it_;
  std::size_t chunksize_;
  std::size_t window_;
  PoolCore* core_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<std::uint64_t> arrived_{0};  // bumped (under mu_) whenever cv_ is notified
  // By index for imap (taken in order), in arrival order for
  // imap_unordered (no tree node per item).
  std::conditional_t<Ordered, std::map<std::size_t, Outcome>, std::deque<std::pair<std::size_t, Outcome>>> outcomes_;
  std::size_t pulled_ = 0, answered_ = 0, consumed_ = 0, next_ordered_ = 0;
  bool input_done_ = false, cancelled_ = false, completed_ = false;
  bool starved_ = false;  // next_chunk() found the window full
  std::set<std::size_t> pending_;  // sent, not answered
  std::exception_ptr terminal_;
  Progress progress_;
};

}  // namespace mproc::detail
