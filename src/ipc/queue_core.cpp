// queue_core.cpp: the shared-memory queue engine (detail/queue_core.hpp;
// the design, with every crash case, is docs/design/queue.md).
//
// Layout of the heap memfd, by offset:
//   [0, 64 KiB)   QueueShared: constants, the three locks, futex words,
//                 the state words (changed only through the redo log), the
//                 redo log itself.
//   [64 KiB, ...) blocks. A block of class c is 2^(16+c) bytes, aligned to
//                 its size (to 1 GiB beyond that), allocated from a free
//                 list per class or from the top of the heap. Small items
//                 live in class-0 blocks used as segments: a segment holds
//                 entries one after the other; an entry is a header
//                 {kind, length} and its payload padded to 8 bytes: an
//                 inline item, a reference to a large item's own block, or
//                 "continue in segment X". head and tail are heap offsets
//                 into the first and last segment.
//
// Three robust locks (mproc's LockCore: the holder's pid and start time
// in the lock word; a waiter takes over from a holder that died) guard the
// state, each with its own cache lines so
// that a producer and a consumer streaming items do not pass one line back
// and forth on every operation: the put lock (with the tail and the count
// of puts), the get lock (with the head and the count of gets), and the
// heap lock (allocator, in-flight slots, joinable count, mproc::wait).
// Lock order: get, put, heap.
//
// Crash safety rests on three rules:
//  1. Under a lock, nothing a reader can see changes until the commit:
//     bytes are written beyond the tail (or into blocks nobody else owns),
//     then every state word that changes is written into that lock's redo
//     log, the log is marked valid, applied, and cleared. A process that
//     dies holding the lock leaves either no trace or a valid log, which
//     the next holder (taking the lock over) replays. A transaction under the heap
//     lock may also change the put side's or the get side's words when its
//     thread holds that lock too; so repairing the put or get lock first
//     takes the heap lock, which replays such a log before anyone reads
//     those words.
//  2. Large items are copied outside the locks, into a block that only
//     the copier can reach; the item enters the chain (one entry, under
//     the put and heap locks) only when complete. A copier that dies leaves
//     an unreachable block, recorded in an in-flight slot with its OwnerId,
//     and reclaimed once that process is seen dead.
//  3. Sleepers sleep in bounded slices, so a wake-up lost with a process
//     that died between being woken and taking its item only delays the
//     others.

#include "mproc/detail/queue_core.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>

#include "mproc/detail/scratch.hpp"
#include "mproc/detail/sync_core.hpp"
#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

using std::chrono::steady_clock;

constexpr std::uint64_t kMagic = 0x3165755171707250ull;  // "PrpqQue1"
constexpr std::uint32_t kVersion = 3;  // 3: three locks (put, get, heap)

constexpr unsigned kArenaShift = 30;
constexpr std::uint64_t kArenaSize = std::uint64_t{1} << kArenaShift;
// Offsets below kHeapLimit are reachable through the arena windows; every
// block lies below it.
constexpr std::size_t kArenaSlots = 1024;
constexpr std::uint64_t kHeapLimit = std::uint64_t{kArenaSlots} << kArenaShift;  // 1 TiB

constexpr unsigned kMinShift = 16;  // class 0: 64 KiB
constexpr std::uint32_t kClasses = 24;  // class 23: 512 GiB
constexpr std::uint64_t kHeaderBytes = std::uint64_t{1} << kMinShift;
constexpr std::uint64_t kSegmentBytes = std::uint64_t{1} << kMinShift;
// A free block keeps its first page (its free-list link) when its other
// pages are given back.
constexpr std::uint64_t kLinkPage = 4096;
// Free blocks up to 1 MiB stay populated, at most this many per class, so a
// steady stream reuses warm pages instead of faulting fresh ones. Segments
// (class 0) keep more: a producer that runs ahead of its consumer holds
// many of them, and each one punched and faulted in again cost 16 page
// faults and a fallocate per 4096 small items.
constexpr std::uint32_t kKeepHot = 2;
constexpr std::uint32_t kKeepHotSegments = 8;
constexpr std::uint32_t kHotMaxClass = 4;

constexpr int kSlots = 64;
constexpr std::uint32_t kLogMax = 40;

// How long a getter spins on the item count before it sleeps, and the
// longest single sleep (see rule 3 above).
constexpr std::int64_t kSpinMaxNs = 20000;
constexpr std::int64_t kSpinMinNs = 200;
constexpr auto kSlice = std::chrono::milliseconds(200);

enum : std::uint32_t { kInline = 1, kRef = 2, kNext = 3 };
enum : std::uint64_t { kSlotWriter = 1, kSlotReader = 2 };

// The state words, by index (a redo log names words by index). The first
// four live on the put and get sides' own lines, the rest in the heap
// lock's array (QueueShared::word).
enum Word : std::uint32_t {
  kTail,     // put side: end of the last committed entry
  kPutSeq,   // put side: items ever put
  kHead,     // get side: the oldest entry
  kGetSeq,   // get side: items ever taken
  kTop,
  kFileSize,
  kDoneSeq,  // JoinableQueue: task_done() calls; unfinished = puts - this
  kSlotsUsed,
  kFreeHead,                        // + class
  kFreeCount = kFreeHead + kClasses,  // + class
  kSlotOwner = kFreeCount + kClasses,  // + slot: OwnerId, 0 when free
  kSlotBlock = kSlotOwner + kSlots,    // + slot: block offset
  kSlotInfo = kSlotBlock + kSlots,     // + slot: kind << 32 | class
  kWords = kSlotInfo + kSlots,
};

struct EntryHeader {
  std::uint32_t kind;
  std::uint32_t length;
};
struct RefPayload {
  std::uint64_t off;
  std::uint64_t length;
  std::uint64_t cls;
};

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) & ~(a - 1); }
constexpr std::uint64_t class_size(std::uint32_t cls) { return std::uint64_t{1} << (kMinShift + cls); }
constexpr std::uint64_t entry_size(std::uint64_t payload) { return sizeof(EntryHeader) + align_up(payload, 8); }

std::uint32_t class_for(std::uint64_t n) {
  for (std::uint32_t c = 0; c < kClasses; ++c) {
    if (class_size(c) >= n) return c;
  }
  throw Error("Queue::put: an item of " + std::to_string(n) + " bytes is too large for a queue");
}

