// condition.hpp: mproc::Condition, a condition variable shared between
// processes (Python's multiprocessing.Condition).
//
//   mproc::Condition cond;                      // owns an RLock, as in Python
//   mproc::Value<int> items(0);
//   void consumer(mproc::Condition cond, mproc::Value<int> items) {
//     std::unique_lock guard(cond);
//     cond.wait_for([&] { return items.value() > 0; });
//     items.value() -= 1;
//   }
//   // producer: { std::lock_guard g(cond); items.value() += 1; cond.notify(); }
//
// A Condition pairs a lock (its own RLock, or a Lock or RLock given to the
// constructor) with a wait queue. wait() must be called with the lock held:
// it releases the lock (an RLock completely, whatever its depth), sleeps
// until notified, and takes the lock back (to the same depth) before it
// returns. notify(n) wakes up to n of the threads that were waiting when it
// was called, and notify_all() all of them; both must be called with the
// lock held. There are no spurious wake-ups: wait(timeout) returns true only
// when this waiter was notified, false only when the time ran out.
//
// Handles are copyable and refer to the same condition (and lock) in every
// process; pass them to a Process or pool task as ordinary arguments.
//
// Death: a holder of the lock that dies is handled by the lock (the waiter
// gets the lock back; previous_owner_died() says so). A waiter that gave a
// timeout is never stuck on a notifier that died. A waiter that dies while
// waiting may absorb one notify() meant for another (notify_all() always
// reaches every live waiter); see docs/design/locks.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/shm_region.hpp"
#include "mproc/detail/sync_core.hpp"
#include "mproc/lock.hpp"

namespace mproc {

class Condition {
 public:
  // A condition with its own new RLock (Python's default).
  Condition();
  // A condition over an existing Lock or RLock (shared with every other
  // user of that lock).
  explicit Condition(const Lock& lock);
  explicit Condition(const RLock& lock);

  // The lock's operations (see Lock / RLock).
  void acquire() { take(std::nullopt); }
  bool acquire(bool blocking) {
    return take(blocking ? detail::Deadline{} : detail::Deadline{std::chrono::steady_clock::now()});
  }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return take(detail::deadline_after(timeout));
  }
  void release();
  void lock() { acquire(); }
  bool try_lock() { return acquire(false); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return acquire(timeout);
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> tp) {
    return take(detail::deadline_at(tp));
  }
  void unlock() { release(); }

  // Waits until notified. The caller must hold the lock (mproc::Error
  // otherwise); it holds it again when wait returns.
  void wait() { wait_until(std::nullopt); }
  // Waits at most `timeout` for a notification: true if notified, false if
  // the time ran out. Either way the lock is held again on return (taking
  // it back may take longer than `timeout` if another holds it).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(detail::deadline_after(timeout));
  }
  // Waits until pred() is true (checked first, then after each wake-up,
  // always with the lock held). Returns pred()'s last value.
  template <class Pred>
  bool wait_for(Pred pred) {
    bool result = pred();
    while (!result) {
      wait();
      result = pred();
    }
    return result;
  }
  // As above, but gives up after `timeout` in all (Python's
  // wait_for(predicate, timeout)); returns pred()'s last value.
  template <class Pred, class Rep, class Period>
  bool wait_for(Pred pred, std::chrono::duration<Rep, Period> timeout) {
    const detail::Deadline deadline = detail::deadline_after(timeout);
    bool result = pred();
    while (!result) {
      if (deadline && std::chrono::steady_clock::now() >= *deadline) break;
      wait_until(deadline);
      result = pred();
    }
    return result;
  }

  // Wakes up to `n` waiters (default 1). The caller must hold the lock.
  void notify(int n = 1);
  // Wakes every waiter. The caller must hold the lock.
  void notify_all() { notify(std::numeric_limits<int>::max()); }

  // The lock's report (Lock::previous_owner_died): true while the present
  // holding was taken over from a process that died holding the lock.
  bool previous_owner_died() const { return lock_core("mproc::Condition")->recovered.load() != 0; }

  explicit operator bool() const noexcept { return core_ != nullptr; }

  // Copies share the object; a moved-from handle stays a working copy.
  Condition(const Condition&) = default;
  Condition& operator=(const Condition&) = default;

  void mproc_encode(detail::Writer& w) const;
  static Condition mproc_decode(detail::Reader& r);

 private:
  Condition(std::shared_ptr<detail::SharedRegion> region, detail::ConditionCore* core,
            std::shared_ptr<detail::SharedRegion> lock_region, detail::LockCore* lock) noexcept
      : region_(std::move(region)), core_(core), lock_region_(std::move(lock_region)), lock_(lock) {}
  detail::LockCore* lock_core(const char* who) const {
    if (lock_ == nullptr) detail::throw_empty_handle(who);
    return lock_;
  }
  bool take(detail::Deadline deadline) {
    auto* lk = lock_core("mproc::Condition::acquire");
    return lk->kind == detail::SyncKind::rlock ? detail::rlock_acquire(lk, deadline)
                                               : detail::lock_acquire(lk, deadline);
  }
  bool wait_until(detail::Deadline deadline);

  std::shared_ptr<detail::SharedRegion> region_;
  detail::ConditionCore* core_ = nullptr;
  std::shared_ptr<detail::SharedRegion> lock_region_;
  detail::LockCore* lock_ = nullptr;
};

}  // namespace mproc
