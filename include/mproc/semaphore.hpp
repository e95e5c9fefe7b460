// semaphore.hpp: mproc::Semaphore and mproc::BoundedSemaphore, counting
// semaphores shared between processes (Python's multiprocessing.Semaphore
// and BoundedSemaphore).
//
//   mproc::Semaphore slots(2);               // at most two at a time
//   void work(mproc::Semaphore slots) {
//     std::lock_guard guard(slots);          // acquire ... release
//     ...
//   }
//
// acquire() takes one unit, waiting while there is none; release() gives one
// back and wakes a waiter. Handles are copyable and refer to the same
// semaphore in every process (a memfd, nothing in /dev/shm); pass them to a
// Process or pool task as ordinary arguments.
//
// A semaphore has no owner, so nothing happens when a process dies holding
// a unit: the unit is gone (as in Python). A waiter that gave a timeout gets
// false at its end; one without a timeout waits until some process releases.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/shm_region.hpp"
#include "mproc/detail/sync_core.hpp"
#include "mproc/lock.hpp"

namespace mproc {

class Semaphore {
 public:
  // A semaphore with `value` units (Python's default: 1). Throws
  // mproc::Error if value is negative or above 2^31 - 1.
  explicit Semaphore(int value = 1) : Semaphore(value, false, "Semaphore") {}

  // Blocks until a unit is available and takes it.
  void acquire() { detail::semaphore_acquire(core("mproc::Semaphore::acquire"), std::nullopt); }
  // acquire(false) only tries; acquire(true) blocks.
  bool acquire(bool blocking) {
    return acquire_until(blocking ? detail::Deadline{} : detail::Deadline{std::chrono::steady_clock::now()});
  }
  // Waits at most `timeout`; false on timeout.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(detail::deadline_after(timeout));
  }
  // Gives `n` units back (default 1) and wakes as many waiters. Throws
  // mproc::Error for a BoundedSemaphore whose value would exceed its initial
  // value, or if the value would exceed 2^31 - 1.
  void release(int n = 1);

  void lock() { acquire(); }
  bool try_lock() { return acquire(false); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return acquire(timeout);
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> tp) {
    return acquire_until(detail::deadline_at(tp));
  }
  void unlock() { release(); }

  // The number of units available now (a snapshot).
  int get_value() const {
    return static_cast<int>(core("mproc::Semaphore::get_value")->value.load(std::memory_order_relaxed));
  }
  explicit operator bool() const noexcept { return core_ != nullptr; }

  // Copies share the object; a moved-from handle stays a working copy.
  Semaphore(const Semaphore&) = default;
  Semaphore& operator=(const Semaphore&) = default;

  void mproc_encode(detail::Writer& w) const;
  static Semaphore mproc_decode(detail::Reader& r);

 protected:
  Semaphore(int value, bool bounded, const char* tag);
  Semaphore(std::shared_ptr<detail::SharedRegion> region, detail::SemaphoreCore* core) noexcept
      : region_(std::move(region)), core_(core) {}
  detail::SemaphoreCore* core(const char* who) const {
    if (core_ == nullptr) detail::throw_empty_handle(who);
    return core_;
  }

 private:
  bool acquire_until(detail::Deadline deadline) {
    return detail::semaphore_acquire(core("mproc::Semaphore::acquire"), deadline);
  }

  std::shared_ptr<detail::SharedRegion> region_;
  detail::SemaphoreCore* core_ = nullptr;
};

// A Semaphore that may never be released above its initial value: one
// release too many throws mproc::Error instead of silently adding a unit
// (so it catches a release without an acquire).
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(int value = 1) : Semaphore(value, true, "BoundedSemaphore") {}

  // The initial value, which release() never exceeds.
  int bound() const { return static_cast<int>(core("mproc::BoundedSemaphore::bound")->bound); }

  static BoundedSemaphore mproc_decode(detail::Reader& r);

 private:
  BoundedSemaphore(std::shared_ptr<detail::SharedRegion> region, detail::SemaphoreCore* core) noexcept
      : Semaphore(std::move(region), core) {}
};

}  // namespace mproc
