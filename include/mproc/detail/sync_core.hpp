// detail/sync_core.hpp: the shared-memory layouts of mproc's
// synchronization primitives, the identity of a lock owner, and the lock
// operations that every lock-like handle (Lock, RLock, the lock of a
// Condition, of a Value or an Array) is built from.
//
// Every primitive is a small struct in a detail::SharedRegion (a memfd
// mapping, so nothing can leak in /dev/shm), used by all processes that map
// it. All blocking goes through shared futexes (detail/futex.hpp). The
// structs hold only lock-free, address-free atomics and plain integers, so
// they mean the same thing in every process whatever address the region is
// mapped at.
//
// Why locks survive the death of their owner is explained in
// docs/design/locks.md; in short: the lock word holds the owner's pid and
// the low 32 bits of its start time (/proc/<pid>/stat), a waiter sleeps in
// bounded slices and, after each slice, checks whether that process still
// exists (a zombie or a reused pid counts as dead); if not, it takes the
// lock over with one compare-and-swap and marks the lock "recovered".
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/shm_region.hpp"

namespace mproc::detail {

static_assert(std::endian::native == std::endian::little,
              "mproc's lock word puts the futex in the low half of a 64-bit word (little-endian only)");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free,
              "mproc's shared primitives need lock-free (address-free) 32- and 64-bit atomics");

// ------------------------------------------------------------ identities ---

// Who holds a lock: the low 32 bits are the holder's pid (at most 2^22 on
// Linux, so bits 30 and 31 are free), the high 32 bits the low 32 bits of the
// holder's start time in clock ticks since boot. The pair names one process
// for ever: a pid reused by a later process comes with another start time.
// Never 0 (a pid is never 0).
using OwnerId = std::uint64_t;

inline constexpr std::uint64_t kOwnerPidMask = 0x3fffffffu;
// Set in a held lock's word when a process may be asleep waiting for it.
inline constexpr std::uint64_t kWaitersBit = 0x80000000u;

// The cached OwnerId of this process (0 until first computed; reset in a
// forked child by a pthread_atfork handler, see src/posix/owner.cpp).
extern std::atomic<std::uint64_t> g_self_owner_id;
OwnerId compute_self_owner_id() noexcept;

// This process's OwnerId. Cheap: one relaxed load after the first call.
inline OwnerId self_owner_id() noexcept {
  const OwnerId id = g_self_owner_id.load(std::memory_order_relaxed);
  return id != 0 ? id : compute_self_owner_id();
}

// Bumped in every forked child (src/posix/owner.cpp): a thread's cached
// tid is valid only for the generation it was computed in.
extern std::atomic<std::uint32_t> g_fork_generation;
// The calling thread's cache: (generation + 1) << 32 | tid; 0 = unknown.
// (__thread, not thread_local: no TLS wrapper call, since it needs no
// dynamic initialisation.)
extern __thread std::uint64_t t_tid_cache;
std::uint32_t self_tid_slow() noexcept;

// The calling thread's kernel thread id, cached per thread (and recomputed
// in a forked child). Inline: every RLock operation asks.
inline std::uint32_t self_tid() noexcept {
  const std::uint64_t cached = t_tid_cache;
  if ((cached >> 32) == std::uint64_t{g_fork_generation.load(std::memory_order_relaxed)} + 1) {
    return static_cast<std::uint32_t>(cached);
  }
  return self_tid_slow();
}

// True when the process that `owner` names has ended: no process has its
// pid, or it is a zombie, or the pid now belongs to a process with another
// start time. False when it runs, and also whenever /proc cannot answer
// (a wrong "dead" would hand a held lock to a second owner; a wrong "alive"
// only delays the takeover to the next check).
bool owner_dead(OwnerId owner) noexcept;

// Whether process `pid` exists and has not ended (a zombie has ended), read
// from /proc (kill(pid, 0) where /proc cannot tell). For
// ProcessInfo::is_alive.
bool process_running(std::uint32_t pid) noexcept;

// A polite pause inside a spin loop.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// ----------------------------------------------------------------- kinds ---

// What a shared struct is; written once at creation and checked when a
// handle arrives from another process, so a frame can never make one kind
// of primitive be used as another.
enum class SyncKind : std::uint32_t {
  lock = 0x6d704c01,
  rlock = 0x6d704c02,
  semaphore = 0x6d705301,
  condition = 0x6d704301,
  event = 0x6d704501,
  barrier = 0x6d704201,
  value = 0x6d705601,
  raw_value = 0x6d705602,
  array = 0x6d704101,
  raw_array = 0x6d704102,
};

// ------------------------------------------------------------------ lock ---