// This thread's copy of the last small item taken (decoded after the lock
// is released). Separate from the Connection scratch buffer on purpose.
ByteBuffer& item_buffer() {
  thread_local ByteBuffer b;
  return b;
}

}  // namespace

// Sleepers waiting for one condition. All three fields change under one
// mutex: "not empty" under the put lock (producers signal it while they
// hold it), "not full" under the get lock, "all tasks done" under the heap
// lock.
struct WaitSet {
  std::atomic<std::uint32_t> word;      // the futex word; bumped by every wake
  std::atomic<std::uint32_t> sleeping;  // sleepers that counted themselves in
  std::atomic<std::uint32_t> pending;   // a wake is on its way, not yet taken
};

// A redo log (rule 1). Entries are only touched under its lock.
struct RedoLog {
  std::atomic<std::uint32_t> n;
  struct Entry {
    std::uint32_t word;
    std::uint64_t value;
  } e[kLogMax];
};

// One end of the FIFO. The lock, and the words only its own side reads,
// stay in that side's cache; the position (tail / head) has a line of its own, because the other side
// reads it: a consumer that has caught up reads the tail, and must not
// take the producers' lock line with it each time. `seen` is a cache of
// the other end, valid under this lock: the get side keeps the last tail
// it read (items up to it can be taken without reading the tail again),
// the put side the last count of gets (a bounded queue has at least that
// much room).
struct alignas(64) QueueEnd {
  LockCore lock;  // one line of its own (sync_core.hpp)
  std::atomic<std::uint64_t> seq;  // items put / taken
  std::atomic<std::uint64_t> seen;
  alignas(64) std::atomic<std::uint64_t> pos;  // tail / head
};
static_assert(sizeof(QueueEnd) == 192, "a queue end is three cache lines");

// Copies a few bytes without a call into the C library: an int's encoding
// is 4 bytes, and a memcpy of unknown length costs more than the rest of
// the copy. Two overlapping fixed-size copies cover 4 to 16 bytes.
inline void copy_bytes(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
  if (n >= 4 && n <= 16) {
    if (n >= 8) {
      std::memcpy(dst, src, 8);
      std::memcpy(dst + n - 8, src + n - 8, 8);
    } else {
      std::memcpy(dst, src, 4);
      std::memcpy(dst + n - 4, src + n - 4, 4);
    }
    return;
  }
  if (n != 0) std::memcpy(dst, src, n);
}

struct QueueShared {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t joinable;
  std::int64_t maxsize;

  // Producers write the first lines (lock, counts, tail, log), consumers
  // the next ones; while items flow, only the data and the tail (when a
  // consumer has taken every item it knew of) cross between the cores.
  QueueEnd put;
  alignas(64) RedoLog put_log;
  alignas(64) QueueEnd get;
  alignas(64) RedoLog get_log;

  LockCore heap_lock;
  std::atomic<std::uint64_t> w[kWords];  // kTop onwards
  alignas(64) RedoLog heap_log;

  // Read by every put (items, pollers) or get (space, armed), written only
  // when someone sleeps or polls: these lines stay shared in every cache
  // while items flow.
  alignas(64) WaitSet items;
  // mproc::wait: processes polling the eventfd (changed under the put and
  // heap locks), and whether it is signalled (heap lock).
  std::atomic<std::uint32_t> pollers;
  std::atomic<std::uint32_t> armed;
  alignas(64) WaitSet space;
  alignas(64) WaitSet done;

  std::atomic<std::uint64_t>& word(std::uint32_t i) noexcept {
    switch (i) {
      case kTail: return put.pos;
      case kPutSeq: return put.seq;
      case kHead: return get.pos;
      case kGetSeq: return get.seq;
      default: return w[i];
    }
  }
};
static_assert(sizeof(QueueShared) <= kHeaderBytes);

// A set of state-word changes applied all at once through one lock's redo
// log (rule 1). Reads see the pending values.
class QueueCore::Txn {
 public:
  Txn(QueueShared* s, RedoLog& log) noexcept : s_(s), log_(log) {}
  std::uint64_t get(std::uint32_t word) const noexcept {
    for (std::uint32_t i = 0; i < n_; ++i) {
      if (e_[i].word == word) return e_[i].value;
    }
    return s_->word(word).load(std::memory_order_relaxed);
  }
  void set(std::uint32_t word, std::uint64_t value) {
    for (std::uint32_t i = 0; i < n_; ++i) {
      if (e_[i].word == word) {
        e_[i].value = value;
        return;
      }
    }
    if (n_ == kLogMax) throw Error("mproc: internal error: queue transaction too large");
    e_[n_++] = {word, value};
  }
  bool empty() const noexcept { return n_ == 0; }
  void add(std::uint32_t word, std::int64_t delta) { set(word, get(word) + static_cast<std::uint64_t>(delta)); }
  // The common put and get: two words, in order, through the log. Written
  // out so that no call to memcpy is made for a few bytes.
  static void commit2(QueueShared* s, RedoLog& log, std::uint32_t w0, std::uint64_t v0, std::uint32_t w1,
                      std::uint64_t v1) noexcept {
    log.e[0].word = w0;
    log.e[0].value = v0;
    log.e[1].word = w1;
    log.e[1].value = v1;
    log.n.store(2, std::memory_order_release);
    s->word(w0).store(v0, std::memory_order_release);
    s->word(w1).store(v1, std::memory_order_release);
    log.n.store(0, std::memory_order_release);
  }
  void commit() noexcept {
    if (n_ == 0) return;
    // The log lines belong to the lock holder's side, so logging even
    // the common put and get costs a few stores to a line already in this
    // core's cache.
    std::memcpy(static_cast<void*>(log_.e), e_, sizeof(e_[0]) * n_);
    log_.n.store(n_, std::memory_order_release);
    apply(s_, log_.e, n_);
    log_.n.store(0, std::memory_order_release);
    n_ = 0;
  }
  // In order, with release stores: a consumer that reads the tail without
  // the put lock (acquire) then sees the entry's bytes.
  static void apply(QueueShared* s, const RedoLog::Entry* e, std::uint32_t n) noexcept {
    for (std::uint32_t i = 0; i < n; ++i) {
      if (e[i].word < kWords) s->word(e[i].word).store(e[i].value, std::memory_order_release);
    }
  }

