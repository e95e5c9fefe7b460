// loaded_modules.cpp: see loaded_modules.hpp.

#include "posix/loaded_modules.hpp"

#include <link.h>

namespace mproc::detail {
namespace {

// One walk of dl_iterate_phdr: by address, by name, or every module.
struct Walk {
  std::uintptr_t addr = 0;
  const std::string* name = nullptr;
  bool all = false;
  std::vector<LoadedModule> found;
  bool first = true;  // the main program is always listed first
};

int visit(dl_phdr_info* info, std::size_t, void* data) {
  auto* q = static_cast<Walk*>(data);
  const bool is_main = q->first;
  q->first = false;
  std::string name = is_main ? std::string() : (info->dlpi_name ? info->dlpi_name : "");
  bool match = q->all;
  if (q->name != nullptr) {
    match = name == *q->name;
  } else {
    for (int i = 0; i < info->dlpi_phnum && !match; ++i) {
      const auto& ph = info->dlpi_phdr[i];
      const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
      match = ph.p_type == PT_LOAD && q->addr >= lo && q->addr < lo + ph.p_memsz;
    }
  }
  if (!match) return 0;
  q->found.push_back(LoadedModule{std::move(name), info->dlpi_addr});
  return q->all ? 0 : 1;
}

std::optional<LoadedModule> walk_one(Walk q) {
  dl_iterate_phdr(visit, &q);
  if (q.found.empty()) return std::nullopt;
  return std::move(q.found.front());
}

}  // namespace

std::optional<LoadedModule> module_containing(std::uintptr_t addr) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
  dl_find_object found;
  if (_dl_find_object(reinterpret_cast<void*>(addr), &found) != 0) return std::nullopt;
  const link_map* m = found.dlfo_link_map;
  // The main program's entry has an empty name, as in mproc's wire format.
  return LoadedModule{m->l_name != nullptr ? m->l_name : "", m->l_addr};
#else
  Walk q;
  q.addr = addr;
  return walk_one(std::move(q));
#endif
}

std::optional<std::uintptr_t> module_base(const std::string& name) {
  Walk q;
  q.name = &name;
  const auto found = walk_one(std::move(q));
  if (!found) return std::nullopt;
  return found->base;
}

std::vector<LoadedModule> loaded_modules() {
  Walk q;
  q.all = true;
  dl_iterate_phdr(visit, &q);
  return std::move(q.found);
}

}  // namespace mproc::detail
