// bench/w5_cpu_speedup/mproc.cpp: W5, the speedup of Pool(2).map over 16
// CPU-bound tasks of ~10 ms each, against running them one after another
// in the parent. The task (a xorshift chain) is calibrated at start-up to
// take ~10 ms on this machine; Python calibrates its own loop the same way,
// so both sides compare a parallel run with their own serial run.
//
//   RESULT speedup   <median serial time / median pool time> x
//   RESULT serial_ms <median serial time> ms
//   RESULT pool_ms   <median Pool.map time> ms

#include <mproc/mproc.hpp>

#include <cstdint>
#include <vector>

#include "../common/cpu_burn.hpp"
#include "../common/harness.hpp"


int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  const int tasks = 16;
  const int pairs = args.quick ? 1 : 3;
  const std::vector<std::uint64_t> work(tasks, bench::calibrate_burn(0.010));

  mproc::Pool pool(static_cast<std::size_t>(args.processes));
  (void)pool.map(bench::burn, work);  // warm-up
  std::vector<double> serial;
  std::vector<double> parallel;
  std::uint64_t check = 0;
  for (int p = 0; p < pairs; ++p) {
    double t0 = bench::now();
    std::uint64_t s = 0;
    for (std::uint64_t w : work) s += bench::burn(w);
    serial.push_back(bench::now() - t0);
    t0 = bench::now();
    std::uint64_t q = 0;
    for (std::uint64_t r : pool.map(bench::burn, work)) q += r;
    parallel.push_back(bench::now() - t0);
    check |= s ^ q;
  }
  pool.close();
  pool.join();
  if (check != 0) bench::fail("the pool computed different results");
  bench::result("speedup", bench::median(serial) / bench::median(parallel), "x");
  bench::result("serial_ms", bench::median(serial) * 1e3, "ms");
  bench::result("pool_ms", bench::median(parallel) * 1e3, "ms");
}
