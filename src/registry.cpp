// registry.cpp: the table of invokers a message may name (detail/registry.hpp).

#include "mproc/detail/registry.hpp"

#include <pthread.h>

#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

namespace mproc::detail {
namespace {

struct Table {
  std::mutex mu;
  std::unordered_map<std::uint64_t, Invoker> entries;
  std::unordered_map<std::uint64_t, std::string> names;  // to tell collisions apart
  std::unordered_map<std::uint64_t, bool> ambiguous;
};

Table& table() {
  // Never destroyed: invokers may be looked up while static objects of the
  // program are being torn down.
  static Table* t = [] {
    auto* created = new Table;
    // A child forked while another thread held the lock must not inherit it
    // locked: give the child a fresh mutex.
    pthread_atfork(nullptr, nullptr, [] { new (&table().mu) std::mutex; });
    return created;
  }();
  return *t;
}

// Made before main, while the program has one thread. A function-local
// static is guarded: were a thread still making it when another forks, the
// child would wait for ever on the guard of a maker that does not exist there.
[[maybe_unused]] const Table& g_table_at_load = table();

// FNV-1a: stable across processes and builds of the same binary.
std::uint64_t hash_name(const char* s) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (; *s; ++s) {
    h ^= static_cast<unsigned char>(*s);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::uint64_t register_invoker(const char* mangled_name, Invoker fn) noexcept {
  const std::uint64_t key = hash_name(mangled_name);
  Table& t = table();
  std::lock_guard lock(t.mu);
  auto [it, inserted] = t.entries.emplace(key, fn);
  if (inserted) {
    t.names.emplace(key, mangled_name);
  } else if (it->second != fn) {
    // Two different invokers under one key: two types hash alike, or two
    // types in anonymous namespaces of different translation units share a
    // mangled name. Refuse to guess which one a message means.
    t.ambiguous[key] = true;
  }
  return key;
}

Invoker find_invoker(std::uint64_t key) {
  Table& t = table();
  std::lock_guard lock(t.mu);
  auto it = t.entries.find(key);
  if (it == t.entries.end()) {
    throw SerializationError("mproc: message names an unknown entry point (key " +
                             std::to_string(key) +
                             "); sender and receiver must run the same binary");
  }
  if (t.ambiguous.count(key)) {
    throw SerializationError("mproc: entry point '" + t.names[key] +
                             "' is ambiguous in this binary (two types share its name, e.g. "
                             "in anonymous namespaces); give the callable a unique name");
  }
  return it->second;
}

}  // namespace mproc::detail
