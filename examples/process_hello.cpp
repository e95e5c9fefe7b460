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

#include <cstdio>
#include <string>

// The self-check, defined at the end of this file.
namespace check {
void choose_start_method(int argc, char** argv);
void capture_stdout();
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

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "\n!!! example_process_hello: WRONG OUTPUT: %s !!!\n", why.c_str());
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