// The shared state of a Lock or an RLock (also embedded in a Condition's,
// a Value's and an Array's region). One cache line.
struct alignas(64) LockCore {
  // Low half: the futex word (holder pid | kWaitersBit), high half: the
  // holder's start time; 0 when unlocked.
  std::atomic<std::uint64_t> state{0};
  // The holding thread (a Lock's too: a Condition's wait and notify check
  // that the caller holds its lock, as Python's do), and an RLock's
  // recursion depth. Written by the holder.
  std::atomic<std::uint32_t> owner_tid{0};
  std::atomic<std::uint32_t> count{0};
  // 1 while the present holding was taken over from a dead holder; cleared
  // by the release.
  std::atomic<std::uint32_t> recovered{0};
  SyncKind kind = SyncKind::lock;
  // How many times a dead holder's lock was taken over, ever.
  std::atomic<std::uint64_t> deaths{0};

  std::atomic<std::uint32_t>* futex_word() noexcept {
    // The low 32 bits of `state` (little-endian): the kernel compares and
    // sleeps on them; user space only ever touches `state` as a whole.
    return reinterpret_cast<std::atomic<std::uint32_t>*>(&state);
  }
};
static_assert(sizeof(LockCore) == 64);

// The contended path of lock_acquire (src/sync/lock_core.cpp): spins
// briefly, then sleeps in bounded slices, taking over from a dead holder.
bool lock_acquire_slow(LockCore* c, Deadline deadline);

// Takes the lock (not recursively) for this process; false at `deadline`.
inline bool lock_acquire(LockCore* c, Deadline deadline) {
  std::uint64_t expected = 0;
  if (c->state.compare_exchange_strong(expected, self_owner_id(), std::memory_order_acquire,
                                       std::memory_order_relaxed)) [[likely]] {
    c->owner_tid.store(self_tid(), std::memory_order_relaxed);
    return true;
  }
  if (!lock_acquire_slow(c, deadline)) return false;
  c->owner_tid.store(self_tid(), std::memory_order_relaxed);
  return true;
}

// Releases a held lock, whoever holds it (Lock semantics). Throws
// mproc::Error naming `who` if it is not locked.
void lock_release(LockCore* c, const char* who);

// RLock: recursive acquire by the calling thread; release only by the
// holding thread (mproc::Error naming `who` otherwise). Taking a free lock
// and the last release are inline: they are nearly all the traffic of a
// Value's or an Array's get_lock(), and as calls they cost twice what the
// two atomic instructions do. Recursion, contention and errors go to the
// _slow functions (src/sync/lock_core.cpp); `seen` is the word the inline
// compare-and-swap found.
bool rlock_acquire_slow(LockCore* c, std::uint64_t seen, Deadline deadline);
void rlock_release_slow(LockCore* c, const char* who);

inline bool rlock_acquire(LockCore* c, Deadline deadline) {
  std::uint64_t seen = 0;
  if (c->state.compare_exchange_strong(seen, self_owner_id(), std::memory_order_acquire,
                                       std::memory_order_relaxed)) [[likely]] {
    c->owner_tid.store(self_tid(), std::memory_order_relaxed);
    c->count.store(1, std::memory_order_relaxed);
    return true;
  }
  return rlock_acquire_slow(c, seen, deadline);
}

inline void rlock_release(LockCore* c, const char* who) {
  const std::uint64_t s = c->state.load(std::memory_order_relaxed);
  if ((s & ~kWaitersBit) == self_owner_id() && c->owner_tid.load(std::memory_order_relaxed) == self_tid() &&
      c->count.load(std::memory_order_relaxed) == 1) [[likely]] {
    // Cleared before the lock word: a thread of this process that takes
    // the lock next must never see our tid beside its own holding.
    c->count.store(0, std::memory_order_relaxed);
    c->owner_tid.store(0, std::memory_order_relaxed);
    if (c->recovered.load(std::memory_order_relaxed) != 0) c->recovered.store(0, std::memory_order_relaxed);
    const std::uint64_t old = c->state.exchange(0, std::memory_order_release);
    if ((old & kWaitersBit) != 0) futex_wake(c->futex_word(), 1);
    return;
  }
  rlock_release_slow(c, who);
}
// Does the calling thread hold this Lock or RLock?
bool held_by_caller(const LockCore* c) noexcept;

// For Condition::wait: release completely (an RLock whatever its depth) and
// later take it back to the same depth. release_all returns the depth.
std::uint32_t lock_release_all(LockCore* c, const char* who);
void lock_acquire_restore(LockCore* c, std::uint32_t depth);

// Is the lock held (by anyone)?
inline bool lock_locked(const LockCore* c) noexcept {
  return c->state.load(std::memory_order_relaxed) != 0;
}

// ---------------------------------------------------- region references ---

// A handle's view of its shared struct: the mapping that holds it (kept
// alive by the shared_ptr) and where in it the struct lies.
struct SyncRef {
  std::shared_ptr<SharedRegion> region;
  void* core = nullptr;
};