 private:
  QueueShared* s_;
  RedoLog& log_;
  std::uint32_t n_ = 0;
  RedoLog::Entry e_[kLogMax];
};

// Holds one of the queue's locks for a scope.
class QueueCore::Lock {
 public:
  Lock(QueueCore& q, Which m) : q_(q), m_(m) { q_.lock(m_); }
  ~Lock() { q_.unlock(m_); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  QueueCore& q_;
  Which m_;
};

// ------------------------------------------------------------- lifetime ---

QueueCore::QueueCore(UniqueFd heap, UniqueFd event)
    : heap_(std::move(heap)), event_(std::move(event)), arenas_(std::make_unique<std::atomic<std::byte*>[]>(kArenaSlots)) {}

QueueCore::~QueueCore() {
  for (std::size_t i = 0; i < kArenaSlots; ++i) {
    if (std::byte* p = arenas_[i].load(std::memory_order_relaxed)) ::munmap(p, kArenaSize);
  }
}

// Every put and get reaches its entry through here: the common case (the
// window is mapped) is inline, the mapping itself out of line.
inline std::byte* QueueCore::arena(std::uint64_t index) const {
  std::byte* p = arenas_[index].load(std::memory_order_acquire);
  if (p != nullptr) [[likely]] return p;
  return map_arena(index);
}

std::byte* QueueCore::map_arena(std::uint64_t index) const {
  // MAP_NORESERVE and beyond the end of the file: only pages that blocks
  // really use ever get memory; the file grows under the mutex before any
  // block in the new range is handed out.
  void* m = ::mmap(nullptr, kArenaSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, heap_.get(),
                   static_cast<off_t>(index << kArenaShift));
  if (m == MAP_FAILED) throw_errno("Queue: mapping the shared heap");
  std::byte* expected = nullptr;
  if (!arenas_[index].compare_exchange_strong(expected, static_cast<std::byte*>(m), std::memory_order_acq_rel)) {
    ::munmap(m, kArenaSize);  // another thread mapped it first
    return expected;
  }
  return static_cast<std::byte*>(m);
}

inline std::byte* QueueCore::at(std::uint64_t off) const {
  return arena(off >> kArenaShift) + (off & (kArenaSize - 1));
}

std::shared_ptr<QueueCore> QueueCore::create(std::int64_t maxsize, bool joinable) {
  UniqueFd heap(::memfd_create("mproc:queue", MFD_CLOEXEC));
  if (!heap) throw_errno("Queue: memfd_create");
  if (::ftruncate(heap.get(), static_cast<off_t>(kHeaderBytes + kSegmentBytes)) != 0) {
    throw_errno("Queue: sizing the shared heap");
  }
  UniqueFd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event) throw_errno("Queue: eventfd");
  std::shared_ptr<QueueCore> q(new QueueCore(std::move(heap), std::move(event)));
  q->shared_ = reinterpret_cast<QueueShared*>(q->arena(0));
  q->init_header(maxsize, joinable);
  return q;
}

void QueueCore::init_header(std::int64_t maxsize, bool joinable) {
  QueueShared* s = new (shared_) QueueShared{};  // the three locks start free
  s->maxsize = maxsize > 0 ? maxsize : 0;
  s->joinable = joinable ? 1 : 0;
  s->get.pos.store(kHeaderBytes, std::memory_order_relaxed);
  s->get.seen.store(kHeaderBytes, std::memory_order_relaxed);
  s->put.pos.store(kHeaderBytes, std::memory_order_relaxed);
  s->w[kTop].store(kHeaderBytes + kSegmentBytes, std::memory_order_relaxed);
  s->w[kFileSize].store(kHeaderBytes + kSegmentBytes, std::memory_order_relaxed);
  s->version = kVersion;
  s->magic = kMagic;
}

void QueueCore::encode(Writer& w) const {
  w.write_fd(heap_.get());
  w.write_fd(event_.get());
}

std::shared_ptr<QueueCore> QueueCore::decode(Reader& r) {
  const int heap_fd = r.read_fd();
  const int event_fd = r.read_fd();
  struct stat st {};
  if (::fstat(heap_fd, &st) != 0) throw_errno("Queue: fstat of a received queue");
  if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) < kHeaderBytes + kSegmentBytes) {
    throw SerializationError("mproc: malformed Queue handle: the descriptor is not a queue");
  }
  std::shared_ptr<QueueCore> q(new QueueCore(dup_cloexec(heap_fd), dup_cloexec(event_fd)));
  q->shared_ = reinterpret_cast<QueueShared*>(q->arena(0));
  q->check_header();
  return q;
}

void QueueCore::check_header() const {
  if (shared_->magic != kMagic || shared_->version != kVersion) {
    throw SerializationError("mproc: malformed Queue handle: the shared memory is not a queue");
  }
}

std::int64_t QueueCore::maxsize() const noexcept { return shared_->maxsize; }
bool QueueCore::joinable() const noexcept { return shared_->joinable != 0; }
std::size_t QueueCore::qsize() const noexcept {
  // Gets first: the count of gets never passes the count of puts read
  // after it, except while a segment-crossing put is between its two
  // stores (tail first there); clamp that moment to zero.
  const std::uint64_t gets = shared_->get.seq.load(std::memory_order_acquire);
  const std::uint64_t puts = shared_->put.seq.load(std::memory_order_acquire);
  return puts > gets ? static_cast<std::size_t>(puts - gets) : 0;
}

// ----------------------------------------------------------------- locks ---

inline LockCore& QueueCore::lock_of(Which which) const noexcept {
  QueueShared* s = shared_;
  return which == kPutLock ? s->put.lock : which == kGetLock ? s->get.lock : s->heap_lock;
}

