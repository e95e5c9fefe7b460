// pool_shared_value.cpp: a shared Value and a Lock handed to Pool tasks, the
// "Sharing Data" example of the Pool seed article.
//
//   def increment(shared_value, lock):
//       for _ in range(10000):
//           with lock:
//               shared_value.value += 1
//
//   shared_value = multiprocessing.Value('i', 0)
//   lock = multiprocessing.Lock()
//   pool = multiprocessing.Pool(processes=4)
//   for _ in range(4):
//       pool.apply_async(increment, args=(shared_value, lock))
//   pool.close(); pool.join()
//   print(f"Final value: {shared_value.value}")  # Should be 40000
//
// In Python this very program fails: a Value and a Lock cannot be pickled
// into pool tasks ("Synchronized objects should only be shared between
// processes through inheritance"), and apply_async swallows the error, so
// it prints 0. In mproc they are handles: every task receives one that
// refers to the same shared memory, under every start method.
//
// Run it as `example_pool_shared_value [fork|spawn|forkserver]`.
// ctest-start-methods: fork spawn forkserver

#include <mproc/mproc.hpp>

#include "support/self_check.hpp"

#include <cstdio>
#include <mutex>
#include <string_view>
#include <vector>

void increment(mproc::Value<int> shared_value, mproc::Lock lock) {
  for (int i = 0; i < 10000; ++i) {
    std::lock_guard guard(lock);  // acquire the lock before touching the value
    shared_value.value() += 1;
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  example_check::choose_start_method(argc, argv);  // optional argv[1]: fork|spawn|forkserver

  mproc::Value<int> shared_value(0);
  mproc::Lock lock;
  mproc::Pool pool(4);
  std::vector<mproc::AsyncResult<void>> processes;
  for (int i = 0; i < 4; ++i) processes.push_back(pool.apply_async(increment, shared_value, lock));
  pool.close();
  pool.join();

  for (auto& p : processes) p.get();  // rethrows if a task failed (Python would stay silent)
  std::printf("Final value: %d\n", shared_value.load());

  // ---- self-check (not part of the example) ----
  if (shared_value.load() != 40000) {
    std::fprintf(stderr, "pool_shared_value: WRONG RESULT\n");
    return 1;
  }
  return 0;
}
