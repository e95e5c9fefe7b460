// leak_check.hpp: after each test, nothing that test made may remain.
//
// mproc's promise is that its objects clean up after themselves: a joined or
// destroyed Process leaves no child, a destroyed handle leaves no descriptor,
// and nothing anonymous lingers in /dev/shm. The suite checks that promise
// after *every* test, not only in tests written for it: a listener takes a
// snapshot of the process's resources when a test starts and compares when
// it ends (after the fixture is destroyed):
//   (a) child processes (every thread's /proc/self/task/<tid>/children),
//       and the children of mproc's forkserver; the forkserver itself lives
//       for the whole program and is not counted;
//   (b) open descriptors (/proc/self/fd), except the forkserver's and those
//       declared with allow_fd();
//   (c) entries of /dev/shm.
// Resources may take a moment to go (a pool's workers exit after the pool
// object is gone, a forkserver reaps its children asynchronously), so the
// listener polls for up to a few seconds before it calls anything a leak.
//
// A leak is printed as a line starting with "[  LEAKED  ]" that names the
// test and exactly what leaked, is recorded as a failure of that test (it
// shows as FAILED), and makes the test program exit non-zero at its end.
// ctest runs every test in its own process, so the leaking test's ctest
// entry fails. Leaked children are SIGKILLed after being
// reported, so that one leak does not cascade into the following tests
// when the whole binary runs in one process.
//
// Set MPROCTEST_NO_LEAK_CHECK=1 in the environment to switch the check off
// while debugging.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

namespace mproc_test {

// What this process holds at one moment.
struct ResourceSnapshot {
  std::set<pid_t> children;            // direct children and the forkserver's
  std::map<int, std::string> fds;      // descriptor -> what it refers to
  std::set<std::string> shm;           // names in /dev/shm
};

ResourceSnapshot take_snapshot();

// Declares `fd` as intentionally kept for the rest of the program (for
// example a cache a library opens once): the leak check will not report it.
// Thread-safe.
void allow_fd(int fd);

// The gtest listener doing the check. main() appends it to the listeners.
class LeakCheckListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& test) override;
  void OnTestEnd(const ::testing::TestInfo& test) override;

 private:
  ResourceSnapshot before_;
  bool active_ = false;
};

// How many tests leaked so far; main() exits non-zero when it is not 0.
int leaking_test_count();

}  // namespace mproc_test
