// shared_array_process.cpp: several processes fill one shared array, each
// its own slice, and the parent checks the result.
//
//   def fill(array, begin, end):
//       for i in range(begin, end):
//           array[i] = i
//
//   if __name__ == '__main__':
//       array = multiprocessing.Array('d', 1_000_000)      # zeros
//       workers = [multiprocessing.Process(target=fill, args=(array, k * n // 4, (k + 1) * n // 4))
//                  for k in range(4)]
//       ...
//       print(sum(array))
//
// The slices do not overlap, so the workers need no lock: each writes only
// its own elements, and join() orders every write before the parent reads.
// (Array<T> has a lock, array.get_lock(), for updates that do overlap.)
//
// Run it as `example_shared_array_process [fork|spawn|forkserver]`; it exits
// non-zero if the sum is wrong.
// ctest-start-methods: fork spawn forkserver

#include <mproc/mproc.hpp>

#include "support/self_check.hpp"

#include <cstddef>
#include <cstdio>
#include <numeric>
#include <string_view>
#include <vector>

void fill(mproc::Array<double> array, std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) array[i] = static_cast<double>(i);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // first: a spawn/forkserver child does its work here

  example_check::choose_start_method(argc, argv);  // optional argv[1]: fork|spawn|forkserver

  constexpr std::size_t n = 1'000'000;
  constexpr std::size_t workers = 4;
  mproc::Array<double> array(n);  // zero-initialised, in shared memory

  std::vector<mproc::Process> processes;
  for (std::size_t k = 0; k < workers; ++k) {
    processes.emplace_back(fill, array, k * n / workers, (k + 1) * n / workers);
  }
  for (auto& p : processes) p.start();
  for (auto& p : processes) p.join();

  // 0 + 1 + ... + (n - 1): every term and partial sum is an exact double.
  const double sum = std::accumulate(array.begin(), array.end(), 0.0);
  const double expected = static_cast<double>(n) * static_cast<double>(n - 1) / 2;
  std::printf("%zu processes filled %zu elements; sum = %.0f\n", workers, n, sum);
  if (sum != expected) {
    std::fprintf(stderr, "example_shared_array_process: expected the sum %.0f\n", expected);
    return 1;
  }
  return 0;
}
