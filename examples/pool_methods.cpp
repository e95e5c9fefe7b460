// pool_methods.cpp: apply_async with a callback while the parent does other
// work, then imap and starmap: the "other methods" example of the Pool seed
// article.
//
//   def cube(x, power):
//       time.sleep(0.5)
//       return x ** power
//
//   def print_result(result):
//       print(f"Result: {result}")
//
//   pool = multiprocessing.Pool(processes=4)
//   async_result = pool.apply_async(cube, args=(2, 3), callback=print_result)
//   print("Doing other stuff while the cube is calculated…")
//   time.sleep(1)
//   print("Done with other stuff.")
//   for result in pool.imap(square, [1, 2, 3, 4, 5]):
//       print(result)
//   results = pool.starmap(cube, [(2, 2), (3, 3), (4, 4)])
//   print(results)  # [4, 27, 256]
//
// Sleeps are a tenth of the article's. The callback runs in the parent, on
// the pool's callback thread. The program checks what it computed.

#include <mproc/mproc.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <tuple>
#include <vector>

int cube(int x, int power) {
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  int r = 1;
  for (int i = 0; i < power; ++i) r *= x;
  return r;
}

int square(int x) { return x * x; }

std::atomic<int> g_callback_result{0};

void print_result(int result) {
  std::printf("Result: %d\n", result);
  g_callback_result = result;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);

  mproc::Pool pool(4);

  auto async_result = pool.apply_async(cube, mproc::args(2, 3), mproc::on_result(print_result));
  std::printf("Doing other stuff while the cube is calculated...\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // simulate other work
  std::printf("Done with other stuff.\n");

  std::printf("Using imap:\n");
  std::vector<int> from_imap;
  for (int result : pool.imap(square, std::vector{1, 2, 3, 4, 5})) {
    std::printf("%d\n", result);
    from_imap.push_back(result);
  }

  std::printf("Using starmap:\n");
  std::vector<std::tuple<int, int>> data = {{2, 2}, {3, 3}, {4, 4}};  // (base, exponent)
  std::vector<int> results = pool.starmap(cube, data);
  std::printf("[%d, %d, %d]\n", results[0], results[1], results[2]);

  const int cubed = async_result.get();  // after get() the callback has run
  pool.close();
  pool.join();

  // ---- self-check (not part of the example) ----
  bool ok = cubed == 8 && g_callback_result == 8 && from_imap == std::vector<int>{1, 4, 9, 16, 25} &&
            results == std::vector<int>{4, 27, 256};
  if (!ok) {
    std::fprintf(stderr, "pool_methods: WRONG RESULT\n");
    return 1;
  }
  return 0;
}
