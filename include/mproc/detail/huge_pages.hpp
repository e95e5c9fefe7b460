// detail/huge_pages.hpp: asking for transparent huge pages for big buffers.
//
// A fresh buffer costs a page fault per 4 KiB page on first touch: for the
// 8 MiB output of a large map that is 2048 faults, more than the copying
// itself on a VM. Where the kernel gives huge pages on request only
// (/sys/kernel/mm/transparent_hugepage/enabled = madvise, Debian's
// default), advising a big buffer before its first touch makes that 4
// faults. A hint only: it does nothing where huge pages are off or always
// on, and costs one system call per big allocation.
//
// Used for a big map's output only. Tried and dropped for message buffers
// (Writer's growing buffers, receive buffers): W10 (8 MiB payloads) ran
// faster on average with the advice there, but 1 run in 4 at less than half
// speed (the kernel zeroing fresh huge pages: clear_page_erms 57% of the
// samples), and steadier and as fast without once receive buffers stopped
// being zero-filled by us.
#pragma once

#include <cstddef>

namespace mproc::detail {

// Buffers smaller than this are left alone (at most two huge pages' worth
// of memory could be wasted on rounding otherwise).
inline constexpr std::size_t kHugePageAdviceMin = std::size_t{4} << 20;

// Advises the 2 MiB-aligned part of [p, p + n) for huge pages, if n is at
// least kHugePageAdviceMin. Call before the memory is first written.
void advise_huge_pages(void* p, std::size_t n) noexcept;

}  // namespace mproc::detail
