// pool_support.hpp: tools shared by the pool test files (test_pool.cpp,
// test_pool_faults.cpp, test_pool_chaos.cpp, test_thread_pool.cpp).
//
// Pool tests need three things beyond test_support.hpp:
//  - a hang guard around a blocking pool call: the call runs on another
//    thread, and if it has not returned within the guard the test fails
//    and the pool is terminated, which ends every wait on it, so a hang
//    becomes a failure with a message instead of a ctest timeout;
//  - the pids of a pool's workers, read from the kernel (the children of
//    this process and of mproc's forkserver), and a way to SIGKILL one of
//    them that can never hit an unrelated process after pid reuse;
//  - small task bodies that are awkward to write inline (dying by a signal
//    without a core file, meeting other workers at a rendezvous).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <thread>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/test_support.hpp"
#include "mproc/pool.hpp"

namespace mproc_test {

// Runs `fn` on a new thread and waits for it at most `guard`. If it is
// still running then, the test fails (naming `what`) and `pool.terminate()`
// is called, which makes every pending call on the pool end (with
// PoolClosedError). Returns the future, ready: call get() for the result or
// the exception.
template <class PoolT, class Fn>
auto guarded(PoolT& pool, const char* what, Fn fn, std::chrono::milliseconds guard = kGuard) {
  auto fut = std::async(std::launch::async, std::move(fn));
  if (fut.wait_for(guard) != std::future_status::ready) {
    ADD_FAILURE() << what << ": still blocked after " << guard.count() << " ms; terminating the pool";
    pool.terminate();
    if (fut.wait_for(guard) != std::future_status::ready) {
      // Nothing more can be done safely: the future's destructor would
      // block. Abort loudly rather than hang until the ctest timeout.
      std::fprintf(stderr, "%s: still blocked after terminate(); aborting\n", what);
      std::abort();
    }
  }
  return fut;
}

// A last-resort guard for a whole test body: if the test has not
// destroyed it within `limit`, it prints what hung and aborts the process,
// so a hang shows up as a named failure before the ctest timeout (the
// pool's workers die with the test process).
//
// The constructor returns only once the guard's thread is asleep in its
// wait: a test may fork right after, and a fork taken while that thread is
// still starting (allocating its stack bookkeeping) copies a held allocator
// lock into the child under GCC 12's ASan, which then deadlocks.
class HangGuard {
 public:
  explicit HangGuard(std::chrono::milliseconds limit = 2 * kGuard);
  ~HangGuard();
  HangGuard(const HangGuard&) = delete;
  HangGuard& operator=(const HangGuard&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool waiting_ = false;
  std::thread thread_;
};

// The live (not zombie) pids that are children of this process or of
// mproc's forkserver, the forkserver itself excluded. In a test that has no
// other children, these are the pool's workers.
std::vector<pid_t> worker_pids();

// SIGKILLs `pid` if, at the moment of the kill, it is still a child of this
// process or of the forkserver (checked through a pidfd, so a recycled pid
// is never hit). Returns whether the signal was sent.
bool kill_worker(pid_t pid);

// The number of entries (other than . and ..) in `dir`; 0 if it cannot be
// read.
std::size_t count_entries(const std::string& dir);

// For a task that is about to die by a signal on purpose: no core file, and
// the signal's default action restored (a sanitizer's handler would turn a
// SIGSEGV into exit code 1).
void prepare_to_die(int sig);

// Task body: records this worker's pid as a file in `dir`, then waits
// (bounded by kGuard) until `n` files are there, i.e. until `n` different
// workers run such a task at the same time. Returns this process's pid, or
// -1 if the others never came.
int rendezvous_in(const std::string& dir, int n);

// Task body: waits (bounded by `guard`) until the file `path` exists.
// Returns whether it appeared.
bool wait_for_path(const std::string& path, std::chrono::milliseconds guard);

// True in an ASan or TSan build when `method` is fork. The allocators of
// GCC 12's sanitizer runtimes take no locks around fork() (LLVM added that
// in 2024, llvm-project PR 96600): a pool forks its workers from its
// supervisor thread while the test's own threads allocate, and a worker
// forked while another thread was inside the sanitizer's malloc deadlocks
// at its first allocation (seen in gdb under ASan, and in session 3 under
// TSan: both workers blocked in SizeClassAllocator64::GetFromAllocator, 7
// hangs in 80 runs of one test on a loaded machine). glibc's malloc, used by
// the Release build, is fork-safe, and that build runs the fork variants;
// spawn and forkserver workers (exec'd, or forked from the single-threaded
// server) run under both sanitizers, through the same pool code.
inline bool fork_pool_unsafe_under_sanitizers(mproc::StartMethod method) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return method == mproc::StartMethod::fork;
#else
  (void)method;
  return false;
#endif
}

// The fixture of a pool test parameterized by start method: skips the fork
// variant where fork_pool_unsafe_under_sanitizers says so, guards the
// whole test against a hang, and makes the pool's options.
class PoolTestByMethod : public ::testing::TestWithParam<mproc::StartMethod> {
 protected:
  void SetUp() override {
    if (fork_pool_unsafe_under_sanitizers(GetParam())) {
      GTEST_SKIP() << "fork-started pool workers under GCC 12's sanitizers (see pool_support.hpp)";
    }
  }
  mproc::PoolOptions<> options(std::size_t n = 2) const {
    mproc::PoolOptions<> o;
    o.processes = n;
    o.start_method = GetParam();
    return o;
  }
  HangGuard hang_guard_;
};

}  // namespace mproc_test
