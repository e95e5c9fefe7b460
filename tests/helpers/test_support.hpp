// test_support.hpp: small tools every test file may use.
//
// Tests that start processes need the same few things again and again: a
// scratch directory a child can write into (its path is passed as an
// argument, so it works under fork, spawn and forkserver alike), a way to
// read what the child wrote, a bounded wait for a condition, the list of
// start methods to parameterise over, and a way to look at what a child
// prints on stderr. They live here so each test file says only what it
// tests.
//
// Every wait in here has a guard timeout: a test that would hang fails with
// a message instead (the ctest timeout is only the last resort).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/start_method.hpp"

namespace mproc_test {

// The generous bound for waits that should end quickly: long enough for a
// loaded 2-core machine under a sanitizer, short enough to fail well before
// the 60 s ctest timeout.
inline constexpr std::chrono::seconds kGuard{20};

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when
// the object is destroyed. Pass `path()` or `file("x")` to a child as a
// std::string argument.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const noexcept { return path_; }
  // path() + "/" + name (the file is not created).
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The whole content of a file; nullopt if it cannot be opened.
std::optional<std::string> read_file(const std::string& path);

// Writes `content` to `path` atomically (to a temporary name, then rename),
// so a reader polling for the file never sees it half written. Returns false
// on failure. Safe to call in a child process.
bool write_file(const std::string& path, const std::string& content);

// Polls `pred` (first at once, then every few milliseconds, backing off to
// 50 ms) until it returns true or `guard` has passed. Returns whether it
// became true. Use it as a hang guard, never to assert on timing:
//   ASSERT_TRUE(wait_until([&] { return exists(f); }, kGuard)) << "child never wrote " << f;
bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds guard = std::chrono::duration_cast<std::chrono::milliseconds>(kGuard));

// Waits (bounded by `guard`) until `path` exists and is non-empty, and
// returns its content; nullopt on timeout.
std::optional<std::string> wait_for_file(const std::string& path,
                                         std::chrono::milliseconds guard =
                                             std::chrono::duration_cast<std::chrono::milliseconds>(kGuard));

// True when no live process has pid `pid`: it does not exist, or it is a
// zombie (dead, waiting to be reaped, e.g. reparented to an init that is
// slow to reap).
bool pid_gone(pid_t pid);

// The three start methods, for INSTANTIATE_TEST_SUITE_P, and the name
// generator that makes test names end in /fork, /spawn, /forkserver:
//   INSTANTIATE_TEST_SUITE_P(StartMethod, Queue, mproc_test::all_start_methods(),
//                            mproc_test::start_method_name);
inline auto all_start_methods() {
  return ::testing::Values(mproc::StartMethod::fork, mproc::StartMethod::spawn,
                           mproc::StartMethod::forkserver);
}
std::string start_method_name(const ::testing::TestParamInfo<mproc::StartMethod>& info);

// Redirects this process's stderr (fd 2) to a temporary file while alive;
// children started meanwhile with fork or spawn inherit the redirection
// (forkserver children inherit the *server's* stderr instead). `text()`
// restores fd 2 (if not yet done) and returns what was written.
class StderrCapture {
 public:
  StderrCapture();
  ~StderrCapture();
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  std::string text();

 private:
  void restore();
  int saved_ = -1;
  std::string path_;
};

// The descriptors open in this process right now (from /proc/self/fd), in
// ascending order, not counting the one used to list them.
std::vector<int> open_fds();

// A name for a named shared-memory object (shm_open/SharedMemory) that is
// unique to this test run and marks it as belonging to this test process
// ("mproctest-<pid>-<tag>-<n>"), so the leak check of a test running in
// parallel does not take it for its own leak. Stable in children: the pid is
// the test process's, inherited through the environment.
std::string unique_shm_name(const std::string& tag);

// The pid of the test process that the current process belongs to (the
// gtest process itself, or its ancestor for a child).
pid_t test_root_pid();

}  // namespace mproc_test

namespace mproc {
// gtest prints a test's parameter with PrintTo, found by argument-dependent
// lookup: "GetParam() = spawn" rather than a dump of the enum's bytes.
inline void PrintTo(StartMethod method, std::ostream* os) { *os << to_string(method); }
}  // namespace mproc
