// semaphore.cpp: counting semaphores in shared memory (semaphore.hpp).
//
// The count is the futex word itself. A taker decrements it with a
// compare-and-swap while it is positive and otherwise sleeps on it while it
// reads 0; a giver increments it and wakes sleepers only when the `waiters`
// counter says someone may sleep. Both sides use sequentially consistent
// operations on the two words (taker: waiters++ then the kernel reads the
// count; giver: count++ then reads waiters), so either the giver sees the
// waiter or the waiter's futex_wait sees the new count: no lost wake-up.

#include "mproc/semaphore.hpp"

#include <new>
#include <string>

#include "mproc/errors.hpp"

namespace mproc {
namespace detail {

namespace {
constexpr int kSpins = 100;

bool try_take(SemaphoreCore* c) {
  std::uint32_t v = c->value.load(std::memory_order_relaxed);
  while (v > 0) {
    if (c->value.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

bool expired(const Deadline& d) { return d && std::chrono::steady_clock::now() >= *d; }
}  // namespace

bool semaphore_acquire(SemaphoreCore* c, Deadline deadline) {
  if (try_take(c)) return true;
  if (expired(deadline)) return false;
  for (int i = 0; i < kSpins; ++i) {
    cpu_relax();
    if (c->value.load(std::memory_order_relaxed) != 0 && try_take(c)) return true;
  }
  for (;;) {
    if (try_take(c)) return true;
    c->waiters.fetch_add(1, std::memory_order_seq_cst);
    const bool woken = futex_wait(&c->value, 0, deadline);
    c->waiters.fetch_sub(1, std::memory_order_relaxed);
    if (!woken) return try_take(c);  // the deadline: one last look
  }
}

void semaphore_release(SemaphoreCore* c, std::uint32_t n, const char* who) {
  std::uint32_t v = c->value.load(std::memory_order_relaxed);
  for (;;) {
    if (c->bounded != 0 && (v > c->bound || n > c->bound - v)) {
      throw Error(std::string(who) + ": released too many times (the value would exceed the initial value " +
                  std::to_string(c->bound) + ")");
    }
    if (v > kSemaphoreMax || n > kSemaphoreMax - v) {
      throw Error(std::string(who) + ": the value would exceed 2^31 - 1");
    }
    if (c->value.compare_exchange_weak(v, v + n, std::memory_order_seq_cst, std::memory_order_relaxed)) break;
  }
  if (c->waiters.load(std::memory_order_seq_cst) != 0) {
    futex_wake(&c->value, n > static_cast<std::uint32_t>(1 << 30) ? 1 << 30 : static_cast<int>(n));
  }
}

}  // namespace detail

Semaphore::Semaphore(int value, bool bounded, const char* tag) {
  if (value < 0) {
    throw Error(std::string("mproc::") + tag + ": the initial value must be >= 0 (got " + std::to_string(value) + ")");
  }
  region_ = detail::new_sync_region(sizeof(detail::SemaphoreCore), tag);
  core_ = new (region_->data()) detail::SemaphoreCore{};
  core_->value.store(static_cast<std::uint32_t>(value), std::memory_order_relaxed);
  core_->bounded = bounded ? 1 : 0;
  core_->bound = static_cast<std::uint32_t>(value);
}

void Semaphore::release(int n) {
  auto* c = core("mproc::Semaphore::release");
  const char* who = c->bounded != 0 ? "mproc::BoundedSemaphore::release" : "mproc::Semaphore::release";
  if (n < 1) throw Error(std::string(who) + ": n must be >= 1 (got " + std::to_string(n) + ")");
  detail::semaphore_release(c, static_cast<std::uint32_t>(n), who);
}

void Semaphore::mproc_encode(detail::Writer& w) const {
  detail::encode_sync_ref(w, detail::SyncKind::semaphore, *region_, core("mproc: sending a Semaphore"));
}

Semaphore Semaphore::mproc_decode(detail::Reader& r) {
  std::shared_ptr<detail::SharedRegion> region;
  auto* core = detail::decode_core<detail::SemaphoreCore>(r, detail::SyncKind::semaphore, region);
  return Semaphore(std::move(region), core);
}

BoundedSemaphore BoundedSemaphore::mproc_decode(detail::Reader& r) {
  std::shared_ptr<detail::SharedRegion> region;
  auto* core = detail::decode_core<detail::SemaphoreCore>(r, detail::SyncKind::semaphore, region);
  if (core->bounded == 0) {
    throw SerializationError("mproc: malformed message: a BoundedSemaphore was expected, found a Semaphore");
  }
  return BoundedSemaphore(std::move(region), core);
}

}  // namespace mproc
