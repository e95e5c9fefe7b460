// bench/reference/memcpy_bandwidth.cpp: memcpy bandwidth between two
// pre-faulted 8 MiB buffers, the ceiling for moving a payload that is
// already in memory (W10 sends 8 MiB payloads to pool workers). Counts the
// bytes copied (not read + written).
//
//   RESULT gb_per_s <10^9 bytes copied per second> GB/s

#include <cstring>
#include <vector>

#include "raw.hpp"

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  constexpr std::size_t kSize = std::size_t{8} << 20;
  const int copies = args.quick ? 40 : 200;
  // std::vector value-initialises: every page is touched before timing.
  std::vector<unsigned char> src(kSize);
  std::vector<unsigned char> dst(kSize);
  for (std::size_t i = 0; i < kSize; ++i) src[i] = static_cast<unsigned char>(i * 131);
  for (int i = 0; i < 4; ++i) std::memcpy(dst.data(), src.data(), kSize);  // warm-up
  const double t0 = bench::now();
  for (int i = 0; i < copies; ++i) {
    src[static_cast<std::size_t>(i)] ^= 1;  // a dependency the compiler cannot fold away
    std::memcpy(dst.data(), src.data(), kSize);
  }
  const double t1 = bench::now();
  volatile unsigned char sink = dst[kSize / 2];
  (void)sink;
  bench::result("gb_per_s", static_cast<double>(kSize) * copies / (t1 - t0) / 1e9, "GB/s");
}
