// fuzz_function_id.cpp: libFuzzer target for function identities
// (detail::decode_function, detail/function_id.hpp).
//
// A function pointer crosses a process boundary as (module path, offset);
// the receiver turns it back into a pointer only if the offset is the start
// of a function symbol of a module loaded in the receiver. This is the check
// that keeps a forged frame from making a worker jump anywhere it likes, so
// the target checks the promise from outside, without trusting the
// library's own symbol table reader:
//  - decode_function either throws SerializationError or returns a pointer
//    (null only for the explicit "no function" tag);
//  - a returned pointer lies in an executable PT_LOAD segment of a loaded
//    module (dl_iterate_phdr), and dladdr() agrees it is inside that module;
//  - encoding the returned pointer again gives exactly the bytes that were
//    consumed (same module, same offset).
// The pointer is never called.
//
// Seeds: fuzz/corpus/fuzz_function_id/ (regenerate with
// MPROC_FUZZ_WRITE_SEEDS=<dir> ./fuzz_function_id). They hold offsets of
// this build of the target; after a rebuild they are still useful as
// starting shapes.

#include <mproc/detail/function_id.hpp>
#include <mproc/errors.hpp>

#include <dlfcn.h>
#include <link.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_function_id: %s\n", what);
  std::abort();
}

struct ExecQuery {
  std::uintptr_t addr;
  bool found = false;
};

int in_executable_segment(dl_phdr_info* info, std::size_t, void* data) {
  auto* q = static_cast<ExecQuery*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (q->addr >= lo && q->addr < lo + ph.p_memsz) {
      q->found = true;
      return 1;
    }
  }
  return 0;
}

// Functions whose identities seed the corpus: one in the main program, one
// in a shared library (libc), and one with C++ linkage.
extern "C" int seed_function_c(int x) { return x + 1; }
int seed_function_cpp(const std::string& s) { return static_cast<int>(s.size()); }

void write_seed(const char* dir, const char* name, mproc::detail::AnyFunction f) {
  mproc::detail::Writer w;
  mproc::detail::encode_function(w, f);
  std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(w.bytes().data()), static_cast<std::streamsize>(w.size()));
}

void write_seeds(const char* dir) {
  using mproc::detail::AnyFunction;
  write_seed(dir, "null", nullptr);
  write_seed(dir, "main_c", reinterpret_cast<AnyFunction>(&seed_function_c));
  write_seed(dir, "main_cpp", reinterpret_cast<AnyFunction>(&seed_function_cpp));
  // A libc function, looked up in libc itself so that the pointer is the
  // function in libc.so.6 (not a PLT stub, nor a sanitizer's interceptor of
  // the same name in this program).
  if (void* libc = ::dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD)) {
    if (void* fn = ::dlsym(libc, "strverscmp")) {
      write_seed(dir, "libc_strverscmp", reinterpret_cast<AnyFunction>(fn));
    }
    ::dlclose(libc);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("MPROC_FUZZ_WRITE_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  mproc::detail::Reader r(bytes);
  mproc::detail::AnyFunction f = nullptr;
  try {
    f = mproc::detail::decode_function(r);
  } catch (const mproc::SerializationError&) {
    return 0;  // the one allowed failure
  }
  const std::span<const std::byte> consumed = bytes.first(r.position());
  if (f == nullptr) {
    if (consumed.size() != 1 || data[0] != 0) bug("null returned for something but the null tag");
    return 0;
  }

  const auto addr = reinterpret_cast<std::uintptr_t>(f);
  ExecQuery q{addr};
  dl_iterate_phdr(in_executable_segment, &q);
  if (!q.found) bug("decoded pointer is not in an executable segment of a loaded module");
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(f), &info) == 0) bug("dladdr does not know the decoded pointer");

  mproc::detail::Writer again;
  try {
    mproc::detail::encode_function(again, f);
  } catch (const mproc::SerializationError&) {
    bug("a decoded function cannot be encoded again");
  }
  if (again.size() != consumed.size() ||
      std::memcmp(again.bytes().data(), consumed.data(), consumed.size()) != 0) {
    bug("re-encoding the decoded function gives other bytes");
  }
  return 0;
}
