// bench/w10_map_payloads/mproc.cpp: W10, moving big arguments to workers:
// Pool(2).map over 32 payloads of 8 MiB each, every task returning its
// payload's size (automatic chunksize). GB/s of payload handed to the
// workers; the ceiling is memcpy of 8 MiB buffers
// (bench/reference/memcpy_bandwidth.cpp).
//
//   RESULT gb_per_s <10^9 payload bytes per second> GB/s

#include <mproc/mproc.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../common/harness.hpp"

namespace {

constexpr std::size_t kPayload = std::size_t{8} << 20;

std::size_t payload_size(const std::vector<std::uint8_t>& p) { return p.size(); }

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  const int count = args.quick ? 8 : 32;
  std::vector<std::vector<std::uint8_t>> payloads;
  for (int i = 0; i < count; ++i) payloads.emplace_back(kPayload, static_cast<std::uint8_t>(i));
  std::vector<std::vector<std::uint8_t>> warm(payloads.begin(), payloads.begin() + 4);

  mproc::Pool pool(static_cast<std::size_t>(args.processes));
  (void)pool.map(payload_size, warm);
  const double t0 = bench::now();
  const std::vector<std::size_t> sizes = pool.map(payload_size, payloads);
  const double t1 = bench::now();
  pool.close();
  pool.join();
  std::size_t total = 0;
  for (std::size_t s : sizes) total += s;
  if (total != kPayload * static_cast<std::size_t>(count)) bench::fail("map returned wrong sizes");
  bench::result("gb_per_s", static_cast<double>(total) / (t1 - t0) / 1e9, "GB/s");
}
