// lock.hpp: mproc::Lock and mproc::RLock, mutual exclusion between
// processes (Python's multiprocessing.Lock and RLock).
//
//   void add_one(mproc::Lock lock, mproc::Value<int> total) {
//     std::lock_guard guard(lock);          // or lock.acquire() ... lock.release()
//     total.value() += 1;
//   }
//   mproc::Lock lock;
//   mproc::Process p(add_one, lock, total);  // fork, spawn or forkserver alike
//
// A lock lives in shared memory (a memfd: nothing in /dev/shm). Handles are
// copyable and every copy, in this process or another, refers to the same
// lock; pass them to a Process or a pool task as ordinary arguments.
//
// Both have Python's names (acquire, acquire(timeout), release) and the
// C++ Lockable names (lock, try_lock, unlock, and try_lock_for /
// try_lock_until), so std::lock_guard, std::unique_lock and
// std::scoped_lock work.
//
// Death of the holder: a process that dies while holding a lock (SIGKILL in
// the critical section, a crash, an exit without release) does not block
// the others. Waiters notice within about 100 ms, the next acquire succeeds
// (it never throws, so std::lock_guard stays safe), and until that holder
// releases, previous_owner_died() returns true: the data the lock protects
// may be half-updated, check it. owner_deaths() counts such takeovers.
// See docs/design/locks.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/shm_region.hpp"
#include "mproc/detail/sync_core.hpp"

namespace mproc {

namespace detail {

// Tag for making a lock handle that refers to a LockCore inside another
// primitive's region (the lock of a Condition, a Value, an Array).
struct AdoptCore {
  explicit AdoptCore() = default;
};

// A deadline for a time point of any clock.
template <class Clock, class Duration>
Deadline deadline_at(std::chrono::time_point<Clock, Duration> tp) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return std::chrono::time_point_cast<std::chrono::steady_clock::duration>(tp);
  } else {
    return deadline_after(tp - Clock::now());
  }
}

// What Lock and RLock share: the reference to the shared LockCore and the
// queries about it.
class LockHandle {
 public:
  // True while the present holding was taken over from a process that died
  // holding the lock (the protected data may be inconsistent). Meaningful
  // to the holder; cleared when the lock is released.
  bool previous_owner_died() const { return core("mproc::Lock::previous_owner_died")->recovered.load() != 0; }
  // How many times, since the lock was made, a dead holder's lock was
  // taken over.
  std::uint64_t owner_deaths() const { return core("mproc::Lock::owner_deaths")->deaths.load(); }
  // Whether some thread of some process holds the lock now.
  bool locked() const { return lock_locked(core("mproc::Lock::locked")); }
  // False only for a moved-from handle.
  explicit operator bool() const noexcept { return core_ != nullptr; }
  // Internal: the shared struct and the mapping that holds it.
  LockCore* core_ptr() const noexcept { return core_; }
  const std::shared_ptr<SharedRegion>& region() const noexcept { return region_; }

  // Copies share the lock. There is no separate move: a moved-from handle
  // stays a working copy (cheaper to reason about than a half-empty one).
  LockHandle(const LockHandle&) = default;
  LockHandle& operator=(const LockHandle&) = default;

 protected:
  LockHandle(SyncKind kind, const char* tag);
  LockHandle(std::shared_ptr<SharedRegion> region, LockCore* core) noexcept
      : region_(std::move(region)), core_(core) {}
  LockCore* core(const char* who) const {
    if (core_ == nullptr) throw_empty_handle(who);
    return core_;
  }
  void encode(Writer& w, SyncKind kind) const;

  std::shared_ptr<SharedRegion> region_;
  LockCore* core_ = nullptr;
};

}  // namespace detail

// A non-recursive lock. As in Python, any thread of any process may release
// it, not only the one that acquired it; releasing it when it is not held
// throws mproc::Error. Acquiring it twice from one thread blocks (use a
// timeout, or RLock).
class Lock : public detail::LockHandle {
 public:
  // A new, unlocked lock.
  Lock() : LockHandle(detail::SyncKind::lock, "Lock") {}
  // A handle to the lock at `core` in `region` (internal).
  Lock(detail::AdoptCore, std::shared_ptr<detail::SharedRegion> region, detail::LockCore* core) noexcept
      : LockHandle(std::move(region), core) {}

  // Blocks until the lock is held by the caller.
  void acquire() { detail::lock_acquire(core("mproc::Lock::acquire"), std::nullopt); }
  // acquire(false) only tries; acquire(true) blocks. Returns whether the
  // lock was acquired.
  bool acquire(bool blocking) {
    return acquire_until(blocking ? detail::Deadline{} : detail::Deadline{std::chrono::steady_clock::now()});
  }
  // Waits at most `timeout` (any std::chrono::duration); false on timeout.
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(detail::deadline_after(timeout));
  }
  // Releases the lock. Throws mproc::Error if it is not held.
  void release() { detail::lock_release(core("mproc::Lock::release"), "mproc::Lock::release"); }

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

  // Crossing a process boundary (serialize.hpp): the lock's memfd and place.
  void mproc_encode(detail::Writer& w) const { encode(w, detail::SyncKind::lock); }
  static Lock mproc_decode(detail::Reader& r);

 private:
  bool acquire_until(detail::Deadline deadline) {
    return detail::lock_acquire(core("mproc::Lock::acquire"), deadline);
  }
};

// A recursive lock: the thread that holds it may acquire it again, and must
// release it as many times. Only that thread may release it; anyone else
// gets mproc::Error (as does releasing it when it is not held).
class RLock : public detail::LockHandle {
 public:
  // A new, unlocked recursive lock.
  RLock() : LockHandle(detail::SyncKind::rlock, "RLock") {}
  // A handle to the recursive lock at `core` in `region` (internal).
  RLock(detail::AdoptCore, std::shared_ptr<detail::SharedRegion> region, detail::LockCore* core) noexcept
      : LockHandle(std::move(region), core) {}

  void acquire() { detail::rlock_acquire(core("mproc::RLock::acquire"), std::nullopt); }
  bool acquire(bool blocking) {
    return acquire_until(blocking ? detail::Deadline{} : detail::Deadline{std::chrono::steady_clock::now()});
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until(detail::deadline_after(timeout));
  }
  // Undoes one acquire. Throws mproc::Error if the calling thread does not
  // hold the lock.
  void release() { detail::rlock_release(core("mproc::RLock::release"), "mproc::RLock::release"); }

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

  // Does the calling thread hold it?
  bool is_owned() const { return detail::held_by_caller(core("mproc::RLock::is_owned")); }
  // How many times the calling thread holds it (0 if it does not).
  std::uint32_t recursion_depth() const {
    const auto* c = core("mproc::RLock::recursion_depth");
    return detail::held_by_caller(c) ? c->count.load(std::memory_order_relaxed) : 0;
  }

  void mproc_encode(detail::Writer& w) const { encode(w, detail::SyncKind::rlock); }
  static RLock mproc_decode(detail::Reader& r);

 private:
  bool acquire_until(detail::Deadline deadline) {
    return detail::rlock_acquire(core("mproc::RLock::acquire"), deadline);
  }
};

}  // namespace mproc
