// process_hello.cpp: two processes say hello, the parent waits for both.
//
// The C++ spelling of the Python example:
//
//   from multiprocessing import Process
//
//   def worker_function(name):
//       print(f"Hello from {name}")
//
//   if __name__ == "__main__":
//       process1 = Process(target=worker_function, args=("Process 1",))
//       process2 = Process(target=worker_function, args=("Process 2",))
//       process1.start()
//       process2.start()
//       process1.join()
//       process2.join()
//       print("All processes completed.")
//
// The two greetings may come in either order. Run it as
// `example_process_hello [fork|spawn|forkserver]`; without an argument it
// uses the default start method (fork on Linux).
// ctest-start-methods: fork spawn forkserver
//
// The program checks its own output (the second half of this file): stdout
// is captured while the example runs, echoed for the reader, and compared
// with the lines the example must print. A wrong or missing line makes it
// exit non-zero with a message saying what differed.

#include <mproc/mproc.hpp>

#include "support/self_check.hpp"

#include <cstdio>
#include <string>

// The self-check: the shared part in support/self_check.hpp, the expected
// lines at the end of this file.
namespace check {
using example_check::capture_stdout;
using example_check::choose_start_method;
int expect_output();
}  // namespace check

// ============================================================ the example ===

// The argument arrives as a std::string copied into the child (a string
// literal given to Process is converted to the parameter's type).
void worker_function(std::string name) {
  std::printf("Hello from %s\n", name.c_str());
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // first: a spawn/forkserver child does its work here

  check::choose_start_method(argc, argv);  // optional argv[1]: fork|spawn|forkserver
  check::capture_stdout();                 // checking only (see below)

  mproc::Process process1(worker_function, "Process 1");
  mproc::Process process2(worker_function, "Process 2");
  process1.start();
  process2.start();
  process1.join();
  process2.join();
  std::printf("All processes completed.\n");

  return check::expect_output();
}

// ===================================================== the self-check part ===
// Not part of the example: this makes the program verify what it printed, so
// the examples tour fails loudly if the output is wrong.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <string_view>
#include <vector>

namespace check {

using example_check::capture_stdout;
using example_check::choose_start_method;
using example_check::fail;
using example_check::finish_capture;
using example_check::lines_of;

// The two children may print in either order; the parent's line comes last,
// after both joins.
int expect_output() {
  const std::vector<std::string> lines = lines_of(finish_capture());
  const std::vector<std::string> children = {"Hello from Process 1", "Hello from Process 2"};
  const std::string last = "All processes completed.";
  const bool ok = lines.size() == 3 && lines.back() == last &&
                  std::is_permutation(lines.begin(), lines.end() - 1, children.begin());
  if (!ok) {
    std::string why = "expected \"" + children[0] + "\" and \"" + children[1] +
                      "\" in either order, then \"" + last + "\"; got:";
    for (const auto& l : lines) why += "\n  " + l;
    fail(why);
  }
  std::printf("(checked: %zu lines as expected)\n", lines.size());
  return 0;
}

}  // namespace check