inline void QueueCore::lock(Which which) {
  // mproc's own robust lock (sync_core.hpp, docs/design/locks.md): one
  // compare-and-swap when free; otherwise a short spin, then sleeps in
  // bounded slices, after each of which a holder that has died is taken
  // over and the lock marked recovered. It costs about two thirds of a
  // robust pthread mutex (no robust-list bookkeeping on every lock and
  // unlock), and a small put or get is little more than one lock and one
  // unlock.
  LockCore& c = lock_of(which);
  lock_acquire(&c, std::nullopt);
  if (c.recovered.load(std::memory_order_relaxed) != 0) [[unlikely]] {
    // Taken over from a process that died holding it (rule 1): finish or
    // forget its change. Cleared only afterwards, so that dying in the
    // middle of a repair leaves the next holder to repair again.
    repair(which);
    c.recovered.store(0, std::memory_order_relaxed);
  }
}

inline void QueueCore::unlock(Which which) noexcept {
  LockCore& c = lock_of(which);
  if ((c.state.exchange(0, std::memory_order_release) & kWaitersBit) != 0) futex_wake(c.futex_word(), 1);
}

void QueueCore::repair(Which which) noexcept {
  QueueShared* s = shared_;
  RedoLog& log = which == kPutLock ? s->put_log : which == kGetLock ? s->get_log : s->heap_log;
  const std::uint32_t n = log.n.load(std::memory_order_acquire);
  if (n > 0 && n <= kLogMax) Txn::apply(s, log.e, n);
  log.n.store(0, std::memory_order_release);
  if (which == kHeapLock) {
    try {
      reclaim_dead_slots();
    } catch (...) {
      // Mapping failed: the slots are reclaimed on a later try.
    }
    return;
  }
  // The dead process may have been inside a heap transaction that moves
  // this side's words (a put crossing into a new segment, a get taking a
  // large item): taking the heap lock replays it (its own takeover)
  // before this side's words are read.
  try {
    lock(kHeapLock);
    unlock(kHeapLock);
  } catch (...) {
    // Not expected (the lock waits for ever); nothing more to do here.
  }
  if (which == kPutLock) {
    // Re-read the count of gets on the next full check; a wake the dead
    // producer was about to send must not stop the next one.
    s->put.seen.store(0, std::memory_order_relaxed);
    s->items.pending.store(0, std::memory_order_relaxed);
  } else {
    // The head is always a safe "last tail seen": items up to it are gone.
    s->get.seen.store(s->get.pos.load(std::memory_order_relaxed), std::memory_order_relaxed);
    s->space.pending.store(0, std::memory_order_relaxed);
  }
}

bool QueueCore::sleep_on(WaitSet& ws, Deadline deadline) {
  // The joinable "all tasks done" condition, under the heap lock.
  const auto now = steady_clock::now();
  if (deadline && now >= *deadline) return false;
  const std::uint32_t seq = ws.word.load(std::memory_order_relaxed);
  ws.sleeping.fetch_add(1, std::memory_order_relaxed);
  unlock(kHeapLock);
  Deadline until = now + kSlice;
  if (deadline && *deadline < *until) until = deadline;
  // A waker that changes the condition after our unlock sees us counted
  // and bumps the word, so this wait returns at once: no wake-up is missed.
  futex_wait(&ws.word, seq, until);
  lock(kHeapLock);
  ws.sleeping.fetch_sub(1, std::memory_order_relaxed);
  ws.pending.store(0, std::memory_order_relaxed);
  return true;
}

bool QueueCore::sleep_on_items(Deadline deadline) {
  // Called with the get lock held and the queue seen empty. The sleeper
  // counts itself in under the put lock, which every producer holds when
  // it commits and signals: a put either committed before (we see its
  // item and do not sleep) or sees us counted (and bumps the word, so the
  // futex wait returns at once). No fence is needed on the put path.
  QueueShared* s = shared_;
  const auto now = steady_clock::now();
  if (deadline && now >= *deadline) return false;
  lock(kPutLock);
  if (s->put.pos.load(std::memory_order_acquire) != s->get.pos.load(std::memory_order_relaxed)) {
    unlock(kPutLock);
    return true;
  }
  const std::uint32_t seq = s->items.word.load(std::memory_order_relaxed);
  s->items.sleeping.fetch_add(1, std::memory_order_relaxed);
  unlock(kPutLock);
  unlock(kGetLock);
  Deadline until = now + kSlice;
  if (deadline && *deadline < *until) until = deadline;
  futex_wait(&s->items.word, seq, until);
  lock(kGetLock);
  lock(kPutLock);
  s->items.sleeping.fetch_sub(1, std::memory_order_relaxed);
  // We took the pending wake: the next signal may go out. With both locks
  // held the count is exact; if more items are there than the one we are
  // about to take while others sleep, pass the signal on (a put may have
  // skipped its wake because ours was pending).
  s->items.pending.store(0, std::memory_order_relaxed);
  const std::uint64_t count =
      s->put.seq.load(std::memory_order_relaxed) - s->get.seq.load(std::memory_order_relaxed);
  const bool wake = count >= 2 && signal(s->items);
  unlock(kPutLock);
  if (wake) futex_wake(&s->items.word, 1);
  return true;
}

bool QueueCore::sleep_on_space(Deadline deadline) {
  // Called with the put lock held and a bounded queue seen full. The
  // sleeper counts itself in under the get lock, which every consumer
  // holds when it commits and signals (see sleep_on_items); the lock
  // order (get before put) makes us let go of the put lock first.
  QueueShared* s = shared_;
  const auto now = steady_clock::now();
  if (deadline && now >= *deadline) return false;
  unlock(kPutLock);
  lock(kGetLock);
  lock(kPutLock);
  if (has_room()) {
    unlock(kGetLock);
    return true;
  }
  const std::uint32_t seq = s->space.word.load(std::memory_order_relaxed);
  s->space.sleeping.fetch_add(1, std::memory_order_relaxed);
  unlock(kPutLock);
  unlock(kGetLock);
  Deadline until = now + kSlice;
  if (deadline && *deadline < *until) until = deadline;
  futex_wait(&s->space.word, seq, until);
  lock(kGetLock);
  lock(kPutLock);
  s->space.sleeping.fetch_sub(1, std::memory_order_relaxed);
  s->space.pending.store(0, std::memory_order_relaxed);
  const std::uint64_t count =
      s->put.seq.load(std::memory_order_relaxed) - s->get.seq.load(std::memory_order_relaxed);
  const bool wake = count + 2 <= static_cast<std::uint64_t>(s->maxsize) && signal(s->space);
  unlock(kGetLock);
  if (wake) futex_wake(&s->space.word, 1);
  return true;
}

