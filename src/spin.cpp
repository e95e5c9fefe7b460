// spin.cpp: the spin budget (detail/spin.hpp).

#include "mproc/detail/spin.hpp"

#include <cstdlib>

namespace mproc::detail {

std::uint64_t spin_ns_from_env() noexcept {
  if (const char* v = std::getenv("MPROC_SPIN_US")) {
    char* end = nullptr;
    const long long us = std::strtoll(v, &end, 10);
    if (end != v && *end == '\0' && us >= 0 && us <= 1000000) return static_cast<std::uint64_t>(us) * 1000;
  }
  return kDefaultSpinNs;
}

std::uint64_t max_spin_ns() noexcept {
  static const std::uint64_t ns = spin_ns_from_env();
  return ns;
}

namespace {
// Made before main, while the program has one thread. A function-local
// static is guarded: were a thread still making it when another forks, the
// child would wait for ever on the guard of a maker that does not exist there.
[[maybe_unused]] const std::uint64_t g_spin_ns_at_load = max_spin_ns();
}  // namespace

}  // namespace mproc::detail
