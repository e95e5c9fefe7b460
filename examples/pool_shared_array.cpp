// pool_shared_array.cpp: an Array filled in parallel by pool workers. Each
// task writes its own slice of one shared block, so nothing is copied back:
// the results are simply there when the pool is done.
//
// Run it as `example_pool_shared_array [fork|spawn|forkserver]`.
// ctest-start-methods: fork spawn forkserver

#include <mproc/mproc.hpp>

#include "support/self_check.hpp"

#include <cmath>
#include <cstdio>
#include <string_view>
#include <tuple>
#include <vector>

constexpr std::size_t kSize = 100000;
constexpr std::size_t kSlices = 8;

// Fills data[begin, end) with sqrt(i); returns how many it wrote.
std::size_t fill_slice(mproc::Array<double> data, std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) data[i] = std::sqrt(static_cast<double>(i));
  return end - begin;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  example_check::choose_start_method(argc, argv);  // optional argv[1]: fork|spawn|forkserver

  mproc::Array<double> data(kSize);  // zero-initialised, in shared memory
  std::vector<std::tuple<mproc::Array<double>, std::size_t, std::size_t>> slices;
  for (std::size_t s = 0; s < kSlices; ++s) {
    slices.emplace_back(data, s * kSize / kSlices, (s + 1) * kSize / kSlices);
  }
  mproc::Pool pool(2);
  std::vector<std::size_t> written = pool.starmap(fill_slice, slices);
  pool.close();
  pool.join();

  double sum = 0;
  for (double x : data) sum += x;
  std::size_t total = 0;
  for (auto n : written) total += n;
  std::printf("filled %zu elements in %zu slices; sum of sqrt(0..%zu) = %.3f\n", total, kSlices, kSize - 1, sum);

  // ---- self-check (not part of the example) ----
  double expect = 0;
  for (std::size_t i = 0; i < kSize; ++i) expect += std::sqrt(static_cast<double>(i));
  if (total != kSize || std::abs(sum - expect) > 1e-6 * expect) {
    std::fprintf(stderr, "pool_shared_array: WRONG RESULT\n");
    return 1;
  }
  return 0;
}
