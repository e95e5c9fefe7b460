// condition.cpp: the shared condition variable (condition.hpp).
//
// The wait queue is three counters packed into one 64-bit atomic, plus a
// futex word `seq` that counts notifications:
//   fresh    - waiters registered since the last notification;
//   eligible - waiters registered before it, not chosen yet;
//   tokens   - wake-ups granted by notify() and not yet taken.
// A waiter registers (fresh + 1) and reads `seq` into `g` while it holds the
// user's lock, then releases the lock. notify(n), also under the lock, moves
// every fresh waiter to eligible, turns k = min(n, eligible) of them into
// tokens, bumps `seq` and wakes k sleepers. A waiter may take a token only
// once `seq` differs from its `g`, i.e. only a notification that came after
// it started waiting can wake it: a thread that calls notify() and then
// wait() can never consume its own notification (the "stolen wake-up"),
// which is what makes wake-ups exact: every wait that returns true was
// chosen by a notify that happened while it waited, and notify(n) hands out
// at most n such wake-ups.
//
// Invariant: fresh + eligible + tokens = waiters inside wait(). A waiter
// that times out takes the lock back first and then leaves: with a token if
// one is there (it was notified after all: it returns true), otherwise it
// removes itself from eligible (or fresh, if no notification came since it
// registered). Registration, notify and leaving all happen under the user's
// lock; only taking a token does not, and that is a compare-and-swap on the
// same 64-bit word.

#include "mproc/condition.hpp"

#include <algorithm>
#include <new>
#include <string>

#include "mproc/errors.hpp"

