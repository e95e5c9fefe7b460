// bench/w3_map/mproc.cpp: W3, bulk throughput of Pool(2).map(x*x) over
// 1,000,000 ints with the automatic chunksize (len / (4 * processes), as
// in Python). Squares are 64-bit so that no input overflows. The median of
// three maps (the Python twin does the same).
//
//   RESULT items_per_s <input items per second> items/s

#include <mproc/mproc.hpp>

#include <cstdint>
#include <numeric>
#include <vector>

#include "../common/harness.hpp"

namespace {

std::int64_t square(int x) { return std::int64_t{x} * x; }

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  const int n = args.quick ? 200000 : 1000000;
  std::vector<int> xs(static_cast<std::size_t>(n));
  std::iota(xs.begin(), xs.end(), 0);
  std::vector<int> warm(xs.begin(), xs.begin() + n / 10);

  mproc::Pool pool(static_cast<std::size_t>(args.processes));
  (void)pool.map(square, warm);
  // The median of three maps (each into a fresh vector, as a caller's
  // would be): one map takes a few milliseconds here, short enough for one
  // stall of the VM to decide a single sample.
  std::vector<double> times;
  for (int i = 0; i < (args.quick ? 1 : 3); ++i) {
    const double t0 = bench::now();
    const std::vector<std::int64_t> out = pool.map(square, xs);
    times.push_back(bench::now() - t0);
    if (out.size() != xs.size() || out.back() != square(n - 1)) bench::fail("map returned wrong results");
  }
  pool.close();
  pool.join();
  bench::result("items_per_s", n / bench::median(times), "items/s");
}
