// huge_pages.cpp: see detail/huge_pages.hpp.

#include "mproc/detail/huge_pages.hpp"

#include <sys/mman.h>

#include <cstdint>

namespace mproc::detail {

void advise_huge_pages(void* p, std::size_t n) noexcept {
  if (p == nullptr || n < kHugePageAdviceMin) return;
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(kHuge - 1);
  if (end <= begin) return;
  // Errors (EINVAL where THP is compiled out) just mean no huge pages.
  (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

}  // namespace mproc::detail
