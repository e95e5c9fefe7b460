// detail/futex.hpp: the kernel's wait/wake primitive, on words that live in
// memory shared between processes.
//
// Every blocking primitive of mproc (locks, queues, events, the pool's
// channels) parks on a 32-bit word in a shared mapping. The futexes are
// *shared* (no FUTEX_PRIVATE_FLAG), so waiters in different processes that
// map the same memory wake each other. Deadlines are absolute
// CLOCK_MONOTONIC times, so a wait that is interrupted and retried never
// waits longer than asked.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace mproc::detail {

using Deadline = std::optional<std::chrono::steady_clock::time_point>;

// A deadline `timeout` from now; a negative timeout is already expired.
template <class Rep, class Period>
Deadline deadline_after(std::chrono::duration<Rep, Period> timeout) {
  using namespace std::chrono;
  const auto now = steady_clock::now();
  if (timeout <= duration<Rep, Period>::zero()) return now;
  // Saturate: duration::max() means "practically forever", not overflow.
  if (duration_cast<duration<double>>(timeout).count() > 1e9) return std::nullopt;
  return now + ceil<steady_clock::duration>(timeout);
}

// Sleeps while `*word == expected`, until woken or `deadline` (nullopt =
// forever). Returns false only on timeout; may return true spuriously
// (callers re-check their condition). EINTR is handled inside.
bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, Deadline deadline = std::nullopt);

// Wakes up to `n` waiters on `word`; returns how many were woken.
int futex_wake(std::atomic<std::uint32_t>* word, int n);
inline int futex_wake_all(std::atomic<std::uint32_t>* word) { return futex_wake(word, 1 << 30); }

}  // namespace mproc::detail
