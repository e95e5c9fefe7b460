// detail/task_entry.hpp: what a pool worker runs for one chunk of a job.
//
// A task message names an invoker, TaskEntry<F, Item, Unpack>::invoke,
// registered under the hash of its mangled type (detail/registry.hpp). It
// decodes the callable and then each item, calls the callable (unpacking
// tuple items for apply/starmap), and reports each outcome through the
// worker's ItemSink (detail/item_sink.hpp): the encoded result, or the
// facts of the exception.
// Item boundaries are where the sink records progress (which item runs, so
// that a worker's death or timeout fails exactly that item).
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>
#include <tuple>
#include <type_traits>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/item_sink.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/serialize.hpp"

namespace mproc::detail {

template <class F, class Item, bool Unpack>
decltype(auto) call_item(F& f, Item& item) {
  if constexpr (Unpack) {
    return std::apply([&f](auto&... a) -> decltype(auto) { return std::invoke(f, a...); }, item);
  } else {
    return std::invoke(f, item);
  }
}

// Values that travel as their bytes and need no check on arrival (a bool
// does: only 0 and 1 are bools): chunks and results of these are copied in
// bulk.
template <class T>
inline constexpr bool is_plain_v = is_bitwise_v<T> && !std::is_same_v<T, bool>;

template <class F, class Item, bool Unpack>
struct TaskEntry {
  static void invoke(Reader& in, Writer&) {
    ItemSink& sink = *current_item_sink();
    F f = decode_value<F>(in);
    const auto count = in.read_pod<std::uint32_t>();
    if constexpr (!Unpack) {
      using R = std::decay_t<decltype(call_item<F, Item, Unpack>(f, std::declval<Item&>()))>;
      if constexpr (is_plain_v<Item> && is_plain_v<R>) {
        if (!sink.flush_each() && in.remaining() == std::size_t{count} * sizeof(Item)) {
          run_plain<R>(f, in.take(in.remaining()).data(), count, sink);
          return;
        }
      }
    }
    // One scope for the chunk: each throw records its stack, and an item's
    // exception is described before the next item runs.
    TracebackScope traceback;
    for (std::uint32_t i = 0; i < count; ++i) {
      sink.begin_item(i);
      std::optional<Item> item;
      try {
        item.emplace(decode_value<Item>(in));
      } catch (...) {
        // The rest of the message cannot be found without this item's
        // length: fail it and every item after it.
        const RemoteFacts facts = describe_current_exception();
        for (std::uint32_t k = i; k < count; ++k) {
          if (k != i) sink.begin_item(k);
          sink.fail(facts);
          sink.end_item();
        }
        return;
      }
      try {
        using R = decltype(call_item<F, Item, Unpack>(f, *item));
        if constexpr (std::is_void_v<R>) {
          call_item<F, Item, Unpack>(f, *item);
          sink.succeed();
        } else {
          std::decay_t<R> result = call_item<F, Item, Unpack>(f, *item);
          // If encoding throws halfway, fail() drops the partial bytes.
          encode_value(sink.succeed(), result);
        }
      } catch (...) {
        sink.fail(describe_current_exception());
      }
      sink.end_item();
    }
  }

 private:
  // Plain items in, plain results out (a map over numbers): items are read
  // and outcomes written in place, a run of items at a time, with the
  // per-item work cut to what a crash needs (the progress slot's index).
  // The outcomes are those the loop above would write: tag 1 and the value.
  template <class R>
  static void run_plain(F& f, const std::byte* items, std::uint32_t count, ItemSink& sink) {
    constexpr std::size_t kStep = 1 + sizeof(R);
    TracebackScope traceback;
    std::uint32_t i = 0;
    while (i < count) {
      std::uint32_t n = count - i;
      std::byte* out = sink.begin_run(i, n, kStep);
      std::uint32_t k = 0;
      try {
        for (; k < n; ++k) {
          sink.mark(i + k);
          std::array<std::byte, sizeof(Item)> raw;
          std::memcpy(raw.data(), items + std::size_t{i + k} * sizeof(Item), sizeof(Item));
          Item item = std::bit_cast<Item>(raw);
          const R result = call_item<F, Item, false>(f, item);
          out[k * kStep] = std::byte{1};
          std::memcpy(out + k * kStep + 1, &result, sizeof(R));
        }
      } catch (...) {
        sink.end_run(k, kStep);
        sink.begin_item(i + k);
        sink.fail(describe_current_exception());
        sink.end_item();
        i += k + 1;
        continue;
      }
      sink.end_run(n, kStep);
      i += n;
    }
  }
};

// Runs `initializer(initargs...)` in a worker.
template <class F, class Args>
struct InitEntry {
  static void invoke(Reader& in, Writer&) {
    F f = decode_value<F>(in);
    Args args = decode_value<Args>(in);
    std::apply([&f](auto&... a) { std::invoke(f, a...); }, args);
  }
};

}  // namespace mproc::detail
