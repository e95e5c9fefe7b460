// test_main.cpp: the entry point of mproc_tests.
//
// The test binary is also the program that spawn and forkserver children
// run: they re-execute /proc/self/exe, and their mproc::init() does the
// child's work and never returns. So init() comes first, before gtest sees
// the command line (a child gets the parent's argv, gtest flags included).
// Only the test process itself goes on to run tests, with the leak check of
// leak_check.hpp after each one.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "helpers/leak_check.hpp"
#include "mproc/start_method.hpp"

int main(int argc, char** argv) {
  // Every process of one test run (children included) can tell which test
  // process it belongs to (test_support.hpp: test_root_pid). The name does
  // not start with "MPROC_", which spawn strips from a child's environment.
  if (std::getenv("MPROCTEST_ROOT_PID") == nullptr) {
    ::setenv("MPROCTEST_ROOT_PID", std::to_string(::getpid()).c_str(), 1);
  }

  // A pool worker that hangs before its loop is replaced after this long
  // (the pool's birth watchdog; 20 s by default). The sanitizer runtimes of
  // GCC 12 take no locks around fork(), so a worker forked while another
  // thread is inside them can deadlock at birth (seen in CI under TSan:
  // docs/design/pool.md); 10 s lets the watchdog replace it well within the
  // tests' 20 s hang guards. Read by the parent when a pool starts.
  if (std::getenv("MPROC_WORKER_START_TIMEOUT_MS") == nullptr) {
    ::setenv("MPROC_WORKER_START_TIMEOUT_MS", "10000", 1);
  }

  mproc::init(argc, argv);  // spawn/forkserver children never return from it

  ::testing::InitGoogleTest(&argc, argv);
  // gtest owns the listener once appended.
  ::testing::UnitTest::GetInstance()->listeners().Append(new mproc_test::LeakCheckListener);
  int rc = RUN_ALL_TESTS();
  if (const int leaking = mproc_test::leaking_test_count(); leaking > 0) {
    std::fprintf(stderr,
                 "mproc leak check: %d test(s) left child processes, descriptors or /dev/shm "
                 "entries behind (see the [  LEAKED  ] lines above)\n",
                 leaking);
    if (rc == 0) rc = 1;
  }
  return rc;
}
