// bench/reference/raw.hpp: the raw system calls the physical references are
// built from (futex wait/wake on a shared word, an anonymous shared mapping,
// forking a child that runs a lambda and reaping it), written directly
// against the kernel so that a reference measures the machine, not mproc.
//
// Every reference program is a parent and one or two forked children that
// meet in a MAP_SHARED|MAP_ANONYMOUS mapping; the futexes are therefore
// shared ones (no FUTEX_PRIVATE_FLAG), as they must be across processes.
#pragma once

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <new>
#include <utility>

#include "../common/harness.hpp"

namespace bench::raw {

using Word = std::atomic<std::uint32_t>;
static_assert(sizeof(Word) == 4 && Word::is_always_lock_free);

// Sleeps while *w == expected (returns at once if it differs; may return
// spuriously, so callers loop on their condition).
inline void futex_wait(Word* w, std::uint32_t expected) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}

inline void futex_wake(Word* w, int n = 1) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAKE, n, nullptr, nullptr, 0);
}

// Blocks (futex) until *w >= target.
inline void wait_at_least(Word* w, std::uint32_t target) {
  for (std::uint32_t v = w->load(); v < target; v = w->load()) futex_wait(w, v);
}

// A T constructed in a fresh shared anonymous mapping (inherited by forked
// children, so parent and children see the same object).
template <class T>
T* shared_new() {
  void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("mmap of the shared block failed");
  return new (p) T();
}

// Forks a child that runs fn() and exits with 0 (_exit: no atexit
// handlers or stdio flushes of the parent's state).
template <class F>
pid_t fork_child(F&& fn) {
  const pid_t pid = ::fork();
  if (pid < 0) fail("fork failed");
  if (pid == 0) {
    std::forward<F>(fn)();
    ::_exit(0);
  }
  return pid;
}

// Reaps a child; fails the benchmark unless it exited with 0.
inline void reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) fail("waitpid failed");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("a child did not exit cleanly");
}

// A CPU relaxation hint for spin loops.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace bench::raw
