// futex.cpp: shared futex wait/wake (detail/futex.hpp).

#include "mproc/detail/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "mproc/detail/fd.hpp"

namespace mproc::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, Deadline deadline) {
  timespec ts{};
  const timespec* tsp = nullptr;
  if (deadline) {
    // steady_clock is CLOCK_MONOTONIC on Linux; FUTEX_WAIT_BITSET takes an
    // absolute time on that clock.
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
    if (ns <= 0) return false;
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    tsp = &ts;
  }
  const long r = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET, expected,
                           tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (r == 0) return true;
  switch (errno) {
    case EAGAIN:  // the word had already changed
    case EINTR:   // a signal: the caller re-checks and waits again
      return true;
    case ETIMEDOUT:
      return false;
    default:
      throw_errno("mproc: futex wait");
  }
}

int futex_wake(std::atomic<std::uint32_t>* word, int n) {
  const long r = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, n, nullptr, nullptr, 0);
  if (r < 0) throw_errno("mproc: futex wake");
  return static_cast<int>(r);
}

}  // namespace mproc::detail
