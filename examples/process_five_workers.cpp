// process_five_workers.cpp: five worker processes running side by side.
//
// The C++ spelling of the classic Python example:
//
//   def worker_function(name):
//       print(f'Worker {name} starting')
//       time.sleep(2)
//       print(f'Worker {name} finished')
//
//   if __name__ == '__main__':
//       processes = []
//       for i in range(5):
//           process = multiprocessing.Process(target=worker_function, args=(i,))
//           processes.append(process)
//           process.start()
//       for process in processes:
//           process.join()
//
// Run it as `example_process_five_workers [fork|spawn|forkserver]`; without
// an argument it uses the default start method (fork on Linux).
// ctest-start-methods: fork spawn forkserver
//
// The program checks its own output (the second half of this file): stdout
// is captured while the example runs, echoed for the reader, and compared
// with the lines the example must print. A wrong or missing line makes it
// exit non-zero with a message saying what differed.

#include <mproc/mproc.hpp>

#include "support/self_check.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

// The self-check: the shared part in support/self_check.hpp, the expected
// lines at the end of this file.
namespace check {
using example_check::capture_stdout;
using example_check::choose_start_method;
int expect_output(int workers);
}  // namespace check

// ============================================================ the example ===

void worker_function(int name) {
  std::printf("Worker %d starting\n", name);
  std::fflush(stdout);  // show it now, also when stdout is a pipe or a file
  // The Python original sleeps 2 s; 200 ms shows the same overlap (all five
  // start before any finishes) and keeps the examples tour quick.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::printf("Worker %d finished\n", name);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // first: a spawn/forkserver child does its work here

  check::choose_start_method(argc, argv);  // optional argv[1]: fork|spawn|forkserver
  check::capture_stdout();                 // checking only (see below)

  std::vector<mproc::Process> processes;
  for (int i = 0; i < 5; ++i) {
    processes.emplace_back(worker_function, i);
    processes.back().start();
  }
  for (auto& process : processes) {
    process.join();
  }

  return check::expect_output(5);
}

// ===================================================== the self-check part ===
// Not part of the example: this makes the program verify what it printed, so
// the examples tour fails loudly if the output is wrong.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string_view>

namespace check {

using example_check::capture_stdout;
using example_check::choose_start_method;
using example_check::fail;
using example_check::finish_capture;
using example_check::lines_of;

// Each worker prints "starting" then "finished"; workers interleave freely,
// so the check is on the set of lines and on each worker's own order.
int expect_output(int workers) {
  const std::vector<std::string> lines = lines_of(finish_capture());
  std::multiset<std::string> got(lines.begin(), lines.end());
  std::multiset<std::string> want;
  for (int i = 0; i < workers; ++i) {
    want.insert("Worker " + std::to_string(i) + " starting");
    want.insert("Worker " + std::to_string(i) + " finished");
  }
  if (got != want) {
    std::string why = "expected these lines in any order:";
    for (const auto& l : want) why += "\n  " + l;
    why += "\ngot:";
    for (const auto& l : lines) why += "\n  " + l;
    fail(why);
  }
  for (int i = 0; i < workers; ++i) {
    const auto at = [&](const std::string& l) {
      return std::find(lines.begin(), lines.end(), l) - lines.begin();
    };
    if (at("Worker " + std::to_string(i) + " starting") >
        at("Worker " + std::to_string(i) + " finished")) {
      fail("worker " + std::to_string(i) + " finished before it started");
    }
  }
  std::printf("(checked: %d workers, %zu lines as expected)\n", workers, lines.size());
  return 0;
}

}  // namespace check