bool QueueCore::signal(WaitSet& ws) noexcept {
  // One wake at a time: while a woken sleeper has not yet come back for
  // the lock it still counts as sleeping, and waking it again (one system
  // call per put) would only slow the waker down. The sleeper that comes
  // back passes the signal on if there is more to take (sleep_on_items,
  // sleep_on_space).
  if (ws.sleeping.load(std::memory_order_relaxed) == 0 || ws.pending.load(std::memory_order_relaxed) != 0) {
    return false;
  }
  ws.pending.store(1, std::memory_order_relaxed);
  ws.word.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool QueueCore::has_item(std::uint64_t head) noexcept {
  // Under the get lock. Items up to the last tail seen need no look at the
  // put side's line; only when they are used up is the tail read again
  // (acquire: the entries before it are complete).
  QueueShared* s = shared_;
  if (head != s->get.seen.load(std::memory_order_relaxed)) return true;
  const std::uint64_t tail = s->put.pos.load(std::memory_order_acquire);
  s->get.seen.store(tail, std::memory_order_relaxed);
  return head != tail;
}

bool QueueCore::has_room() noexcept {
  // Under the put lock; the same caching, for the count of gets.
  QueueShared* s = shared_;
  const std::int64_t m = s->maxsize;
  if (m == 0) return true;
  const std::uint64_t puts = s->put.seq.load(std::memory_order_relaxed);
  if (puts - s->put.seen.load(std::memory_order_relaxed) < static_cast<std::uint64_t>(m)) return true;
  const std::uint64_t gets = s->get.seq.load(std::memory_order_acquire);
  s->put.seen.store(gets, std::memory_order_relaxed);
  return puts - gets < static_cast<std::uint64_t>(m);
}

// ------------------------------------------------------------ the heap ---

std::uint64_t QueueCore::read_link(std::uint64_t off) const {
  std::uint64_t v;
  std::memcpy(&v, arena(off >> kArenaShift) + (off & (kArenaSize - 1)), sizeof v);
  return v;
}

void QueueCore::write_link(std::uint64_t off, std::uint64_t value) const {
  std::memcpy(arena(off >> kArenaShift) + (off & (kArenaSize - 1)), &value, sizeof value);
}

void QueueCore::punch(std::uint64_t off, std::uint32_t cls) const noexcept {
  // Best effort: if it fails the pages stay, which costs memory, not
  // correctness.
  ::fallocate(heap_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off + kLinkPage),
              static_cast<off_t>(class_size(cls) - kLinkPage));
}

std::uint64_t QueueCore::alloc(Txn& t, std::uint32_t cls) {
  std::uint64_t head = t.get(kFreeHead + cls);
  if (head == 0 && t.empty()) {
    // About to grow the heap: first take back what dead processes left.
    // (Only from a fresh transaction: the reclaim commits on its own.)
    reclaim_dead_slots();
    head = t.get(kFreeHead + cls);
  }
  if (head != 0) {
    t.set(kFreeHead + cls, read_link(head));
    t.add(kFreeCount + cls, -1);
    return head;
  }
  const std::uint64_t size = class_size(cls);
  const std::uint64_t off = align_up(t.get(kTop), std::min(size, kArenaSize));
  const std::uint64_t top = off + size;
  if (top > kHeapLimit) throw Error("Queue::put: the queue's shared heap is exhausted (1 TiB in use)");
  if (top > t.get(kFileSize)) {
    // Growing the file is harmless if we die before the commit: the space
    // beyond the committed top is unused.
    if (::ftruncate(heap_.get(), static_cast<off_t>(top)) != 0) throw_errno("Queue::put: growing the shared heap");
    t.set(kFileSize, top);
  }
  t.set(kTop, top);
  return off;
}

void QueueCore::free_block(Txn& t, std::uint64_t off, std::uint32_t cls, bool punched) {
  const std::uint64_t count = t.get(kFreeCount + cls);
  if (!punched && (cls > kHotMaxClass || count >= (cls == 0 ? kKeepHotSegments : kKeepHot))) punch(off, cls);
  // The link goes into the block itself, which nobody else can reach yet.
  write_link(off, t.get(kFreeHead + cls));
  t.set(kFreeHead + cls, off);
  t.set(kFreeCount + cls, count + 1);
}

int QueueCore::claim_slot(Txn& t, std::uint32_t kind, std::uint64_t off, std::uint32_t cls) {
  for (int i = 0; i < kSlots; ++i) {
    if (t.get(kSlotOwner + static_cast<std::uint32_t>(i)) == 0) {
      const auto si = static_cast<std::uint32_t>(i);
      t.set(kSlotOwner + si, self_owner_id());
      t.set(kSlotBlock + si, off);
      t.set(kSlotInfo + si, (std::uint64_t{kind} << 32) | cls);
      t.add(kSlotsUsed, 1);
      return i;
    }
  }
  // Table full (64 large items in flight at once): go on unrecorded; only
  // the reclaiming after a crash of this very operation is lost.
  return -1;
}

void QueueCore::reclaim_dead_slots() {
  QueueShared* s = shared_;
  if (s->w[kSlotsUsed].load(std::memory_order_relaxed) == 0) return;
  const OwnerId self = self_owner_id();
  for (int i = 0; i < kSlots; ++i) {
    const auto si = static_cast<std::uint32_t>(i);
    const OwnerId owner = s->w[kSlotOwner + si].load(std::memory_order_relaxed);
    if (owner == 0 || owner == self || !owner_dead(owner)) continue;
    // Its owner died writing or reading this block: the block is
    // unreachable from the chain, so it can go back to the free list.
    Txn t(s, s->heap_log);
    const std::uint64_t off = s->w[kSlotBlock + si].load(std::memory_order_relaxed);
    const auto cls = static_cast<std::uint32_t>(s->w[kSlotInfo + si].load(std::memory_order_relaxed) & 0xffffffffu);
    if (cls < kClasses && off >= kHeaderBytes && off < kHeapLimit) free_block(t, off, cls, false);
    t.set(kSlotOwner + si, 0);
    t.add(kSlotsUsed, -1);
    t.commit();
  }
}

