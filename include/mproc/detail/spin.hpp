// detail/spin.hpp: bounded spinning before a blocking wait.
//
// A blocking wake-up costs 5-50 us on the VMs here (TRAPS.md), more than a
// small task. While work flows, the next message usually arrives within a
// few microseconds, so the pool's threads and workers look for it a little
// while before they sleep. The spin is bounded (two cores are shared by the
// parent and its workers), yields the CPU every 16 turns (a spinner must
// not keep the very peer it waits for off the core: with the caller, the
// pool's supervisor and a worker on two cores, every hand-off may wait for
// a yield; every 64 turns gave W2 9.3 us, every 16 5.7 us, every 4 6.4 us,
// medians of 7 alternating runs), and adapts: after a
// sleep, the budget doubles if the wake-up came soon after the spin gave up
// and halves if it did not, so a waiter whose peer is slow soon stops
// burning CPU the peer needs, and one whose peer answers within the budget
// keeps spinning. A yield that comes back after more than 1 ms (another
// thread had the core for a time slice: more runnable threads than cores)
// stops spinning for 10 ms, then 20, 40, ... up to a second while that
// goes on: on a crowded machine a spinner waits a time slice for its turn
// at every hand-off, while a sleeper is woken first. (W4 with six busy
// loops beside it: 78k tasks/s this way, 53k with a 100 us limit and fixed
// 10 ms pauses, 7k spinning regardless, 52k never spinning; on a quiet
// machine 1.05M, 0.85M, 0.90M and ~0.25M: medians of alternating runs.)
//
// MPROC_SPIN_US sets the largest budget in microseconds (default 50; 0
// turns spinning off: every wait sleeps at once, for machines with fewer
// cores than busy processes).
#pragma once

#include <sched.h>
#include <time.h>

#include <cstdint>

#include "mproc/detail/sync_core.hpp"

namespace mproc::detail {

inline constexpr std::uint64_t kDefaultSpinNs = 50000;
// The largest spin budget: MPROC_SPIN_US as it is now (a pool reads it when
// it starts, and hands it to its workers) ...
std::uint64_t spin_ns_from_env() noexcept;
// ... and as it was when first asked (for waits outside a pool's threads).
std::uint64_t max_spin_ns() noexcept;

inline std::uint64_t monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

class AdaptiveSpin {
 public:
  explicit AdaptiveSpin(std::uint64_t max_ns = max_spin_ns()) noexcept : max_(max_ns), budget_(max_ns) {}

  // Spins until `ready()` is true or the budget is spent (or the
  // CLOCK_MONOTONIC time `stop_ns` came); returns ready(). A caller that
  // then sleeps calls woke() when it wakes up.
  template <class Ready>
  bool until(Ready&& ready, std::uint64_t stop_ns = ~std::uint64_t{0}) {
    if (ready()) return true;
    if (max_ == 0) return false;
    const std::uint64_t start = monotonic_ns();
    if (start < quiet_until_ns_) return false;
    const std::uint64_t end = stop_ns < start + budget_ ? stop_ns : start + budget_;
    for (unsigned n = 1;; ++n) {
      cpu_relax();
      if (ready()) {
        quiet_ns_ = kQuietNs;
        return true;
      }
      if ((n & 15) == 0) {
        const std::uint64_t now = monotonic_ns();
        if (now > end) {
          gave_up_ns_ = now;
          return false;
        }
        ::sched_yield();
        // A yield that took long means another thread, not the one we wait
        // for, got the core: more threads want to run than there are
        // cores, and a spinner would only keep them waiting (a sleeper is
        // woken first; one that yields waits for a whole time slice). Sleep
        // instead, and do not spin again for a while.
        const std::uint64_t back = monotonic_ns();
        if (back - now > kCrowdedNs) {
          // Each time again, twice as long (up to a second): on a machine
          // that stays crowded, trying costs a time slice each time.
          quiet_until_ns_ = back + quiet_ns_;
          quiet_ns_ = quiet_ns_ * 2 > kMaxQuietNs ? kMaxQuietNs : quiet_ns_ * 2;
          budget_ = max_ < kMinNs ? max_ : kMinNs;
          gave_up_ns_ = 0;
          return ready();
        }
      }
    }
  }

  // After a sleep that followed a failed until(): if what we waited for
  // came soon after we gave up, spinning a little longer would have caught
  // it (the budget doubles); if not, spinning was wasted (it halves).
  void woke() noexcept {
    if (gave_up_ns_ == 0) return;
    const std::uint64_t floor = max_ < kMinNs ? max_ : kMinNs;
    if (monotonic_ns() - gave_up_ns_ < max_) {
      budget_ = budget_ * 2 > max_ ? max_ : budget_ * 2;
    } else {
      budget_ = budget_ / 2 < floor ? floor : budget_ / 2;
    }
    gave_up_ns_ = 0;
  }

 private:
  static constexpr std::uint64_t kMinNs = 1000;
  static constexpr std::uint64_t kCrowdedNs = 1000000;     // a yield this long: the cores are crowded
  static constexpr std::uint64_t kQuietNs = 10000000;      // then no spinning for this long,
  static constexpr std::uint64_t kMaxQuietNs = 1000000000;  // doubling up to this while it lasts
  std::uint64_t max_;
  std::uint64_t budget_;
  std::uint64_t gave_up_ns_ = 0;      // when the last until() gave up
  std::uint64_t quiet_until_ns_ = 0;  // no spinning before this time (crowded cores)
  std::uint64_t quiet_ns_ = kQuietNs;  // how long the next crowded spell stops spinning
};

}  // namespace mproc::detail
