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

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

// The self-check, defined at the end of this file.
namespace check {
void choose_start_method(int argc, char** argv);
void capture_stdout();
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

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "\n!!! example_process_five_workers: WRONG OUTPUT: %s !!!\n", why.c_str());
  std::exit(1);
}

void choose_start_method(int argc, char** argv) {
  if (argc < 2) return;
  const std::string_view arg = argv[1];
  for (const auto method : mproc::get_all_start_methods()) {
    if (arg == mproc::to_string(method)) {
      mproc::set_start_method(method);
      return;
    }
  }
  std::fprintf(stderr, "usage: %s [fork|spawn|forkserver]\n", argv[0]);
  std::exit(2);
}

// Points stdout (descriptor 1) at an in-memory file until finish_capture().
// The children inherit descriptor 1 (fork and spawn directly; forkserver
// through the server, which the first forkserver Process starts, after this
// call), so everything they print lands in the file too.
int saved_stdout = -1;
int captured_file = -1;

void capture_stdout() {
  std::fflush(stdout);
  saved_stdout = ::dup(1);
  captured_file = ::memfd_create("example-stdout", MFD_CLOEXEC);
  // O_APPEND: every write lands at the current end. Without it, processes
  // writing through one shared file offset can overwrite each other's lines
  // (seen on Linux 6.18).
  if (saved_stdout < 0 || captured_file < 0 || ::fcntl(captured_file, F_SETFL, O_APPEND) != 0 ||
      ::dup2(captured_file, 1) < 0) {
    fail("cannot capture stdout");
  }
}

// Puts stdout back, echoes what was printed for the reader, and returns it.
std::string finish_capture() {
  std::fflush(stdout);
  ::dup2(saved_stdout, 1);
  ::close(saved_stdout);
  std::string text;
  char buf[4096];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(captured_file, buf, sizeof buf, at);
    if (n < 0) fail("cannot read the captured stdout");
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    at += n;
  }
  ::close(captured_file);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

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
