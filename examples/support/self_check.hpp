// examples/support/self_check.hpp: what lets an example check its own output.
//
// Not part of any example: the examples tour (scripts/tour.sh) and ctest run
// every example, and each one must fail loudly if what it printed or
// computed is wrong. Examples whose children print (Process examples)
// capture stdout in an in-memory file, echo it for the reader, and compare
// lines; the others compare values. Every example also takes an optional
// argv[1] of fork|spawn|forkserver.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <mproc/mproc.hpp>

namespace example_check {

inline std::string& program() {
  static std::string name = "example";
  return name;
}

[[noreturn]] inline void fail(const std::string& why) {
  std::fprintf(stderr, "\n!!! %s: WRONG OUTPUT: %s !!!\n", program().c_str(), why.c_str());
  std::exit(1);
}

// Optional argv[1]: fork|spawn|forkserver (exits 2 on anything else).
inline void choose_start_method(int argc, char** argv) {
  if (argc > 0 && argv[0] != nullptr) program() = argv[0];
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
struct Capture {
  int saved_stdout = -1;
  int file = -1;
};
inline Capture& capture() {
  static Capture c;
  return c;
}

inline void capture_stdout() {
  std::fflush(stdout);
  Capture& c = capture();
  c.saved_stdout = ::dup(1);
  c.file = ::memfd_create("example-stdout", MFD_CLOEXEC);
  // O_APPEND: every write lands at the current end. Without it, processes
  // writing through one shared file offset can overwrite each other's lines
  // (seen on Linux 6.18).
  if (c.saved_stdout < 0 || c.file < 0 || ::fcntl(c.file, F_SETFL, O_APPEND) != 0 || ::dup2(c.file, 1) < 0) {
    fail("cannot capture stdout");
  }
}

// Puts stdout back, echoes what was printed for the reader, and returns it.
inline std::string finish_capture() {
  std::fflush(stdout);
  Capture& c = capture();
  ::dup2(c.saved_stdout, 1);
  ::close(c.saved_stdout);
  std::string text;
  char buf[4096];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(c.file, buf, sizeof buf, at);
    if (n < 0) fail("cannot read the captured stdout");
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    at += n;
  }
  ::close(c.file);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return text;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace example_check
