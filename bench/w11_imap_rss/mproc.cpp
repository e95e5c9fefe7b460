// bench/w11_imap_rss/mproc.cpp: W11, imap keeps the parent's memory flat:
// Pool(2).imap(x*x) over a lazy range of 10,000,000 ints (chunksize 1000
// on both sides, so that Python finishes in seconds), consumed as it
// comes. The parent's peak RSS (VmHWM) is reset to its current RSS just
// before (/proc/self/clear_refs) and read after; the difference is what
// the run added at its peak.
//
//   RESULT rss_growth_mib <peak RSS growth of the parent> MiB
//   RESULT items_per_s    <items per second>               items/s

#include <mproc/mproc.hpp>

#include <cstdint>
#include <ranges>

#include "../common/harness.hpp"

namespace {

std::int64_t square(int x) { return std::int64_t{x} * x; }

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  const int n = args.quick ? 1000000 : 10000000;
  const std::size_t chunksize = 1000;
  mproc::Pool pool(static_cast<std::size_t>(args.processes));
  for (std::int64_t v : pool.imap(square, std::views::iota(0, 100000), chunksize)) (void)v;  // warm-up

  bench::reset_peak_rss();
  const long before = bench::status_kib("VmHWM");
  const double t0 = bench::now();
  std::int64_t expect = 0;
  for (std::int64_t v : pool.imap(square, std::views::iota(0, n), chunksize)) {
    if (v != expect * expect) bench::fail("imap: results out of order");
    ++expect;
  }
  const double t1 = bench::now();
  const long after = bench::status_kib("VmHWM");
  pool.close();
  pool.join();
  if (expect != n) bench::fail("imap: missing results");
  bench::result("rss_growth_mib", static_cast<double>(after - before) / 1024.0, "MiB");
  bench::result("items_per_s", n / (t1 - t0), "items/s");
}
