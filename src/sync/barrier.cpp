// barrier.cpp: the shared Barrier (barrier.hpp).
//
// The state (parties, arrivals, broken flag, number of ended cycles) is
// guarded by a robust LockCore inside the barrier, so a party that dies in
// one of these short critical sections does not block the others. Sleeping
// is on a separate futex word that every cycle end (pass, break, reset)
// bumps.
//
// How a waiter learns how its cycle ended: cycles are numbered; a waiter
// that arrived when `cycles` was E belongs to cycle E + 1, and it is done
// as soon as `cycles` moved past E. Whether that cycle passed or broke is
// looked up in a ring of the numbers of the last 32 cycles that ended
// broken. A barrier stays broken until reset(), so 32 broken cycles need 32
// resets in the time one waiter takes to wake up; should the ring ever have
// been overrun, the waiter reports its cycle as broken (an error, never a
// false pass). Nothing needs a waiter to leave before the next cycle can
// start, so a waiter that dies after its cycle ended changes nothing.

#include "mproc/barrier.hpp"

#include <new>
#include <string>

namespace mproc {
namespace detail {

namespace {

// Holds the barrier's own lock; released early with unlock().
class Guard {
 public:
  explicit Guard(BarrierCore* c) : c_(c) { lock(); }
  ~Guard() {
    if (held_) lock_release(&c_->mu, "mproc::Barrier (internal lock)");
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  void lock() {
    lock_acquire(&c_->mu, std::nullopt);
    held_ = true;
  }
  void unlock() {
    held_ = false;
    lock_release(&c_->mu, "mproc::Barrier (internal lock)");
  }

 private:
  BarrierCore* c_;
  bool held_ = false;
};

// Ends the current cycle as broken (with the lock held); its waiters will
// throw. Returns whether there were waiters to wake.
bool end_cycle_broken(BarrierCore* c) {
  if (c->count == 0) return false;
  c->count = 0;
  c->cycles += 1;
  c->broken_cycles[c->ring_next % BarrierCore::kBrokenRing] = c->cycles;
  c->ring_next += 1;
  return true;
}

bool cycle_broke(const BarrierCore* c, std::uint64_t cycle) {
  std::uint64_t oldest = ~std::uint64_t{0};
  for (std::uint64_t n : c->broken_cycles) {
    if (n == cycle) return true;
    if (n != 0 && n < oldest) oldest = n;
  }
  const bool ring_full = c->ring_next >= BarrierCore::kBrokenRing;
  return ring_full && cycle < oldest;  // overrun: unknown, say broken
}

void bump_and_wake(BarrierCore* c, Guard& g) {
  c->word.fetch_add(1, std::memory_order_release);
  g.unlock();
  futex_wake_all(&c->word);
}

}  // namespace

int barrier_wait(BarrierCore* c, Deadline deadline, const char* who) {
  Guard g(c);
  if (c->broken != 0) throw BrokenBarrierError(std::string(who) + ": the barrier is broken");
  const std::uint64_t mine = c->cycles + 1;
  const auto index = static_cast<int>(c->count);
  c->count += 1;
  if (c->count >= c->parties) {
    c->count = 0;
    c->cycles = mine;
    bump_and_wake(c, g);
    return index;
  }
  for (;;) {
    const std::uint32_t w = c->word.load(std::memory_order_relaxed);
    g.unlock();
    const bool woken = futex_wait(&c->word, w, deadline);
    g.lock();
    if (c->cycles >= mine) {
      if (cycle_broke(c, mine)) {
        throw BrokenBarrierError(std::string(who) +
                                 ": the barrier was broken while waiting (abort, reset, or another "
                                 "party's timeout)");
      }
      return index;
    }
    if (!woken) {
      c->broken = 1;
      end_cycle_broken(c);
      bump_and_wake(c, g);
      throw BrokenBarrierError(std::string(who) + ": timed out; the barrier is now broken");
    }
  }
}

void barrier_abort(BarrierCore* c) {
  Guard g(c);
  c->broken = 1;
  end_cycle_broken(c);
  bump_and_wake(c, g);
}

void barrier_reset(BarrierCore* c) {
  Guard g(c);
  end_cycle_broken(c);
  c->broken = 0;
  bump_and_wake(c, g);
}

int barrier_n_waiting(BarrierCore* c) {
  Guard g(c);
  return c->broken != 0 ? 0 : static_cast<int>(c->count);
}

bool barrier_broken(BarrierCore* c) {
  Guard g(c);
  return c->broken != 0;
}

}  // namespace detail

Barrier::Barrier(int parties, std::int64_t default_timeout_ns) {
  if (parties < 1) {
    throw Error("mproc::Barrier: parties must be >= 1 (got " + std::to_string(parties) + ")");
  }
  region_ = detail::new_sync_region(sizeof(detail::BarrierCore), "Barrier");
  core_ = new (region_->data()) detail::BarrierCore{};
  core_->parties = static_cast<std::uint32_t>(parties);
  core_->default_timeout_ns = default_timeout_ns;
}

int Barrier::wait() {
  auto* c = core("mproc::Barrier::wait");
  detail::Deadline deadline;
  if (c->default_timeout_ns >= 0) deadline = detail::deadline_after(std::chrono::nanoseconds(c->default_timeout_ns));
  return detail::barrier_wait(c, deadline, "mproc::Barrier::wait");
}

void Barrier::mproc_encode(detail::Writer& w) const {
  detail::encode_sync_ref(w, detail::SyncKind::barrier, *region_, core("mproc: sending a Barrier"));
}

Barrier Barrier::mproc_decode(detail::Reader& r) {
  std::shared_ptr<detail::SharedRegion> region;
  auto* core = detail::decode_core<detail::BarrierCore>(r, detail::SyncKind::barrier, region);
  if (core->parties == 0) throw SerializationError("mproc: malformed message: a Barrier with no parties");
  return Barrier(std::move(region), core);
}

}  // namespace mproc
