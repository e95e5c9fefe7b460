// pool_performance.cpp: a CPU-bound task, single process vs a Pool, from the
// multiprocessing overview article ("Performance Comparison").
//
//   def cpu_bound_task(n):
//       return sum(i * i for i in range(n))
//
//   def single_threaded(n): ... result = cpu_bound_task(n) ...
//   def multi_threaded(n):
//       with multiprocessing.Pool(processes=4) as pool:
//           results = pool.map(cpu_bound_task, [n] * 4)
//
// As in the article, the pool does four times the work of the single run;
// this prints both times and the speed-up per unit of work. n is larger
// than the article's 10**6 because C++ is ~100x faster than CPython at
// this loop. The sum wraps modulo 2^64 (unsigned), which C++ defines.

#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

std::uint64_t cpu_bound_task(std::uint64_t n) {
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    sum += i * i;
    asm volatile("" : "+r"(sum));  // keep the compiler from closing the form
  }
  return sum;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const std::uint64_t n = 100'000'000;
  using clock = std::chrono::steady_clock;

  auto t0 = clock::now();
  const std::uint64_t single = cpu_bound_task(n);
  const double single_s = std::chrono::duration<double>(clock::now() - t0).count();
  std::printf("Single-process result: %llu, Time taken: %.4f seconds\n", static_cast<unsigned long long>(single),
              single_s);

  t0 = clock::now();
  std::vector<std::uint64_t> results;
  {
    mproc::Pool pool(4);
    results = pool.map(cpu_bound_task, std::vector<std::uint64_t>(4, n));
  }
  const double pool_s = std::chrono::duration<double>(clock::now() - t0).count();
  std::uint64_t total = 0;
  for (auto r : results) total += r;
  std::printf("Pool(4) result: %llu, Time taken: %.4f seconds\n", static_cast<unsigned long long>(total), pool_s);
  std::printf("Speed-up per unit of work: %.2fx on %u CPUs\n", 4 * single_s / pool_s, mproc::cpu_count());

  // ---- self-check (not part of the example): the same answers ----
  if (results.size() != 4 || total != 4 * single) {
    std::fprintf(stderr, "pool_performance: WRONG RESULT\n");
    return 1;
  }
  return 0;
}