// A fresh zero-filled region of `size` bytes (tag for /proc listings).
std::shared_ptr<SharedRegion> new_sync_region(std::size_t size, const char* tag);

// The wire form of a reference: kind, the region's descriptor, and the
// struct's offset in it.
void encode_sync_ref(Writer& w, SyncKind kind, const SharedRegion& region, const void* core);
// The inverse. Checks that the kind is `kind`, that a struct of
// `core_size` bytes fits at the offset, that the offset is aligned to
// `core_align`, and that the `SyncKind` stored at `kind_offset` inside the
// struct agrees; anything else is a SerializationError.
SyncRef decode_sync_ref(Reader& r, SyncKind kind, std::size_t core_size, std::size_t core_align,
                        std::size_t kind_offset);

template <class Core>
Core* decode_core(Reader& r, SyncKind kind, std::shared_ptr<SharedRegion>& region_out) {
  SyncRef ref = decode_sync_ref(r, kind, sizeof(Core), alignof(Core), offsetof(Core, kind));
  region_out = std::move(ref.region);
  return static_cast<Core*>(ref.core);
}

// Throws mproc::Error "<who>: the handle is empty (default-constructed or
// moved-from)".
[[noreturn]] void throw_empty_handle(const char* who);

// ------------------------------------------------------------- semaphore ---

struct alignas(64) SemaphoreCore {
  std::atomic<std::uint32_t> value{0};    // futex word: units available
  std::atomic<std::uint32_t> waiters{0};  // threads that may be asleep
  SyncKind kind = SyncKind::semaphore;    // also for a BoundedSemaphore
  std::uint32_t bounded = 0;              // 1 for a BoundedSemaphore
  std::uint32_t bound = 0;                // BoundedSemaphore: the initial value
};

// The largest value a semaphore can have (Python's SEM_VALUE_MAX).
inline constexpr std::uint32_t kSemaphoreMax = 0x7fffffff;

bool semaphore_acquire(SemaphoreCore* c, Deadline deadline);
void semaphore_release(SemaphoreCore* c, std::uint32_t n, const char* who);

// ----------------------------------------------------------------- event ---

struct alignas(64) EventCore {
  // bit 0: the flag; bit 1: someone may sleep; bits 2..: how many times the
  // flag went from clear to set (so a waiter woken by a set() that was
  // followed at once by a clear() still knows it was set).
  std::atomic<std::uint32_t> word{0};
  SyncKind kind = SyncKind::event;
};

void event_set(EventCore* c);
void event_clear(EventCore* c) noexcept;
bool event_wait(EventCore* c, Deadline deadline);

// ------------------------------------------------------------- condition ---

struct alignas(64) ConditionCore {
  // futex word: how many notifications that woke someone were made.
  std::atomic<std::uint32_t> seq{0};
  SyncKind kind = SyncKind::condition;
  // Three 21-bit counters (see src/sync/condition.cpp): waiters registered
  // since the last notification (`fresh`), waiters older than it not yet
  // chosen (`eligible`), and wake-ups granted but not yet taken (`tokens`).
  std::atomic<std::uint64_t> counts{0};
};

// Condition::wait with the lock `lk` held by the caller; false on timeout.
bool condition_wait(ConditionCore* c, LockCore* lk, Deadline deadline, const char* who);
// Condition::notify(n) with the lock `lk` held by the caller.
void condition_notify(ConditionCore* c, LockCore* lk, std::uint32_t n, const char* who);

// ---------------------------------------------------------------- barrier ---

struct BarrierCore {
  LockCore mu;  // guards every field below but `word`
  std::atomic<std::uint32_t> word{0};  // futex: bumped at every cycle end
  SyncKind kind = SyncKind::barrier;
  std::uint32_t parties = 0;
  std::uint32_t count = 0;         // arrivals in the current cycle
  std::uint32_t broken = 0;
  std::uint32_t ring_next = 0;
  std::uint64_t cycles = 0;        // cycles ended (passed or broken)
  std::int64_t default_timeout_ns = -1;  // -1: none
  // The numbers of the last kBrokenRing cycles that ended broken, so that
  // a waiter that wakes late learns how *its* cycle ended.
  static constexpr std::uint32_t kBrokenRing = 32;
  std::uint64_t broken_cycles[kBrokenRing] = {};
};

// Barrier::wait: the arrival index, or BrokenBarrierError.
int barrier_wait(BarrierCore* c, Deadline deadline, const char* who);
void barrier_abort(BarrierCore* c);
void barrier_reset(BarrierCore* c);
int barrier_n_waiting(BarrierCore* c);
bool barrier_broken(BarrierCore* c);

}  // namespace mproc::detail