std::uint64_t QueueCore::append_entry(Txn& t, std::uint32_t kind, std::span<const std::byte> payload) {
  std::uint64_t tail = t.get(kTail);
  const std::uint64_t need = entry_size(payload.size());
  const std::uint64_t seg_end = (tail & ~(kSegmentBytes - 1)) + kSegmentBytes;
  // Room is always left for a "continue" entry at the end of a segment.
  constexpr std::uint64_t kNextEntry = entry_size(sizeof(std::uint64_t));
  if (tail + need + kNextEntry > seg_end) {
    const std::uint64_t next = alloc(t, 0);
    EntryHeader h{kNext, sizeof(std::uint64_t)};
    std::memcpy(at(tail), &h, sizeof h);
    std::memcpy(at(tail) + sizeof h, &next, sizeof next);
    tail = next;
  }
  // Beyond the committed tail: invisible until commit.
  EntryHeader h{kind, static_cast<std::uint32_t>(payload.size())};
  std::memcpy(at(tail), &h, sizeof h);
  if (!payload.empty()) std::memcpy(at(tail) + sizeof h, payload.data(), payload.size());
  t.set(kTail, tail + need);
  return tail;
}

bool QueueCore::after_put() {
  // Under the put lock, after the commit. Both reads hit lines that stay
  // shared while nobody sleeps or polls.
  QueueShared* s = shared_;
  const bool wake_getter = signal(s->items);
  if (s->pollers.load(std::memory_order_relaxed) != 0) {
    // A poller counts itself in under the put lock, so it is seen here
    // or it sees our item itself (begin_wait).
    Lock hl(*this, kHeapLock);
    if (s->armed.load(std::memory_order_relaxed) == 0) {
      // Signal first, then record it: dying in between leaves a readable
      // eventfd that confirm_ready() clears, never a missed signal.
      const std::uint64_t one = 1;
      [[maybe_unused]] auto r = ::write(event_.get(), &one, sizeof one);
      s->armed.store(1, std::memory_order_relaxed);
    }
  }
  return wake_getter;
}

void QueueCore::append_small(std::span<const std::byte> bytes) {
  // Under the put lock. The common case stays on the put side's lines: the
  // entry goes beyond the tail, and the count of puts and the tail move
  // through the put log (count first, so that no consumer takes an item
  // the count does not hold yet).
  QueueShared* s = shared_;
  const std::uint64_t tail = s->put.pos.load(std::memory_order_relaxed);
  const std::uint64_t need = entry_size(bytes.size());
  const std::uint64_t seg_end = (tail & ~(kSegmentBytes - 1)) + kSegmentBytes;
  constexpr std::uint64_t kNextEntry = entry_size(sizeof(std::uint64_t));
  if (tail + need + kNextEntry <= seg_end) {
    std::byte* p = at(tail);
    EntryHeader h{kInline, static_cast<std::uint32_t>(bytes.size())};
    std::memcpy(p, &h, sizeof h);
    copy_bytes(p + sizeof h, bytes.data(), bytes.size());
    Txn::commit2(s, s->put_log, kPutSeq, s->put.seq.load(std::memory_order_relaxed) + 1, kTail, tail + need);
    return;
  }
  // The segment is full: a new one comes from the heap, in one heap
  // transaction with the link, the entry, the tail and the count.
  Lock hl(*this, kHeapLock);
  Txn t(s, s->heap_log);
  append_entry(t, kInline, bytes);  // first: it may reclaim (see alloc)
  t.add(kPutSeq, 1);
  t.commit();
}

// ------------------------------------------------------------------ put ---

bool QueueCore::put(std::span<const std::byte> bytes, WaitLimit limit, bool block) {
  QueueShared* s = shared_;
  bool wake = false;
  if (bytes.size() <= kInlineMax) {
    {
      Lock lk(*this, kPutLock);
      while (!has_room()) {
        if (!block || !sleep_on_space(limit.deadline())) return false;
      }
      append_small(bytes);
      wake = after_put();
    }
    if (wake) futex_wake(&s->items.word, 1);
    return true;
  }

  // A large item: a block of its own, recorded as being written by us.
  const std::uint32_t cls = class_for(bytes.size());
  std::uint64_t off = 0;
  int slot = -1;
  {
    if (!block && s->maxsize != 0 && qsize() >= static_cast<std::uint64_t>(s->maxsize)) return false;
    Lock hl(*this, kHeapLock);
    Txn t(s, s->heap_log);
    off = alloc(t, cls);
    slot = claim_slot(t, kSlotWriter, off, cls);
    t.commit();
  }
  auto give_back = [&]() noexcept {
    try {
      Lock hl(*this, kHeapLock);
      Txn t(s, s->heap_log);
      free_block(t, off, cls, false);
      release_slot(t, slot);
      t.commit();
    } catch (...) {
      // The block stays allocated; the slot (if any) names a live process,
      // so it is reclaimed only with this process.
    }
  };
  try {
    // Copy outside the locks: others keep putting and getting meanwhile.
    std::size_t map_len = 0;
    void* dst = map_block(off, bytes.size(), map_len);
    std::memcpy(dst, bytes.data(), bytes.size());
    if (map_len != 0) ::munmap(dst, map_len);
  } catch (...) {
    give_back();
    throw;
  }
  {
    Lock lk(*this, kPutLock);
    while (!has_room()) {
      if (!block || !sleep_on_space(limit.deadline())) {
        give_back();
        return false;
      }
    }
    {
      // Linking the entry and releasing the slot are one transaction (a
      // death in between must neither lose the item nor let the block be
      // reclaimed while linked), so it is a heap transaction that also
      // moves the put side's words; we hold the put lock.
      Lock hl(*this, kHeapLock);
      Txn t(s, s->heap_log);
      RefPayload ref{off, bytes.size(), cls};
      append_entry(t, kRef, std::as_bytes(std::span(&ref, 1)));
      release_slot(t, slot);
      t.add(kPutSeq, 1);
      t.commit();
    }
    wake = after_put();
  }
  if (wake) futex_wake(&s->items.word, 1);
  return true;
}

