// function_id.cpp: function pointers as (module, offset), checked against
// the module's ELF symbol table (detail/function_id.hpp).

#include "mproc/detail/function_id.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "mproc/errors.hpp"
#include "posix/elf_symbols.hpp"
#include "posix/loaded_modules.hpp"

namespace mproc::detail {
namespace {

struct Cache {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<ElfFunction>> symbols;
  std::unordered_map<std::uintptr_t, std::pair<std::string, std::uint64_t>> by_address;
  std::unordered_map<std::string, std::uintptr_t> bases;
};

Cache& cache() {
  static Cache* c = [] {
    auto* created = new Cache;
    // Every module loaded at start, found now: a fork child that decodes a
    // function then needs no walk of the loader's list (whose lock a parent
    // thread may have held at the fork, loaded_modules.hpp).
    for (auto& m : loaded_modules()) created->bases.emplace(std::move(m.name), m.base);
    // Pool workers forked from a threaded parent decode functions; they must
    // not inherit this lock held by a parent thread that does not exist in
    // the child.
    pthread_atfork(nullptr, nullptr, [] { new (&cache().mu) std::mutex; });
    return created;
  }();
  return *c;
}

// Made before main, while the program has one thread. A function-local
// static is guarded: were a thread still making it when another forks, the
// child would wait for ever on the guard of a maker that does not exist there.
[[maybe_unused]] const Cache& g_cache_at_load = cache();

bool is_function_start(Cache& c, const std::string& module, std::uint64_t offset) {
  auto it = c.symbols.find(module);
  if (it == c.symbols.end()) it = c.symbols.emplace(module, read_function_symbols(module)).first;
  const ElfFunction* f = find_containing(it->second, offset);
  return f != nullptr && f->offset == offset;
}

}  // namespace

void encode_function(Writer& w, AnyFunction f) {
  if (f == nullptr) {
    w.write_pod(std::uint8_t{0});
    return;
  }
  Cache& c = cache();
  std::unique_lock lock(c.mu);
  const auto addr = reinterpret_cast<std::uintptr_t>(f);
  auto hit = c.by_address.find(addr);
  if (hit == c.by_address.end()) {
    std::optional<LoadedModule> found = module_containing(addr);
    if (!found) {
      throw SerializationError("mproc: cannot send a function pointer that is in no loaded module");
    }
    std::string module = std::move(found->name);
    const std::uint64_t offset = addr - found->base;
    if (!is_function_start(c, module, offset)) {
      throw SerializationError(
          "mproc: cannot identify the function at offset " + std::to_string(offset) + " of " +
          (module.empty() ? std::string("the main program") : module) +
          ": it is not in the module's symbol table (is the binary stripped?). Keep symbols "
          "(do not strip), or pass a lambda instead, which is identified by its type");
    }
    hit = c.by_address.emplace(addr, std::make_pair(std::move(module), offset)).first;
  }
  w.write_pod(std::uint8_t{1});
  w.write_size(hit->second.first.size());
  w.write(hit->second.first.data(), hit->second.first.size());
  w.write_pod(hit->second.second);
}

AnyFunction decode_function(Reader& r) {
  const auto present = r.read_pod<std::uint8_t>();
  if (present == 0) return nullptr;
  if (present != 1) throw SerializationError("mproc: malformed message: bad function tag");
  const std::size_t n = r.read_count(1);
  if (n > 4096) throw SerializationError("mproc: malformed message: module name too long");
  auto bytes = r.take(n);
  std::string module(reinterpret_cast<const char*>(bytes.data()), n);
  const auto offset = r.read_pod<std::uint64_t>();

  Cache& c = cache();
  std::lock_guard lock(c.mu);
  auto base_it = c.bases.find(module);
  if (base_it == c.bases.end()) {
    const std::optional<std::uintptr_t> base = module_base(module);
    if (!base) {
      throw SerializationError("mproc: message names a function in '" + module +
                               "', which is not loaded in this process");
    }
    base_it = c.bases.emplace(module, *base).first;
  }
  // The check that makes a forged message harmless: only the exact start of
  // a known function symbol is ever turned into a pointer.
  if (!is_function_start(c, module, offset)) {
    throw SerializationError("mproc: message names no function (offset " +
                             std::to_string(offset) + ")");
  }
  return reinterpret_cast<AnyFunction>(base_it->second + offset);
}

}  // namespace mproc::detail
