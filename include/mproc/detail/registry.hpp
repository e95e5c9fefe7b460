// detail/registry.hpp: entry points that a message may name.
//
// A child started with spawn or forkserver, and every pool worker, receives
// messages that say "run this": the message names an *invoker*, a function
// instantiated from a template for one callable type and argument list
// (decode the callable, decode the arguments, call, encode the result). Its
// address differs between processes, so it is named by a 64-bit key: the
// hash of its mangled type name, which is the same in every process that
// runs the same binary. Invokers register themselves during static
// initialisation, so the table is complete when main() runs; a key that is
// not in the table (or that two types share) is refused with
// SerializationError rather than called.
#pragma once

#include <cstdint>
#include <typeinfo>

#include "mproc/detail/buffer.hpp"

namespace mproc::detail {

// Reads its arguments from `in` and writes its result (if any) to `out`.
using Invoker = void (*)(Reader& in, Writer& out);

std::uint64_t register_invoker(const char* mangled_name, Invoker fn) noexcept;
Invoker find_invoker(std::uint64_t key);

// Registered<Entry>::key names Entry::invoke. Using `key` anywhere makes the
// compiler instantiate it, and its initialiser registers the entry before
// main() in every process started from this binary.
template <class Entry>
struct Registered {
  static inline const std::uint64_t key = register_invoker(typeid(Entry).name(), &Entry::invoke);
};

}  // namespace mproc::detail
