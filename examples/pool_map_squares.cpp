// pool_map_squares.cpp: Pool.map over a list, the first example of the
// Pool seed article.
//
//   def square(x):
//       time.sleep(1)  # Simulate some work
//       return x * x
//
//   pool = multiprocessing.Pool()
//   results = pool.map(square, [1, 2, 3, 4, 5])
//   pool.close(); pool.join()
//   print(f"Squares: {results}")  # Squares: [1, 4, 9, 16, 25]
//
// The simulated work is 100 ms here instead of 1 s, to keep the tour short.
// The program checks its own result and exits non-zero if it is wrong.

#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

int square(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // simulate some work
  return x * x;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);

  mproc::Pool pool;  // as many workers as CPUs (mproc::cpu_count())
  std::vector<int> numbers = {1, 2, 3, 4, 5};
  std::vector<int> results = pool.map(square, numbers);
  pool.close();
  pool.join();

  std::printf("Squares: [");
  for (std::size_t i = 0; i < results.size(); ++i) std::printf(i ? ", %d" : "%d", results[i]);
  std::printf("]\n");

  if (results != std::vector<int>{1, 4, 9, 16, 25}) {
    std::fprintf(stderr, "pool_map_squares: WRONG RESULT\n");
    return 1;
  }
  return 0;
}
