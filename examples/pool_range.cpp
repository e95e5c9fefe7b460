// pool_range.cpp: Pool(4).map over range(10), from the multiprocessing
// overview article.
//
//   def calculate_square(n):
//       return n * n
//
//   numbers = range(10)
//   with multiprocessing.Pool(processes=4) as pool:
//       results = pool.map(calculate_square, numbers)
//   print(results)
//
// std::views::iota(0, 10) is C++'s range(10). `with Pool(...) as pool:` is a
// scope: the Pool's destructor ends it (like Python's __exit__, it
// terminates the workers; the results are already in hand).

#include <mproc/mproc.hpp>

#include <cstdio>
#include <ranges>
#include <vector>

int calculate_square(int n) { return n * n; }

int main(int argc, char** argv) {
  mproc::init(argc, argv);

  std::vector<int> results;
  {
    mproc::Pool pool(4);
    results = pool.map(calculate_square, std::views::iota(0, 10));
  }

  std::printf("[");
  for (std::size_t i = 0; i < results.size(); ++i) std::printf(i ? ", %d" : "%d", results[i]);
  std::printf("]\n");

  // ---- self-check (not part of the example) ----
  if (results != std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49, 64, 81}) {
    std::fprintf(stderr, "pool_range: WRONG RESULT\n");
    return 1;
  }
  return 0;
}