void QueueCore::release_slot(Txn& t, int slot) {
  if (slot < 0) return;
  t.set(kSlotOwner + static_cast<std::uint32_t>(slot), 0);
  t.add(kSlotsUsed, -1);
}

void* QueueCore::map_block(std::uint64_t off, std::size_t len, std::size_t& map_len) const {
  if (len <= kArenaSize && (off >> kArenaShift) == ((off + len - 1) >> kArenaShift)) {
    map_len = 0;
    return arena(off >> kArenaShift) + (off & (kArenaSize - 1));
  }
  // A block larger than an arena window gets a mapping of its own.
  const std::size_t n = align_up(len, 4096);
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, heap_.get(), static_cast<off_t>(off));
  if (p == MAP_FAILED) throw_errno("Queue: mapping a large item");
  map_len = n;
  return p;
}

// ------------------------------------------------------------------ get ---

void QueueCore::spin_for_item() noexcept {
  // A bounded spin before sleeping: while items flow, the next one usually
  // comes sooner than a futex sleep and wake-up would take (5-50 us on a
  // busy VM). The budget adapts: it doubles when spinning paid off and
  // halves when it did not, so a consumer whose producer is slow (or not
  // running: two cores shared by many processes) soon stops burning the
  // CPU the producer needs.
  const QueueShared* s = shared_;
  const std::int64_t budget = spin_ns_.load(std::memory_order_relaxed);
  const auto start = steady_clock::now();
  for (unsigned i = 1;; ++i) {
    if (s->put.pos.load(std::memory_order_relaxed) != s->get.pos.load(std::memory_order_relaxed)) {
      spin_ns_.store(std::min<std::int64_t>(kSpinMaxNs, 2 * budget), std::memory_order_relaxed);
      return;
    }
    cpu_relax();
    if ((i & 31) == 0 && std::chrono::duration_cast<std::chrono::nanoseconds>(steady_clock::now() - start).count() > budget) {
      break;
    }
  }
  spin_ns_.store(std::max<std::int64_t>(kSpinMinNs, budget / 2), std::memory_order_relaxed);
}

bool QueueCore::get(Item& out, WaitLimit limit, bool block) {
  QueueShared* s = shared_;
  // Empty as far as this process can tell without the lock? (The head and
  // the last tail seen are on the get side's line; the put side's line is
  // read only when they are equal.)
  if (block) {
    const std::uint64_t head = s->get.pos.load(std::memory_order_relaxed);
    if (head == s->get.seen.load(std::memory_order_relaxed) && head == s->put.pos.load(std::memory_order_relaxed)) {
      (void)limit.deadline();  // the timeout counts from here
      spin_for_item();
    }
  }
  bool wake_putter = false;
  RefPayload ref{};
  bool large = false;
  {
    Lock lk(*this, kGetLock);
    std::uint64_t pos = s->get.pos.load(std::memory_order_relaxed);
    while (!has_item(pos)) {
      if (!block) {
        // A put or heap log marked valid, or more puts counted than items
        // visible: a producer is in the middle of its commit, or died
        // there. Taking the put lock waits for it or repairs it (a blocking
        // get does so in sleep_on_items), so that an item whose commit a
        // dead producer left half done is not seen only later.
        if (s->put_log.n.load(std::memory_order_acquire) == 0 && s->heap_log.n.load(std::memory_order_acquire) == 0 &&
            s->put.seq.load(std::memory_order_acquire) == s->get.seq.load(std::memory_order_relaxed)) {
          return false;
        }
        lock(kPutLock);
        unlock(kPutLock);
        if (!has_item(pos)) return false;
        break;
      }
      if (!sleep_on_items(limit.deadline())) return false;
      pos = s->get.pos.load(std::memory_order_relaxed);
    }
    EntryHeader h;
    std::memcpy(&h, at(pos), sizeof h);
    std::uint64_t need = entry_size(h.length);
    if (h.kind == kInline && pos + need <= (pos & ~(kSegmentBytes - 1)) + kSegmentBytes) {
      // The common case stays on the get side's lines: copy the item out,
      // then move the head and the count of gets through the get log.
      ByteBuffer& b = item_buffer();
      b.resize(h.length);
      copy_bytes(b.data(), at(pos) + sizeof h, h.length);
      out.bytes_ = b.bytes();
      Txn::commit2(s, s->get_log, kHead, pos + need, kGetSeq, s->get.seq.load(std::memory_order_relaxed) + 1);
      pos += need;
    } else {
      // Crossing into the next segment (the old one goes back to the heap)
      // or taking a large item (its block gets an in-flight slot): one heap
      // transaction that also moves the get side's words; we hold the get
      // lock.
      Lock hl(*this, kHeapLock);
      Txn t(s, s->heap_log);
      if (h.kind == kNext) {
        std::uint64_t next;
        std::memcpy(&next, at(pos) + sizeof h, sizeof next);
        if (next < kHeaderBytes || next >= kHeapLimit || (next & (kSegmentBytes - 1)) != 0) {
          throw Error("Queue::get: the shared queue is corrupted (bad segment link)");
        }
        free_block(t, pos & ~(kSegmentBytes - 1), 0, false);
        pos = next;
        std::memcpy(&h, at(pos), sizeof h);
        need = entry_size(h.length);
      }
      const std::uint64_t seg_end = (pos & ~(kSegmentBytes - 1)) + kSegmentBytes;
      if ((h.kind != kInline && h.kind != kRef) || pos + need > seg_end ||
          (h.kind == kRef && h.length != sizeof(RefPayload))) {
        throw Error("Queue::get: the shared queue is corrupted (bad entry)");
      }
      if (h.kind == kInline) {
        ByteBuffer& b = item_buffer();
        b.resize(h.length);
        if (h.length != 0) std::memcpy(b.data(), at(pos) + sizeof h, h.length);
        out.bytes_ = b.bytes();
      } else {
        std::memcpy(&ref, at(pos) + sizeof h, sizeof ref);
        if (ref.cls >= kClasses || ref.off < kHeaderBytes ||
            ref.off + class_size(static_cast<std::uint32_t>(ref.cls)) > kHeapLimit ||
            ref.length > class_size(static_cast<std::uint32_t>(ref.cls))) {
          throw Error("Queue::get: the shared queue is corrupted (bad item reference)");
        }
        // From here on the block is ours; the slot lets it be reclaimed if
        // we die before freeing it.
        out.slot_ = claim_slot(t, kSlotReader, ref.off, static_cast<std::uint32_t>(ref.cls));
        out.core_ = this;
        out.off_ = ref.off;
        out.cls_ = static_cast<std::uint32_t>(ref.cls);
        large = true;
      }
      t.set(kHead, pos + need);
      t.add(kGetSeq, 1);
      t.commit();
      pos += need;
    }
    // Room for a sleeping putter (putters count themselves in under the
    // get lock, so this read is exact).
    if (s->maxsize != 0 && signal(s->space)) wake_putter = true;
    if (s->armed.load(std::memory_order_relaxed) != 0 && pos == s->put.pos.load(std::memory_order_acquire)) {
      // We emptied the queue while a poller's eventfd is signalled: clear
      // it, under the heap lock, checking again (a put that commits after
      // our look arms it again under the heap lock).
      Lock hl(*this, kHeapLock);
      if (pos == s->put.pos.load(std::memory_order_acquire) && s->armed.load(std::memory_order_relaxed) != 0) {
        std::uint64_t v;
        [[maybe_unused]] auto r = ::read(event_.get(), &v, sizeof v);
        s->armed.store(0, std::memory_order_relaxed);
      }
    }
  }
  if (wake_putter) futex_wake(&s->space.word, 1);
  if (large) {
    // Read straight from shared memory, outside the locks. If mapping
    // fails, the Item's destructor frees the block.
    out.map_ = map_block(ref.off, ref.length, out.map_len_);
    if (out.map_len_ == 0) out.map_ = nullptr;
    const std::byte* p = out.map_ ? static_cast<const std::byte*>(out.map_)
                                  : arena(ref.off >> kArenaShift) + (ref.off & (kArenaSize - 1));
    out.bytes_ = std::span(p, ref.length);
  }
  return true;
}

