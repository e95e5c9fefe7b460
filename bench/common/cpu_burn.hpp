// bench/common/cpu_burn.hpp: W5's CPU-bound task, shared by the mproc
// program (bench/w5_cpu_speedup/mproc.cpp) and its reference (two raw
// forked processes, bench/reference/fork_split_speedup.cpp), so that both
// time the very same work. The Python twin calibrates its own loop the
// same way.
#pragma once

#include <cstdint>
#include <vector>

#include "harness.hpp"

namespace bench {

// A xorshift chain: pure register arithmetic, no memory.
inline std::uint64_t burn(std::uint64_t iterations) {
  std::uint64_t x = 88172645463325252ULL;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

// Iterations of burn() that take about `seconds` here (median of a few
// probes).
inline std::uint64_t calibrate_burn(double seconds) {
  const std::uint64_t probe = 1000000;
  std::vector<double> t;
  for (int i = 0; i < 5; ++i) {
    const double t0 = now();
    volatile std::uint64_t sink = burn(probe);
    (void)sink;
    t.push_back(now() - t0);
  }
  return static_cast<std::uint64_t>(static_cast<double>(probe) * seconds / median(t));
}

}  // namespace bench
