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

#include "../common/cpu_burn.hpp"
#include "raw.hpp"


int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  const int tasks = 16;
  const int pairs = args.quick ? 1 : 3;
  const std::uint64_t work = bench::calibrate_burn(0.010);
  std::vector<double> serial;
  std::vector<double> split;
  for (int p = 0; p < pairs; ++p) {
    double t0 = bench::now();
    for (int i = 0; i < tasks; ++i) {
      volatile std::uint64_t sink = bench::burn(work);
      (void)sink;
    }
    serial.push_back(bench::now() - t0);
    t0 = bench::now();
    pid_t half[2];
    for (pid_t& pid : half) {
      pid = bench::raw::fork_child([&] {
        for (int i = 0; i < tasks / 2; ++i) {
          volatile std::uint64_t sink = bench::burn(work);
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
