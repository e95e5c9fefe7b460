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

#include <cstdint>
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

template <class F, class Item, bool Unpack>
struct TaskEntry {
  static void invoke(Reader& in, Writer&) {
    ItemSink& sink = *current_item_sink();
    F f = decode_value<F>(in);
    const auto count = in.read_pod<std::uint32_t>();
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
