// barrier.hpp: mproc::Barrier, a meeting point for a fixed number of
// processes (Python's multiprocessing.Barrier).
//
//   mproc::Barrier barrier(3);
//   void worker(mproc::Barrier barrier) {
//     prepare();
//     barrier.wait();          // returns once all three have arrived
//     go();
//   }
//
// wait() blocks until `parties` callers (threads of any processes) have
// called it, then releases them all together and starts the next cycle. It
// returns the caller's arrival index in its cycle, 0 for the first and
// parties - 1 for the last (different for every caller, as in Python).
//
// A barrier breaks when abort() is called, when a wait(timeout) runs out of
// time (or the default timeout given to the constructor), or when reset() is
// called while some are waiting: every waiter and every later wait() throw
// mproc::BrokenBarrierError until reset() is called. Handles are copyable
// and refer to the same barrier in every process (a memfd, nothing in
// /dev/shm).
//
// Death: a party that dies before arriving leaves the others waiting; a
// wait with a timeout then breaks the barrier instead of hanging (so give
// one wherever a party can die). Death inside the barrier's own short
// critical sections is survived like a Lock holder's.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/shm_region.hpp"
#include "mproc/detail/sync_core.hpp"
#include "mproc/errors.hpp"

namespace mproc {

class Barrier {
 public:
  // An empty handle: every operation throws mproc::Error. Assign a real
  // barrier to it.
  Barrier() noexcept = default;
  // A barrier for `parties` callers (>= 1, else mproc::Error), with no
  // default timeout.
  explicit Barrier(int parties) : Barrier(parties, std::int64_t{-1}) {}
  // A barrier whose wait() without arguments gives up after `timeout`
  // (Python's Barrier(parties, timeout=...)).
  template <class Rep, class Period>
  Barrier(int parties, std::chrono::duration<Rep, Period> timeout) : Barrier(parties, to_ns(timeout)) {}

  // Waits for the others; returns the arrival index (0 .. parties-1).
  // Throws mproc::BrokenBarrierError if the barrier is or becomes broken,
  // and breaks it if the default timeout runs out.
  int wait();
  // Waits at most `timeout`; when it runs out, breaks the barrier (for
  // everyone) and throws mproc::BrokenBarrierError.
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) {
    return detail::barrier_wait(core("mproc::Barrier::wait"), detail::deadline_after(timeout),
                                "mproc::Barrier::wait");
  }
  // Back to the initial, unbroken, empty state; current waiters get
  // BrokenBarrierError.
  void reset() { detail::barrier_reset(core("mproc::Barrier::reset")); }
  // Breaks the barrier: current and later waiters get BrokenBarrierError
  // until reset().
  void abort() { detail::barrier_abort(core("mproc::Barrier::abort")); }

  // The number of callers needed to pass.
  int parties() const { return static_cast<int>(core("mproc::Barrier::parties")->parties); }
  // How many are waiting in the current cycle (0 when broken).
  int n_waiting() const { return detail::barrier_n_waiting(core("mproc::Barrier::n_waiting")); }
  // Is it broken?
  bool broken() const { return detail::barrier_broken(core("mproc::Barrier::broken")); }

  explicit operator bool() const noexcept { return core_ != nullptr; }

  // Copies share the object; a moved-from handle stays a working copy.
  Barrier(const Barrier&) = default;
  Barrier& operator=(const Barrier&) = default;

  void mproc_encode(detail::Writer& w) const;
  static Barrier mproc_decode(detail::Reader& r);

 private:
  Barrier(int parties, std::int64_t default_timeout_ns);
  Barrier(std::shared_ptr<detail::SharedRegion> region, detail::BarrierCore* core) noexcept
      : region_(std::move(region)), core_(core) {}
  template <class Rep, class Period>
  static std::int64_t to_ns(std::chrono::duration<Rep, Period> timeout) {
    using namespace std::chrono;
    if (timeout <= duration<Rep, Period>::zero()) return 0;
    if (duration_cast<duration<double>>(timeout).count() > 1e9) return -1;  // practically never
    return ceil<nanoseconds>(timeout).count();
  }
  detail::BarrierCore* core(const char* who) const {
    if (core_ == nullptr) detail::throw_empty_handle(who);
    return core_;
  }

  std::shared_ptr<detail::SharedRegion> region_;
  detail::BarrierCore* core_ = nullptr;
};

}  // namespace mproc
