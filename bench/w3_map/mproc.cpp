// bench/w3_map/mproc.cpp: W3, bulk throughput of Pool(2).map(x*x) over
// 1,000,000 ints with the automatic chunksize (len / (4 * processes), as
// in Python). Squares are 64-bit so that no input overflows.
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
  const double t0 = bench::now();
  const std::vector<std::int64_t> out = pool.map(square, xs);
  const double t1 = bench::now();
  pool.close();
  pool.join();
  if (out.size() != xs.size() || out.back() != square(n - 1)) bench::fail("map returned wrong results");
  bench::result("items_per_s", n / (t1 - t0), "items/s");
}
