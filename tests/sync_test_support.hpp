// sync_test_support.hpp: small tools shared by the tests of the
// synchronization primitives and shared memory (test_lock.cpp,
// test_semaphore.cpp, test_condition.cpp, test_event.cpp, test_barrier.cpp,
// test_shared_value.cpp, test_shared_memory.cpp).
//
// - start(method, f, args...): a started mproc::Process under a given
//   start method (the suites are parameterised over all three);
// - thread_sleeps_in_futex(tid): true once a thread of this process is
//   blocked in the futex system call, so a test can make sure a waiter is
//   really asleep before it does what should wake it, instead of sleeping
//   and hoping. Always used inside mproc_test::wait_until (a guard).
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <utility>

#include "helpers/test_support.hpp"
#include "mproc/process.hpp"

namespace mproc_sync_test {

template <class F, class... Args>
mproc::Process start(mproc::StartMethod method, F&& f, Args&&... args) {
  mproc::ProcessOptions options;
  options.start_method = method;
  mproc::Process p(options, std::forward<F>(f), std::forward<Args>(args)...);
  p.start();
  return p;
}

// The calling thread's kernel id.
inline pid_t gettid_now() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// Is thread `tid` of this process blocked in futex() right now? Reads
// /proc/self/task/<tid>/syscall, whose first field is the number of the
// system call the thread is blocked in.
inline bool thread_sleeps_in_futex(pid_t tid) {
  const auto text = mproc_test::read_file("/proc/self/task/" + std::to_string(tid) + "/syscall");
  if (!text) return false;
  return text->rfind(std::to_string(SYS_futex) + " ", 0) == 0;
}

// Waits (guarded) until thread `tid` sleeps in futex().
inline bool wait_until_asleep(const std::atomic<pid_t>& tid) {
  return mproc_test::wait_until([&] { return tid.load() != 0 && thread_sleeps_in_futex(tid.load()); });
}

}  // namespace mproc_sync_test
