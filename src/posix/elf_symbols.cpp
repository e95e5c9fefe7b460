// elf_symbols.cpp: reading function symbols from an ELF file (elf_symbols.hpp).
// Every offset and count in the file is checked against its size: the file
// is trusted, but a truncated or odd one must not crash us.

#include "elf_symbols.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace mproc::detail {

std::vector<ElfFunction> read_function_symbols(const std::string& module) {
  const std::string path = module.empty() ? "/proc/self/exe" : module;
  std::vector<ElfFunction> out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    ::close(fd);
    return out;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return out;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  const bool sane = std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
                    eh->e_ident[EI_CLASS] == ELFCLASS64 && eh->e_shentsize == sizeof(Elf64_Shdr) &&
                    eh->e_shoff < size && eh->e_shnum <= (size - eh->e_shoff) / sizeof(Elf64_Shdr);
  if (sane) {
    const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; ++i) {
      if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
      if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset) continue;
      if (sh[i].sh_link >= eh->e_shnum) continue;
      const Elf64_Shdr& strtab = sh[sh[i].sh_link];
      if (strtab.sh_offset > size || strtab.sh_size > size - strtab.sh_offset) continue;
      const char* names = reinterpret_cast<const char*>(base + strtab.sh_offset);
      const auto* sym = reinterpret_cast<const Elf64_Sym*>(base + sh[i].sh_offset);
      const std::size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
      for (std::size_t k = 0; k < n; ++k) {
        const unsigned type = ELF64_ST_TYPE(sym[k].st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym[k].st_shndx == SHN_UNDEF ||
            sym[k].st_value == 0) {
          continue;
        }
        std::string name;
        if (sym[k].st_name < strtab.sh_size) {
          const char* s = names + sym[k].st_name;
          name.assign(s, strnlen(s, strtab.sh_size - sym[k].st_name));
        }
        out.push_back(ElfFunction{sym[k].st_value, sym[k].st_size, std::move(name)});
      }
    }
  }
  ::munmap(map, size);
  std::sort(out.begin(), out.end(),
            [](const ElfFunction& a, const ElfFunction& b) { return a.offset < b.offset; });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const ElfFunction& a, const ElfFunction& b) { return a.offset == b.offset; }),
            out.end());
  return out;
}

const ElfFunction* find_containing(const std::vector<ElfFunction>& table, std::uint64_t offset) {
  auto it = std::upper_bound(table.begin(), table.end(), offset,
                             [](std::uint64_t o, const ElfFunction& f) { return o < f.offset; });
  if (it == table.begin()) return nullptr;
  --it;
  if (offset < it->offset + std::max<std::uint64_t>(it->size, 1)) return &*it;
  return nullptr;
}

}  // namespace mproc::detail
