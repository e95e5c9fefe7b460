// lock_core.cpp: the lock operations behind Lock, RLock and every lock
// embedded in another primitive (detail/sync_core.hpp), and the wire form
// of references to shared primitives.
//
// The algorithm, and why it survives a holder's death, is in
// docs/design/locks.md. The lock word is a 64-bit atomic: 0 when free,
// otherwise the holder's OwnerId (pid | start time << 32), plus kWaitersBit
// in the low half when someone may sleep on it. The low half is the futex.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <limits>
#include <string>

#include "mproc/detail/sync_core.hpp"
#include "mproc/errors.hpp"

namespace mproc::detail {

namespace {

using std::chrono::steady_clock;

// No spinning before the first sleep (as glibc's default mutex and
// Python's Lock): a waiter that spins takes the lock the moment it is
// released, so under contention its line moves between the cores on
// every acquisition; one that sleeps lets the holder run on with the line
// in its cache. Two processes hammering a Value's lock (W9), quiet 2-core
// machine, 7 alternating rounds: 100 spins 19.7M ops/s, 10 spins 20.2M,
// none 28.3M (the raw pthread mutex: 21.8M); Queue streaming, whose locks
// are these too, did not change.
// A sleeper wakes up after at most this long to check whether the holder
// still lives; the slice doubles up to kMaxSlice while the holder lives.
constexpr auto kFirstSlice = std::chrono::milliseconds(10);
constexpr auto kMaxSlice = std::chrono::milliseconds(100);
// Non-blocking attempts (try_lock, a zero timeout) look at /proc at most
// this often per lock, so that polling a lock held by a live process does
// not cost a /proc read every time.
constexpr std::int64_t kTryCheckIntervalNs = 1000000;

bool expired(const Deadline& d) { return d && steady_clock::now() >= *d; }

std::uint64_t owner_of(std::uint64_t state) { return state & ~kWaitersBit; }

// Takes over the lock from its holder, seen in state `seen`, if that
// holder has died. One compare-and-swap decides among several waiters that
// noticed the death together; the winner keeps kWaitersBit set because the
// others may be asleep.
bool take_over(LockCore* c, std::uint64_t seen, std::uint64_t me) {
  if (seen == 0 || !owner_dead(owner_of(seen))) return false;
  if (!c->state.compare_exchange_strong(seen, me | kWaitersBit, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
    return false;
  }
  c->recovered.store(1, std::memory_order_relaxed);
  c->deaths.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// take_over for a non-blocking attempt (try_lock, a zero timeout, the end
// of a timed wait): a thread looks at /proc at most once per
// kTryCheckIntervalNs, so that polling a lock that a live process holds
// does not cost a /proc read every time. Per thread rather than per lock:
// no shared state to keep, and a thread polling several locks still checks
// each of them within a few intervals.
bool take_over_rate_limited(LockCore* c, std::uint64_t me) {
  static thread_local std::int64_t last_check_ns = std::numeric_limits<std::int64_t>::min() / 2;
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(steady_clock::now().time_since_epoch()).count();
  if (now - last_check_ns < kTryCheckIntervalNs) return false;
  last_check_ns = now;
  return take_over(c, c->state.load(std::memory_order_relaxed), me);
}

}  // namespace

bool lock_acquire_slow(LockCore* c, Deadline deadline) {
  const std::uint64_t me = self_owner_id();
  // Before the first sleep the lock is taken as a plain holder. After a
  // sleep it is taken with kWaitersBit: other sleepers may exist, and the
  // release that woke us cleared the bit, so our own release must wake the
  // next one (the classic futex mutex, Drepper's "Futexes are tricky").
  std::uint64_t take_as = me;
  auto slice = std::chrono::duration_cast<steady_clock::duration>(kFirstSlice);
  for (;;) {
    std::uint64_t s = c->state.load(std::memory_order_relaxed);
    if (s == 0) {
      if (c->state.compare_exchange_weak(s, take_as, std::memory_order_acquire, std::memory_order_relaxed)) {
        return true;
      }
      continue;
    }
    if (expired(deadline)) {
      // Out of time (or a non-blocking attempt): the last chance is a
      // holder that died.
      return take_over_rate_limited(c, me);
    }
    if ((s & kWaitersBit) == 0) {
      if (!c->state.compare_exchange_weak(s, s | kWaitersBit, std::memory_order_relaxed,
                                          std::memory_order_relaxed)) {
        continue;
      }
      s |= kWaitersBit;
    }
    take_as = me | kWaitersBit;
    Deadline wake = steady_clock::now() + slice;
    if (deadline && *deadline < *wake) wake = deadline;
    if (!futex_wait(c->futex_word(), static_cast<std::uint32_t>(s), wake)) {
      // Nobody woke us within the slice. Either the holder is busy, or it
      // died (and will never wake anyone), or a release's wake-up was lost
      // because the releaser died between its store and its wake.
      if (take_over(c, c->state.load(std::memory_order_relaxed), me)) return true;
      slice = std::min<steady_clock::duration>(slice * 2, kMaxSlice);
    }
  }
}

void lock_release(LockCore* c, const char* who) {
  if (c->state.load(std::memory_order_relaxed) == 0) {
    throw Error(std::string(who) + ": the lock is not held");
  }
  if (c->recovered.load(std::memory_order_relaxed) != 0) c->recovered.store(0, std::memory_order_relaxed);
  c->owner_tid.store(0, std::memory_order_relaxed);
  const std::uint64_t old = c->state.exchange(0, std::memory_order_release);
  if (old == 0) {
    // Someone else released it between our check and our exchange.
    throw Error(std::string(who) + ": the lock is not held");
  }
  if ((old & kWaitersBit) != 0) futex_wake(c->futex_word(), 1);
}

bool held_by_caller(const LockCore* c) noexcept {
  const std::uint64_t s = c->state.load(std::memory_order_relaxed);
  return s != 0 && owner_of(s) == self_owner_id() && c->owner_tid.load(std::memory_order_relaxed) == self_tid();
}

bool rlock_acquire_slow(LockCore* c, std::uint64_t seen, Deadline deadline) {
  // (The inline rlock_acquire tried to take a free lock with one CAS: no
  // read of the line first, which would cost a second cache-line transfer
  // under contention. `seen` is what it found.)
  const std::uint64_t me = self_owner_id();
  const std::uint32_t tid = self_tid();
  if (owner_of(seen) == me && c->owner_tid.load(std::memory_order_relaxed) == tid) {
    const std::uint32_t n = c->count.load(std::memory_order_relaxed);
    if (n == std::numeric_limits<std::uint32_t>::max()) {
      throw Error("mproc::RLock::acquire: the lock is already held 4294967295 times by this thread");
    }
    c->count.store(n + 1, std::memory_order_relaxed);
    return true;
  }
  if (!lock_acquire_slow(c, deadline)) return false;
  c->owner_tid.store(tid, std::memory_order_relaxed);
  c->count.store(1, std::memory_order_relaxed);
  return true;
}

namespace {
// The last release of an RLock by its owner.
void rlock_release_fully(LockCore* c) {
  c->count.store(0, std::memory_order_relaxed);
  c->owner_tid.store(0, std::memory_order_relaxed);
  if (c->recovered.load(std::memory_order_relaxed) != 0) c->recovered.store(0, std::memory_order_relaxed);
  const std::uint64_t old = c->state.exchange(0, std::memory_order_release);
  if ((old & kWaitersBit) != 0) futex_wake(c->futex_word(), 1);
}
}  // namespace

void rlock_release_slow(LockCore* c, const char* who) {
  if (!held_by_caller(c)) {
    throw Error(std::string(who) + ": the lock is not held by the calling thread");
  }
  const std::uint32_t n = c->count.load(std::memory_order_relaxed);
  if (n > 1) {
    c->count.store(n - 1, std::memory_order_relaxed);
    return;
  }
  rlock_release_fully(c);
}

std::uint32_t lock_release_all(LockCore* c, const char* who) {
  if (c->kind == SyncKind::rlock) {
    if (!held_by_caller(c)) throw Error(std::string(who) + ": the lock is not held by the calling thread");
    const std::uint32_t depth = std::max<std::uint32_t>(1, c->count.load(std::memory_order_relaxed));
    rlock_release_fully(c);
    return depth;
  }
  lock_release(c, who);
  return 1;
}

void lock_acquire_restore(LockCore* c, std::uint32_t depth) {
  if (c->kind == SyncKind::rlock) {
    rlock_acquire(c, std::nullopt);
    c->count.store(std::max<std::uint32_t>(1, depth), std::memory_order_relaxed);
  } else {
    lock_acquire(c, std::nullopt);
  }
}

// ----------------------------------------------------- region references ---

std::shared_ptr<SharedRegion> new_sync_region(std::size_t size, const char* tag) {
  return SharedRegion::create(size, tag);
}

void encode_sync_ref(Writer& w, SyncKind kind, const SharedRegion& region, const void* core) {
  w.write_pod(static_cast<std::uint32_t>(kind));
  region.encode(w);
  const auto offset = static_cast<std::uint64_t>(static_cast<const char*>(core) -
                                                 static_cast<const char*>(region.data()));
  w.write_pod(offset);
}

SyncRef decode_sync_ref(Reader& r, SyncKind kind, std::size_t core_size, std::size_t core_align,
                        std::size_t kind_offset) {
  const auto got = r.read_pod<std::uint32_t>();
  if (got != static_cast<std::uint32_t>(kind)) {
    throw SerializationError("mproc: malformed message: expected a handle of kind " +
                             std::to_string(static_cast<std::uint32_t>(kind)) + ", found kind " +
                             std::to_string(got));
  }
  SyncRef ref;
  ref.region = SharedRegion::decode(r);
  const auto offset = r.read_pod<std::uint64_t>();
  if (offset > ref.region->size() || ref.region->size() - offset < core_size || offset % core_align != 0) {
    throw SerializationError("mproc: malformed message: a synchronization handle points outside its "
                             "shared memory (offset " +
                             std::to_string(offset) + " of " + std::to_string(ref.region->size()) + " bytes)");
  }
  char* core = ref.region->as<char>(static_cast<std::size_t>(offset));
  SyncKind stored{};
  std::memcpy(&stored, core + kind_offset, sizeof stored);
  if (stored != kind) {
    throw SerializationError("mproc: malformed message: the shared memory of a synchronization handle "
                             "does not hold that kind of primitive");
  }
  ref.core = core;
  return ref;
}

void throw_empty_handle(const char* who) {
  throw Error(std::string(who) + ": the handle is empty (default-constructed or moved-from)");
}

}  // namespace mproc::detail