namespace mproc {
namespace detail {

namespace {

constexpr unsigned kBits = 21;
constexpr std::uint64_t kFieldMax = (std::uint64_t{1} << kBits) - 1;
constexpr unsigned kTokensShift = 0;
constexpr unsigned kEligibleShift = kBits;
constexpr unsigned kFreshShift = 2 * kBits;

std::uint64_t field(std::uint64_t c, unsigned shift) { return (c >> shift) & kFieldMax; }
std::uint64_t pack(std::uint64_t fresh, std::uint64_t eligible, std::uint64_t tokens) {
  return (fresh << kFreshShift) | (eligible << kEligibleShift) | (tokens << kTokensShift);
}

void require_held(const LockCore* lk, const char* who) {
  if (!held_by_caller(lk)) throw Error(std::string(who) + ": the condition's lock is not held by the caller");
}

bool take_token(ConditionCore* c) {
  std::uint64_t cur = c->counts.load(std::memory_order_relaxed);
  while (field(cur, kTokensShift) > 0) {
    if (c->counts.compare_exchange_weak(cur, cur - (std::uint64_t{1} << kTokensShift), std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

// A waiter that stops waiting without having taken a token (timeout, or an
// error), with the lock held again. Returns true if it takes a token after
// all (a notification chose it while it was timing out).
bool leave(ConditionCore* c, std::uint32_t g) {
  std::uint64_t cur = c->counts.load(std::memory_order_relaxed);
  for (;;) {
    const bool notified_since = c->seq.load(std::memory_order_relaxed) != g;
    const std::uint64_t fresh = field(cur, kFreshShift);
    const std::uint64_t eligible = field(cur, kEligibleShift);
    const std::uint64_t tokens = field(cur, kTokensShift);
    std::uint64_t next = 0;
    bool took_token = false;
    if (notified_since && tokens > 0) {
      next = pack(fresh, eligible, tokens - 1);
      took_token = true;
    } else if (notified_since && eligible > 0) {
      next = pack(fresh, eligible - 1, tokens);
    } else if (fresh > 0) {
      next = pack(fresh - 1, eligible, tokens);
    } else if (eligible > 0) {
      // Only reachable if the lock was not really held around notify()
      // (a Lock cannot tell who holds it): keep the counters sane.
      next = pack(fresh, eligible - 1, tokens);
    } else {
      return false;
    }
    if (c->counts.compare_exchange_weak(cur, next, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return took_token;
    }
  }
}

}  // namespace

bool condition_wait(ConditionCore* c, LockCore* lk, Deadline deadline, const char* who) {
  require_held(lk, who);
  const std::uint64_t cur = c->counts.load(std::memory_order_relaxed);
  if (field(cur, kFreshShift) + field(cur, kEligibleShift) + field(cur, kTokensShift) >= kFieldMax) {
    throw Error(std::string(who) + ": too many waiters (at most " + std::to_string(kFieldMax - 1) + ")");
  }
  c->counts.fetch_add(std::uint64_t{1} << kFreshShift, std::memory_order_seq_cst);
  const std::uint32_t g = c->seq.load(std::memory_order_relaxed);
  std::uint32_t depth = 0;
  try {
    depth = lock_release_all(lk, who);
  } catch (...) {
    leave(c, g);
    throw;
  }
  bool notified = false;
  try {
    for (;;) {
      const std::uint32_t s = c->seq.load(std::memory_order_acquire);
      if (s != g && take_token(c)) {
        notified = true;
        break;
      }
      if (!futex_wait(&c->seq, s, deadline)) break;  // the deadline
    }
  } catch (...) {
    lock_acquire_restore(lk, depth);
    leave(c, g);
    throw;
  }
  lock_acquire_restore(lk, depth);
  if (!notified) notified = leave(c, g);
  return notified;
}

void condition_notify(ConditionCore* c, LockCore* lk, std::uint32_t n, const char* who) {
  require_held(lk, who);
  if (n == 0) return;
  std::uint64_t cur = c->counts.load(std::memory_order_relaxed);
  std::uint64_t k = 0;
  for (;;) {
    const std::uint64_t waiting = field(cur, kFreshShift) + field(cur, kEligibleShift);
    if (waiting == 0) return;  // nobody to wake: no notification at all
    k = std::min<std::uint64_t>(n, waiting);
    const std::uint64_t next = pack(0, waiting - k, field(cur, kTokensShift) + k);
    if (c->counts.compare_exchange_weak(cur, next, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
  }
  c->seq.fetch_add(1, std::memory_order_release);
  futex_wake(&c->seq, static_cast<int>(std::min<std::uint64_t>(k, 1 << 30)));
}

}  // namespace detail

namespace {
constexpr std::size_t kLockOffset = 64;  // the own RLock, after the ConditionCore
static_assert(sizeof(detail::ConditionCore) <= kLockOffset);
}  // namespace

Condition::Condition() {
  region_ = detail::new_sync_region(kLockOffset + sizeof(detail::LockCore), "Condition");
  core_ = new (region_->data()) detail::ConditionCore{};
  lock_ = new (region_->as<char>(kLockOffset)) detail::LockCore{};
  lock_->kind = detail::SyncKind::rlock;
  lock_region_ = region_;
}

Condition::Condition(const Lock& lock) {
  if (!lock) detail::throw_empty_handle("mproc::Condition(Lock)");
  region_ = detail::new_sync_region(sizeof(detail::ConditionCore), "Condition");
  core_ = new (region_->data()) detail::ConditionCore{};
  lock_region_ = lock.region();
  lock_ = lock.core_ptr();
}

Condition::Condition(const RLock& lock) {
  if (!lock) detail::throw_empty_handle("mproc::Condition(RLock)");
  region_ = detail::new_sync_region(sizeof(detail::ConditionCore), "Condition");
  core_ = new (region_->data()) detail::ConditionCore{};
  lock_region_ = lock.region();
  lock_ = lock.core_ptr();
}

void Condition::release() {
  auto* lk = lock_core("mproc::Condition::release");
  if (lk->kind == detail::SyncKind::rlock) {
    detail::rlock_release(lk, "mproc::Condition::release");
  } else {
    detail::lock_release(lk, "mproc::Condition::release");
  }
}

bool Condition::wait_until(detail::Deadline deadline) {
  auto* lk = lock_core("mproc::Condition::wait");
  return detail::condition_wait(core_, lk, deadline, "mproc::Condition::wait");
}

void Condition::notify(int n) {
  auto* lk = lock_core("mproc::Condition::notify");
  if (n < 0) throw Error("mproc::Condition::notify: n must be >= 0 (got " + std::to_string(n) + ")");
  detail::condition_notify(core_, lk, static_cast<std::uint32_t>(n), "mproc::Condition::notify");
}

// Wire form: the condition's reference, then one byte saying whether its
// lock lives in the same region (its own RLock: then only the lock's offset
// follows, and the receiver maps one memfd, not two), then the lock.
void Condition::mproc_encode(detail::Writer& w) const {
  if (core_ == nullptr) detail::throw_empty_handle("mproc: sending a Condition");
  detail::encode_sync_ref(w, detail::SyncKind::condition, *region_, core_);
  const bool same = lock_region_ == region_;
  w.write_pod(static_cast<std::uint8_t>(same ? 1 : 0));
  if (same) {
    w.write_pod(static_cast<std::uint32_t>(lock_->kind));
    w.write_pod(static_cast<std::uint64_t>(reinterpret_cast<char*>(lock_) - region_->as<char>()));
  } else {
    detail::encode_sync_ref(w, lock_->kind, *lock_region_, lock_);
  }
}

Condition Condition::mproc_decode(detail::Reader& r) {
  std::shared_ptr<detail::SharedRegion> region;
  auto* core = detail::decode_core<detail::ConditionCore>(r, detail::SyncKind::condition, region);
  const auto same = r.read_pod<std::uint8_t>();
  if (same == 1) {
    const auto kind = static_cast<detail::SyncKind>(r.read_pod<std::uint32_t>());
    const auto offset = r.read_pod<std::uint64_t>();
    if (kind != detail::SyncKind::rlock || offset != kLockOffset ||
        region->size() < kLockOffset + sizeof(detail::LockCore) ||
        region->as<detail::LockCore>(kLockOffset)->kind != detail::SyncKind::rlock) {
      throw SerializationError("mproc: malformed message: a Condition's own lock is not where it should be");
    }
    auto* lock = region->as<detail::LockCore>(kLockOffset);
    auto lock_region = region;
    return Condition(std::move(region), core, std::move(lock_region), lock);
  }
  if (same != 0) throw SerializationError("mproc: malformed message: bad Condition lock flag");
  // The lock's kind is the first field of its reference; peek at it.
  detail::Reader peek = r;
  const auto kind = static_cast<detail::SyncKind>(peek.read_pod<std::uint32_t>());
  if (kind != detail::SyncKind::lock && kind != detail::SyncKind::rlock) {
    throw SerializationError("mproc: malformed message: a Condition's lock is neither a Lock nor an RLock");
  }
  std::shared_ptr<detail::SharedRegion> lock_region;
  auto* lock = detail::decode_core<detail::LockCore>(r, kind, lock_region);
  return Condition(std::move(region), core, std::move(lock_region), lock);
}

}  // namespace mproc
