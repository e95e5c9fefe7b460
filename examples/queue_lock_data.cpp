// queue_lock_data.cpp: a child process, under a Lock, prints a line and
// puts "Data" into a Queue; the parent gets it.
//
// The C++ spelling of the Python example:
//
//   from multiprocessing import Process, Queue, Lock
//
//   def task(lock, queue):
//       with lock:
//           print("Task executed")
//           queue.put("Data")
//
//   if __name__ == "__main__":
//       lock = Lock()
//       queue = Queue()
//       p = Process(target=task, args=(lock, queue))
//       p.start()
//       print(queue.get())
//       p.join()
//
// The Lock and the Queue are handles: the child receives working handles to
// the same lock and the same queue, whatever the start method. Run it as
// `example_queue_lock_data [fork|spawn|forkserver]` (default: fork). It
// exits non-zero if the parent does not receive exactly "Data".
// ctest-start-methods: fork spawn forkserver

#include <mproc/mproc.hpp>

#include "support/self_check.hpp"

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

void task(mproc::Lock lock, mproc::Queue<std::string> queue) {
  std::lock_guard guard(lock);
  std::printf("Task executed\n");
  std::fflush(stdout);
  queue.put("Data");
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // first: a spawn/forkserver child does its work here
  example_check::choose_start_method(argc, argv);  // optional argv[1]: fork|spawn|forkserver

  mproc::Lock lock;
  mproc::Queue<std::string> queue;
  mproc::Process p(task, lock, queue);
  p.start();
  // A guard timeout, so a broken child makes the example fail, not hang.
  const std::string data = queue.get(std::chrono::seconds(60));
  std::printf("%s\n", data.c_str());
  p.join();

  if (data != "Data" || p.exitcode() != 0) {
    std::fprintf(stderr, "example_queue_lock_data: expected \"Data\" from a child that exits with 0\n");
    return 1;
  }
  return 0;
}