void QueueCore::Item::release() noexcept {
  if (core_ != nullptr) core_->release_item(*this);
  core_ = nullptr;
}

void QueueCore::release_item(Item& item) noexcept {
  if (item.map_ != nullptr) ::munmap(item.map_, item.map_len_);
  item.map_ = nullptr;
  // Large blocks give their pages back before the lock is taken: that
  // can take a while and nobody else can reach the block.
  const bool punched = item.cls_ > kHotMaxClass;
  if (punched) punch(item.off_, item.cls_);
  try {
    Lock hl(*this, kHeapLock);
    Txn t(shared_, shared_->heap_log);
    free_block(t, item.off_, item.cls_, punched);
    release_slot(t, item.slot_);
    t.commit();
  } catch (...) {
    // Only if the heap cannot be mapped; the block then stays allocated.
  }
}

// ------------------------------------------------------------- joinable ---

void QueueCore::task_done() {
  QueueShared* s = shared_;
  bool wake = false;
  {
    Lock hl(*this, kHeapLock);
    // Unfinished tasks: puts minus task_done() calls. The count of puts
    // moves under the put lock; an item that was got is counted already
    // (its put committed the count with, or before, the tail).
    const std::uint64_t done = s->w[kDoneSeq].load(std::memory_order_relaxed);
    const std::uint64_t u = s->put.seq.load(std::memory_order_acquire) - done;
    if (u == 0) throw Error("JoinableQueue::task_done: called more times than items were put");
    Txn t(s, s->heap_log);
    t.set(kDoneSeq, done + 1);
    t.commit();
    if (u == 1 && s->done.sleeping.load(std::memory_order_relaxed) != 0) {
      s->done.word.fetch_add(1, std::memory_order_relaxed);
      wake = true;
    }
  }
  if (wake) futex_wake_all(&s->done.word);
}

bool QueueCore::join(Deadline deadline) {
  QueueShared* s = shared_;
  Lock hl(*this, kHeapLock);
  while (s->put.seq.load(std::memory_order_acquire) != s->w[kDoneSeq].load(std::memory_order_relaxed)) {
    if (!sleep_on(s->done, deadline)) return false;
  }
  return true;
}

// ----------------------------------------------------------------- wait ---

bool QueueCore::begin_wait() {
  QueueShared* s = shared_;
  // Counted in under the put lock: a put either sees us (and signals) or
  // committed before, and then we see its item here.
  Lock lk(*this, kPutLock);
  Lock hl(*this, kHeapLock);
  s->pollers.fetch_add(1, std::memory_order_relaxed);
  const bool ready = s->put.pos.load(std::memory_order_relaxed) != s->get.pos.load(std::memory_order_acquire);
  if (ready && s->armed.load(std::memory_order_relaxed) == 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(event_.get(), &one, sizeof one);
    s->armed.store(1, std::memory_order_relaxed);
  }
  return ready;
}

void QueueCore::end_wait() noexcept {
  try {
    Lock lk(*this, kPutLock);
    shared_->pollers.fetch_sub(1, std::memory_order_relaxed);
  } catch (...) {
    // A leftover poller count only costs producers an eventfd write.
  }
}

bool QueueCore::confirm_ready() {
  QueueShared* s = shared_;
  Lock hl(*this, kHeapLock);
  if (s->put.pos.load(std::memory_order_acquire) != s->get.pos.load(std::memory_order_acquire)) return true;
  // Readable but empty: a stale signal (a getter raced us, or a producer
  // died between signalling and recording it). Clear it; a put that
  // commits after our look arms it again under the heap lock.
  std::uint64_t v;
  [[maybe_unused]] auto r = ::read(event_.get(), &v, sizeof v);
  s->armed.store(0, std::memory_order_relaxed);
  return false;
}

// ---------------------------------------------------------- diagnostics ---

std::size_t QueueCore::in_flight() const noexcept {
  try {
    auto& self = const_cast<QueueCore&>(*this);
    Lock hl(self, kHeapLock);
    self.reclaim_dead_slots();
    return static_cast<std::size_t>(shared_->w[kSlotsUsed].load(std::memory_order_relaxed));
  } catch (...) {
    return 0;
  }
}

std::uint64_t QueueCore::heap_bytes() const noexcept {
  struct stat st {};
  if (::fstat(heap_.get(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

}  // namespace mproc::detail
