// shared_value_process.cpp: four processes add to one shared counter under a
// lock.
//
// The seed example, written with processes:
//
//   def add_ten_thousand(value, lock):
//       for _ in range(10000):
//           with lock:
//               value.value += 1
//
//   if __name__ == '__main__':
//       value = multiprocessing.Value('i', 0)
//       lock = multiprocessing.Lock()
//       workers = [multiprocessing.Process(target=add_ten_thousand, args=(value, lock))
//                  for _ in range(4)]
//       for w in workers: w.start()
//       for w in workers: w.join()
//       print(f'Final value: {value.value}')
//
// The Value and the Lock are handles: each process gets one that refers to
// the same shared memory, under fork, spawn and forkserver alike. (A Value
// has a lock of its own too, value.get_lock(); the example keeps the
// separate Lock of the original.)
//
// Run it as `example_shared_value_process [fork|spawn|forkserver]`. It prints
// "Final value: 40000" and exits non-zero if the total is anything else.
// ctest-start-methods: fork spawn forkserver

#include <mproc/mproc.hpp>

#include "support/self_check.hpp"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <vector>

void add_ten_thousand(mproc::Value<int> value, mproc::Lock lock) {
  for (int i = 0; i < 10000; ++i) {
    std::lock_guard guard(lock);
    value.value() += 1;
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // first: a spawn/forkserver child does its work here

  example_check::choose_start_method(argc, argv);  // optional argv[1]: fork|spawn|forkserver

  mproc::Value<int> value(0);
  mproc::Lock lock;
  std::vector<mproc::Process> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back(add_ten_thousand, value, lock);
  for (auto& w : workers) w.start();
  for (auto& w : workers) w.join();

  std::printf("Final value: %d\n", value.load());
  if (value.load() != 40000) {
    std::fprintf(stderr, "example_shared_value_process: expected 40000\n");
    return 1;
  }
  return 0;
}
