// bench/w12_mpi/mproc.cpp: W12, mproc::mpi::Pool across MPI ranks, next to
// mpi4py.futures.MPIPoolExecutor (mpi4py_futures.py, the same work and the
// same metrics). Run under mpirun, 4 ranks: rank 0 measures, ranks 1-3 are
// the pool's workers (mproc::mpi::init never returns on them).
//
//   mpirun --oversubscribe -n 4 build/bench/bench/bench_w12_mpi [--quick]
//
//   RESULT roundtrip_us      <mean us per apply(square, i), one in flight> us
//   RESULT map_tasks_per_s   <items per second of map(square) over small ints> tasks/s
//   RESULT map_chunksize     <the chunksize that map used> items
//   RESULT payload_mb_per_s  <10^6 payload bytes per second: map over 1 MiB
//                             byte vectors, each task returning its size> MB/s
//   RESULT echo_mb_per_s     <the same, each task returning its payload:
//                             every byte crosses twice, counted once> MB/s
//   RESULT workers           <worker ranks in the pool> ranks
//
// Sizes: --quick for a smoke run; --roundtrips N, --items N, --chunksize N
// (0 = automatic, len / (4 * workers) as in Python), --payloads N override
// them (for profiling by hand). The payload maps use chunksize 1: one 1 MiB
// message per task, as mpi4py's map does by default.

#include <mproc/mpi.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include "../common/harness.hpp"

namespace {

constexpr std::size_t kPayload = std::size_t{1} << 20;

std::int64_t square(int x) { return std::int64_t{x} * x; }
std::size_t payload_size(const std::vector<std::byte>& p) { return p.size(); }
std::vector<std::byte> echo(const std::vector<std::byte>& p) { return p; }

// The value of `--name N` on the command line, or `fallback`.
long option(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::mpi::init(argc, argv);  // ranks > 0 serve the pool inside and exit
  const bench::Args args = bench::parse_args(argc, argv);
  const long roundtrips = option(argc, argv, "--roundtrips", args.quick ? 500 : 5000);
  const long items = option(argc, argv, "--items", args.quick ? 20000 : 100000);
  const long chunk_opt = option(argc, argv, "--chunksize", 0);
  const long payloads = option(argc, argv, "--payloads", args.quick ? 16 : 64);
  if (roundtrips < 1 || items < 1 || chunk_opt < 0 || payloads < 1) bench::fail("sizes must be positive");

  mproc::mpi::Pool pool;  // one worker per rank > 0
  const std::size_t workers = pool.processes();

  // (a) Latency: one small task in flight at a time.
  for (long i = 0; i < roundtrips / 10 + 10; ++i) (void)pool.apply(square, static_cast<int>(i));
  double t0 = bench::now();
  std::int64_t sum = 0;
  for (long i = 0; i < roundtrips; ++i) sum += pool.apply(square, static_cast<int>(i));
  double t1 = bench::now();
  if (sum <= 0) bench::fail("apply returned wrong results");
  const double roundtrip_us = (t1 - t0) / static_cast<double>(roundtrips) * 1e6;

  // (b) Throughput of small tasks.
  std::vector<int> xs(static_cast<std::size_t>(items));
  std::iota(xs.begin(), xs.end(), 0);
  const std::size_t chunksize = chunk_opt > 0 ? static_cast<std::size_t>(chunk_opt)
                                              : (xs.size() + 4 * workers - 1) / (4 * workers);
  (void)pool.map(square, std::vector<int>(xs.begin(), xs.begin() + items / 10 + 1), chunksize);
  t0 = bench::now();
  const std::vector<std::int64_t> squares = pool.map(square, xs, chunksize);
  t1 = bench::now();
  if (squares.size() != xs.size() || squares.back() != square(xs.back())) bench::fail("map returned wrong results");
  const double tasks_per_s = static_cast<double>(items) / (t1 - t0);

  // (c) Bandwidth: 1 MiB arguments, a size back; then the payload back too.
  std::vector<std::vector<std::byte>> data;
  for (long i = 0; i < payloads; ++i) data.emplace_back(kPayload, static_cast<std::byte>(i));
  const std::vector<std::vector<std::byte>> warm(data.begin(), data.begin() + static_cast<long>(workers));
  (void)pool.map(payload_size, warm, 1);
  t0 = bench::now();
  const std::vector<std::size_t> sizes = pool.map(payload_size, data, 1);
  t1 = bench::now();
  std::size_t total = 0;
  for (std::size_t s : sizes) total += s;
  if (total != kPayload * data.size()) bench::fail("map returned wrong sizes");
  const double payload_mb_per_s = static_cast<double>(total) / (t1 - t0) / 1e6;

  (void)pool.map(echo, warm, 1);
  t0 = bench::now();
  const std::vector<std::vector<std::byte>> back = pool.map(echo, data, 1);
  t1 = bench::now();
  if (back.size() != data.size() || back.back() != data.back()) bench::fail("echo returned wrong payloads");
  const double echo_mb_per_s = static_cast<double>(kPayload * data.size()) / (t1 - t0) / 1e6;

  pool.close();
  pool.join();
  bench::result("roundtrip_us", roundtrip_us, "us");
  bench::result("map_tasks_per_s", tasks_per_s, "tasks/s");
  bench::result("map_chunksize", static_cast<double>(chunksize), "items");
  bench::result("payload_mb_per_s", payload_mb_per_s, "MB/s");
  bench::result("echo_mb_per_s", echo_mb_per_s, "MB/s");
  bench::result("workers", static_cast<double>(workers), "ranks");
}
