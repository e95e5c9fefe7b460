// loaded_modules.hpp: which loaded module (the main program or a shared
// library) holds an address, and where a module is loaded.
//
// dl_iterate_phdr holds a lock of the dynamic loader for its whole walk, and
// glibc's fork does not reset that lock in the child: a child forked while
// another thread was walking would wait for ever at its first walk (a pool
// worker symbolizing its task's exception, say). module_containing takes
// no lock (_dl_find_object, glibc 2.35). module_base reads the loader's
// list without the lock when this process has one thread, else it walks;
// loaded_modules walks (the function-id cache calls it before main).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mproc::detail {

struct LoadedModule {
  std::string name;  // "" for the main program, else the path it was loaded by
  std::uintptr_t base = 0;  // load bias: an address minus base is its offset in the file
};

// The module whose mapping holds `addr`; nullopt if none does.
std::optional<LoadedModule> module_containing(std::uintptr_t addr);

// Where the module `name` ("" for the main program) is loaded; nullopt if
// it is not loaded in this process.
std::optional<std::uintptr_t> module_base(const std::string& name);

// Every module loaded now, the main program first.
std::vector<LoadedModule> loaded_modules();

}  // namespace mproc::detail
