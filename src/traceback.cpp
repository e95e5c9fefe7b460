// traceback.cpp: the stack at the throw, for RemoteError::traceback().
//
// By the time a catch block runs, the stack of the throw is gone. So mproc
// interposes __cxa_throw (the C++ runtime's entry point for every `throw`):
// on a thread inside a TracebackScope (a running task or Process target) it
// records the return addresses with backtrace() before handing over to the
// real __cxa_throw, found with dlsym(RTLD_NEXT). Elsewhere it only forwards.
// Frames are named later, only if the exception leaves the task, from the
// ELF symbol tables of the loaded modules (no -rdynamic needed).

#include <dlfcn.h>
#include <execinfo.h>

#include <cstdio>
#include <string>
#include <typeinfo>

#include "mproc/detail/remote_error.hpp"
#include "mproc/errors.hpp"
#include "posix/elf_symbols.hpp"
#include "posix/loaded_modules.hpp"

namespace mproc::detail {
namespace {

constexpr int kMaxFrames = 48;
thread_local bool t_capture = false;
thread_local void* t_frames[kMaxFrames];
thread_local int t_count = 0;

}  // namespace

void record_throw_stack() noexcept {
  if (!t_capture) return;
  t_capture = false;  // backtrace() may throw internally on first use; no recursion
  t_count = ::backtrace(t_frames, kMaxFrames);
  t_capture = true;
}

TracebackScope::TracebackScope() noexcept : previous_(t_capture) {
  t_capture = true;
  t_count = 0;
}
TracebackScope::~TracebackScope() { t_capture = previous_; }

// Frames of the machinery between the target and the throw site (std::invoke,
// std::function, mproc's own trampolines) say nothing to the reader; the
// frames that matter are the user's, from the throw down to the target.
bool is_plumbing(const std::string& name) {
  return name.rfind("std::", 0) == 0 || name.rfind("void std::", 0) == 0 ||
         name.find(" std::__invoke") != std::string::npos || name.rfind("_Z", 0) == 0 ||
         name.find("mproc::") != std::string::npos || name.rfind("__cxa", 0) == 0;
}

std::string captured_traceback() {
  std::string out;
  int shown = 0;
  // Frame 0 is record_throw_stack, frame 1 our __cxa_throw: skip them.
  for (int i = 2; i < t_count; ++i) {
    const auto addr = reinterpret_cast<std::uintptr_t>(t_frames[i]);
    const std::optional<LoadedModule> q = module_containing(addr - 1);  // a return address points past the call
    char buf[64];
    std::string where;
    if (!q) {
      std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(addr));
      where = buf;
    } else {
      static thread_local std::string last_module;
      static thread_local std::vector<ElfFunction> table;
      if (table.empty() || last_module != q->name) {
        table = read_function_symbols(q->name);
        last_module = q->name;
      }
      const ElfFunction* f = find_containing(table, addr - 1 - q->base);
      if (f != nullptr && !f->name.empty()) {
        const std::string name = demangle(f->name.c_str());
        // Where mproc called the target: nothing below it is the user's.
        if (name.find("mproc::detail::run_target") != std::string::npos || name == "main") {
          if (name == "main") out += "  #" + std::to_string(shown++) + " main\n";
          break;
        }
        if (is_plumbing(name)) continue;
        std::snprintf(buf, sizeof buf, "+0x%lx", static_cast<unsigned long>(addr - q->base - f->offset));
        where = name + buf;
      } else {
        std::snprintf(buf, sizeof buf, "+0x%lx", static_cast<unsigned long>(addr - q->base));
        where = (q->name.empty() ? std::string("<main program>") : q->name) + buf;
      }
    }
    out += "  #" + std::to_string(shown++) + " " + where + "\n";
  }
  t_count = 0;
  return out;
}

}  // namespace mproc::detail

extern "C" {

// The type_info argument is declared void* to match the declaration the
// compiler itself makes of __cxa_throw; the ABI is the same.
using cxa_throw_fn = void (*)(void*, void*, void (*)(void*));

namespace {
cxa_throw_fn real_cxa_throw() noexcept {
  static const cxa_throw_fn real = reinterpret_cast<cxa_throw_fn>(::dlsym(RTLD_NEXT, "__cxa_throw"));
  return real;
}

// Looked up before main, while the program has one thread. A function-local
// static is guarded: were a thread still looking it up (its first throw) when
// another forks, the child's first throw would wait for ever on the guard.
[[maybe_unused]] const cxa_throw_fn g_real_cxa_throw_at_load = real_cxa_throw();
}  // namespace

// Interposes the C++ runtime's __cxa_throw (see the file comment).
[[noreturn]] void __cxa_throw(void* obj, void* type, void (*dest)(void*)) {
  const cxa_throw_fn real = real_cxa_throw();
  mproc::detail::record_throw_stack();
  real(obj, type, dest);
  __builtin_unreachable();
}

}  // extern "C"
