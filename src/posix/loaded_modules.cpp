// loaded_modules.cpp: see loaded_modules.hpp.

#include "posix/loaded_modules.hpp"

#include <fcntl.h>
#include <link.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

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

// The number of threads of this process (/proc/self/stat, field 20); 0 if
// it cannot be read.
int threads_in_this_process() noexcept {
  const int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // After the command name, in parentheses (which may hold anything), come
  // field 3 (state) onwards.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return 0;
  for (int field = 2; field < 20 && p != nullptr; ++field) p = std::strchr(p + 1, ' ');
  return p != nullptr ? std::atoi(p + 1) : 0;
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
  // Alone in the process (a worker forked from a threaded parent, say), no
  // one can change the loader's list under us, and its lock may be held by
  // a thread that does not exist here: read the list without it.
  if (threads_in_this_process() == 1) {
    bool is_main = true;  // the main program is always listed first
    for (const link_map* m = _r_debug.r_map; m != nullptr; m = m->l_next) {
      const std::string m_name = is_main || m->l_name == nullptr ? std::string() : std::string(m->l_name);
      if (m_name == name) return m->l_addr;
      is_main = false;
    }
    return std::nullopt;
  }
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
