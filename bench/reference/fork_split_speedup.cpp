// bench/reference/fork_split_speedup.cpp: the speedup two raw forked
// processes reach on W5's work, the machine's own limit for W5: the same 16
// CPU-bound tasks of ~10 ms (the same xorshift chain, calibrated the same
// way), run one after another, against two fork()ed children running 8 each
// (a static split, no messages, no pool), timed to the last waitpid.
//
// On a VM whose two vCPUs do not deliver twice one vCPU's work (steal time,
// the host's other guests) this is below 2, and W5 can be read against it.
//
//   RESULT speedup   <median serial time / median time of the two children> x
//   RESULT serial_ms <median serial time> ms
//   RESULT split_ms  <median time of the two children> ms

#include <cstdint>
#include <vector>

#include "raw.hpp"

namespace {

std::uint64_t burn(std::uint64_t iterations) {
  std::uint64_t x = 88172645463325252ULL;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

// Iterations that take about `seconds` here (median of a few probes).
std::uint64_t calibrate(double seconds) {
  const std::uint64_t probe = 1000000;
  std::vector<double> t;
  for (int i = 0; i < 5; ++i) {
    const double t0 = bench::now();
    volatile std::uint64_t sink = burn(probe);
    (void)sink;
    t.push_back(bench::now() - t0);
  }
  return static_cast<std::uint64_t>(static_cast<double>(probe) * seconds / bench::median(t));
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  const int tasks = 16;
  const int pairs = args.quick ? 1 : 3;
  const std::uint64_t work = calibrate(0.010);
  std::vector<double> serial;
  std::vector<double> split;
  for (int p = 0; p < pairs; ++p) {
    double t0 = bench::now();
    for (int i = 0; i < tasks; ++i) {
      volatile std::uint64_t sink = burn(work);
      (void)sink;
    }
    serial.push_back(bench::now() - t0);
    t0 = bench::now();
    pid_t half[2];
    for (pid_t& pid : half) {
      pid = bench::raw::fork_child([&] {
        for (int i = 0; i < tasks / 2; ++i) {
          volatile std::uint64_t sink = burn(work);
          (void)sink;
        }
      });
    }
    for (pid_t pid : half) bench::raw::reap(pid);
    split.push_back(bench::now() - t0);
  }
  bench::result("speedup", bench::median(serial) / bench::median(split), "x");
  bench::result("serial_ms", bench::median(serial) * 1e3, "ms");
  bench::result("split_ms", bench::median(split) * 1e3, "ms");
}
