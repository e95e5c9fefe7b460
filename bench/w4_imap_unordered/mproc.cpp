// bench/w4_imap_unordered/mproc.cpp: W4, per-task overhead when tasks are
// tiny: Pool(2).imap_unordered(x*x) over 100,000 ints with chunksize 1,
// the input a lazy std::views::iota.
//
//   RESULT tasks_per_s <tasks per second> tasks/s

#include <mproc/mproc.hpp>

#include <cstdint>
#include <ranges>

#include "../common/harness.hpp"

namespace {

std::int64_t square(int x) { return std::int64_t{x} * x; }

std::int64_t run(mproc::Pool& pool, int n) {
  std::int64_t sum = 0;
  for (std::int64_t v : pool.imap_unordered(square, std::views::iota(0, n), 1)) sum += v;
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  const int n = args.quick ? 20000 : 100000;
  mproc::Pool pool(static_cast<std::size_t>(args.processes));
  run(pool, n / 10);
  const double t0 = bench::now();
  const std::int64_t sum = run(pool, n);
  const double t1 = bench::now();
  pool.close();
  pool.join();
  const std::int64_t m = n - 1;
  if (sum != m * (m + 1) * (2 * m + 1) / 6) bench::fail("imap_unordered lost or duplicated results");
  bench::result("tasks_per_s", n / (t1 - t0), "tasks/s");
}
