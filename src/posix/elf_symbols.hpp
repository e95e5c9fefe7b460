// elf_symbols.hpp: the function symbols of a loaded module, read from its
// ELF file (.symtab and .dynsym). Used to check that a function offset
// received from another process is the start of a real function, and to
// name the frames of a captured stack.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mproc::detail {

struct ElfFunction {
  std::uint64_t offset;  // st_value: relative to the module's load base
  std::uint64_t size;
  std::string name;  // mangled
};

// Sorted by offset; empty if the file cannot be read. `module` is "" for
// the main program.
std::vector<ElfFunction> read_function_symbols(const std::string& module);

// The function that contains `offset`, or nullptr.
const ElfFunction* find_containing(const std::vector<ElfFunction>& table, std::uint64_t offset);

}  // namespace mproc::detail
