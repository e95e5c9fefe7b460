// queue_core.cpp: the shared-memory queue engine (detail/queue_core.hpp;
// the design, with every crash case, is docs/design/queue.md).
//
// Layout of the heap memfd, by offset:
//   [0, 64 KiB)   QueueShared: constants, the robust mutex, futex words,
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
// Crash safety rests on three rules:
//  1. Under the mutex, nothing a reader can see changes until the commit:
//     bytes are written beyond the tail (or into blocks nobody else owns),
//     then every state word that changes is written into the redo log, the
//     log is marked valid, applied, and cleared. A process that dies
//     holding the mutex leaves either no trace or a valid log, which the
//     next holder (EOWNERDEAD) replays.
//  2. Large items are copied outside the mutex, into a block that only the
//     copier can reach; the item enters the chain (one entry, under the
//     mutex) only when complete. A copier that dies leaves an unreachable
//     block, recorded in an in-flight slot with its OwnerId, and reclaimed
//     once that process is seen dead.
//  3. Sleepers sleep in bounded slices, so a wake-up lost with a process
//     that died between being woken and taking its item only delays the
//     others.

#include "mproc/detail/queue_core.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
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
constexpr std::uint32_t kVersion = 2;  // 2: the state words share the mutex's cache line

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
// steady stream reuses warm pages instead of faulting fresh ones.
constexpr std::uint32_t kKeepHot = 2;
constexpr std::uint32_t kHotMaxClass = 4;

constexpr int kSlots = 64;
constexpr std::uint32_t kLogMax = 40;

// How long a getter spins on the item count before it sleeps, and the
// longest single sleep (see rule 3 above).
constexpr std::int64_t kSpinMaxNs = 20000;
constexpr std::int64_t kSpinMinNs = 200;
constexpr auto kSlice = std::chrono::milliseconds(200);
// Attempts to take a busy mutex before sleeping on it.
constexpr int kLockSpins = 64;

enum : std::uint32_t { kInline = 1, kRef = 2, kNext = 3 };
enum : std::uint64_t { kSlotWriter = 1, kSlotReader = 2 };

enum Word : std::uint32_t {
  kCount,
  kHead,
  kTail,
  kTop,
  kFileSize,
  kUnfinished,
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

// Sleepers waiting for one condition ("not empty", "not full", "all tasks
// done"). All three fields change under the mutex only.
struct WaitSet {
  std::atomic<std::uint32_t> word;      // the futex word; bumped by every wake
  std::atomic<std::uint32_t> sleeping;  // sleepers that counted themselves in
  std::atomic<std::uint32_t> pending;   // a wake is on its way, not yet taken
};

struct QueueShared {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t joinable;
  std::int64_t maxsize;

  // What every put and get writes shares one cache line, so that taking
  // the mutex brings the state along instead of a second line crossing
  // between the cores: the mutex (40 bytes) and the first state words
  // (kCount, kHead, kTail).
  alignas(64) pthread_mutex_t mutex;
  std::atomic<std::uint64_t> w[kWords];

  // Read by every put and get, written only when someone sleeps or polls:
  // these lines stay shared in every cache while items flow.
  alignas(64) WaitSet items;
  // mproc::wait: processes polling the eventfd, and whether it is signalled.
  std::atomic<std::uint32_t> pollers;
  std::atomic<std::uint32_t> armed;
  alignas(64) WaitSet space;
  WaitSet done;

  // The redo log (rule 1). Entries are only touched under the mutex.
  alignas(64) std::atomic<std::uint32_t> log_n;
  struct LogEntry {
    std::uint32_t word;
    std::uint64_t value;
  } log[kLogMax];
};
static_assert(sizeof(QueueShared) <= kHeaderBytes);
static_assert(kCount < 3 && kHead < 3 && kTail < 3 &&
                  offsetof(QueueShared, w) + 3 * sizeof(std::uint64_t) <= offsetof(QueueShared, mutex) + 64,
              "the mutex and the words every operation writes share one cache line");

// A set of state-word changes applied all at once (rule 1). Reads see the
// pending values.
class QueueCore::Txn {
 public:
  explicit Txn(QueueShared* s) noexcept : s_(s) {}
  std::uint64_t get(std::uint32_t word) const noexcept {
    for (std::uint32_t i = 0; i < n_; ++i) {
      if (e_[i].word == word) return e_[i].value;
    }
    return s_->w[word].load(std::memory_order_relaxed);
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
  void commit() noexcept {
    if (n_ == 0) return;
    // The common put and get change only the tail or the head and the
    // count, in that order. They skip the log: a crash between the two
    // stores leaves a count that recover() recomputes from head and tail.
    bool direct = true;
    for (std::uint32_t i = 0; i < n_; ++i) {
      if (e_[i].word != kHead && e_[i].word != kTail && e_[i].word != kCount) direct = false;
    }
    if (direct) {
      apply(s_, e_, n_);
      n_ = 0;
      return;
    }
    std::memcpy(static_cast<void*>(s_->log), e_, sizeof(e_[0]) * n_);
    s_->log_n.store(n_, std::memory_order_release);
    apply(s_, s_->log, n_);
    s_->log_n.store(0, std::memory_order_release);
    n_ = 0;
  }
  static void apply(QueueShared* s, const QueueShared::LogEntry* e, std::uint32_t n) noexcept {
    for (std::uint32_t i = 0; i < n; ++i) {
      if (e[i].word < kWords) s->w[e[i].word].store(e[i].value, std::memory_order_relaxed);
    }
  }

 private:
  QueueShared* s_;
  std::uint32_t n_ = 0;
  QueueShared::LogEntry e_[kLogMax];
};

// Holds the queue's mutex for a scope.
class QueueCore::Lock {
 public:
  explicit Lock(QueueCore& q) : q_(q) { q_.lock(); }
  ~Lock() { q_.unlock(); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  QueueCore& q_;
};

// ------------------------------------------------------------- lifetime ---

QueueCore::QueueCore(UniqueFd heap, UniqueFd event, bool closed)
    : heap_(std::move(heap)),
      event_(std::move(event)),
      arenas_(std::make_unique<std::atomic<std::byte*>[]>(kArenaSlots)),
      closed_(closed) {}

QueueCore::~QueueCore() {
  for (std::size_t i = 0; i < kArenaSlots; ++i) {
    if (std::byte* p = arenas_[i].load(std::memory_order_relaxed)) ::munmap(p, kArenaSize);
  }
}

std::byte* QueueCore::arena(std::uint64_t index) const {
  std::byte* p = arenas_[index].load(std::memory_order_acquire);
  if (p != nullptr) return p;
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

std::byte* QueueCore::at(std::uint64_t off) const {
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
  std::shared_ptr<QueueCore> q(new QueueCore(std::move(heap), std::move(event), false));
  q->shared_ = reinterpret_cast<QueueShared*>(q->arena(0));
  q->init_header(maxsize, joinable);
  return q;
}

void QueueCore::init_header(std::int64_t maxsize, bool joinable) {
  QueueShared* s = new (shared_) QueueShared{};
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  const int rc = pthread_mutex_init(&s->mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) throw_errno("Queue: pthread_mutex_init", rc);
  s->maxsize = maxsize > 0 ? maxsize : 0;
  s->joinable = joinable ? 1 : 0;
  s->w[kHead].store(kHeaderBytes, std::memory_order_relaxed);
  s->w[kTail].store(kHeaderBytes, std::memory_order_relaxed);
  s->w[kTop].store(kHeaderBytes + kSegmentBytes, std::memory_order_relaxed);
  s->w[kFileSize].store(kHeaderBytes + kSegmentBytes, std::memory_order_relaxed);
  s->version = kVersion;
  s->magic = kMagic;
}

void QueueCore::encode(Writer& w) const {
  w.write_fd(heap_.get());
  w.write_fd(event_.get());
  w.write_pod(static_cast<std::uint8_t>(closed() ? 1 : 0));
}

std::shared_ptr<QueueCore> QueueCore::decode(Reader& r) {
  const int heap_fd = r.read_fd();
  const int event_fd = r.read_fd();
  const auto closed = r.read_pod<std::uint8_t>();
  if (closed > 1) throw SerializationError("mproc: malformed Queue handle (bad flag)");
  struct stat st {};
  if (::fstat(heap_fd, &st) != 0) throw_errno("Queue: fstat of a received queue");
  if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) < kHeaderBytes + kSegmentBytes) {
    throw SerializationError("mproc: malformed Queue handle: the descriptor is not a queue");
  }
  std::shared_ptr<QueueCore> q(new QueueCore(dup_cloexec(heap_fd), dup_cloexec(event_fd), closed == 1));
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
  return static_cast<std::size_t>(shared_->w[kCount].load(std::memory_order_relaxed));
}

// ----------------------------------------------------------------- mutex ---

namespace {

// Whether the mutex is unlocked now, by a plain read (no store, so the
// cache line stays where it is). A hint only: trylock decides.
bool mutex_looks_free(pthread_mutex_t* m) noexcept {
#if defined(__GLIBC__)
  // glibc keeps the owner (robust mutexes: its thread id) in __lock.
  return __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) == 0;
#else
  (void)m;
  return true;
#endif
}

}  // namespace

void QueueCore::lock() {
  pthread_mutex_t* m = &shared_->mutex;
  // Critical sections are a few dozen nanoseconds, so a holder is usually
  // about to release: spin briefly before asking the kernel to sleep (a
  // robust mutex goes straight to futex_wait otherwise, and its release
  // then pays a futex_wake: two system calls per contended operation).
  int rc = EBUSY;
  for (int i = 0; i < kLockSpins; ++i) {
    // Test before test-and-set: while the holder works, only read the
    // lock word, so the holder keeps its cache line and its unlock does
    // not have to fetch it back from us.
    if (i == 0 || mutex_looks_free(m)) {
      rc = pthread_mutex_trylock(m);
      if (rc != EBUSY) break;
    }
    for (int k = 0; k < 8; ++k) cpu_relax();
  }
  if (rc == EBUSY) rc = pthread_mutex_lock(m);
  if (rc == 0) return;
  if (rc == EOWNERDEAD) {
    // A process died holding the mutex (rule 1): finish or forget its
    // change, then make the mutex usable again.
    recover();
    pthread_mutex_consistent(m);
    return;
  }
  throw_errno("Queue: locking the shared queue", rc);
}

void QueueCore::unlock() noexcept { pthread_mutex_unlock(&shared_->mutex); }

void QueueCore::recover() noexcept {
  QueueShared* s = shared_;
  const std::uint32_t n = s->log_n.load(std::memory_order_acquire);
  if (n > 0 && n <= kLogMax) Txn::apply(s, s->log, n);
  s->log_n.store(0, std::memory_order_release);
  // The count may lag one store behind the head or tail (Txn::commit's
  // direct path): count the entries between them again.
  try {
    std::uint64_t pos = s->w[kHead].load(std::memory_order_relaxed);
    const std::uint64_t tail = s->w[kTail].load(std::memory_order_relaxed);
    std::uint64_t items = 0;
    for (std::uint64_t steps = 0; pos != tail; ++steps) {
      if (steps > (std::uint64_t{1} << 40)) return;  // corrupted beyond repair: leave it
      EntryHeader h;
      std::memcpy(&h, at(pos), sizeof h);
      if (h.kind == kNext) {
        std::memcpy(&pos, at(pos) + sizeof h, sizeof pos);
        continue;
      }
      if (h.kind != kInline && h.kind != kRef) return;
      pos += entry_size(h.length);
      ++items;
    }
    s->w[kCount].store(items, std::memory_order_relaxed);
  } catch (...) {
    // Mapping failed: keep the count as it is.
  }
  // Sleepers that the dead process was about to wake must not wait for
  // that wake: let the next signal go out.
  s->items.pending.store(0, std::memory_order_relaxed);
  s->space.pending.store(0, std::memory_order_relaxed);
}

bool QueueCore::sleep_on(WaitSet& ws, Deadline deadline) {
  const auto now = steady_clock::now();
  if (deadline && now >= *deadline) return false;
  const std::uint32_t seq = ws.word.load(std::memory_order_relaxed);
  ws.sleeping.fetch_add(1, std::memory_order_relaxed);
  unlock();
  Deadline until = now + kSlice;
  if (deadline && *deadline < *until) until = deadline;
  // A put that commits after our unlock sees us counted and bumps the word,
  // so this wait returns at once: no wake-up is ever missed.
  futex_wait(&ws.word, seq, until);
  lock();
  ws.sleeping.fetch_sub(1, std::memory_order_relaxed);
  // Whoever comes back takes the pending wake: the next signal may go out.
  ws.pending.store(0, std::memory_order_relaxed);
  return true;
}

bool QueueCore::signal(WaitSet& ws) noexcept {
  // One wake at a time: while a woken sleeper has not yet come back for
  // the mutex it still counts as sleeping, and waking it again (one system
  // call per put) would only slow the waker down. The sleeper that comes
  // back passes the signal on if there is more to take (see get/put).
  if (ws.sleeping.load(std::memory_order_relaxed) == 0 || ws.pending.load(std::memory_order_relaxed) != 0) {
    return false;
  }
  ws.pending.store(1, std::memory_order_relaxed);
  ws.word.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool QueueCore::has_room() const noexcept {
  const std::int64_t m = shared_->maxsize;
  return m == 0 || shared_->w[kCount].load(std::memory_order_relaxed) < static_cast<std::uint64_t>(m);
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
  if (!punched && (cls > kHotMaxClass || count >= kKeepHot)) punch(off, cls);
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
    Txn t(s);
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

void QueueCore::after_put(bool& wake_getter) {
  QueueShared* s = shared_;
  if (signal(s->items)) wake_getter = true;
  if (s->pollers.load(std::memory_order_relaxed) != 0 && s->armed.load(std::memory_order_relaxed) == 0) {
    // Signal first, then record it: dying in between leaves a readable
    // eventfd that confirm_ready() clears, never a missed signal.
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(event_.get(), &one, sizeof one);
    s->armed.store(1, std::memory_order_relaxed);
  }
}

// ------------------------------------------------------------------ put ---

bool QueueCore::put(std::span<const std::byte> bytes, WaitLimit limit, bool block) {
  QueueShared* s = shared_;
  bool wake = false;
  bool wake_putter = false;
  if (bytes.size() <= kInlineMax) {
    {
      Lock lk(*this);
      while (!has_room()) {
        if (!block || !sleep_on(s->space, limit.deadline())) return false;
      }
      Txn t(s);
      append_entry(t, kInline, bytes);
      t.add(kCount, 1);
      if (s->joinable) t.add(kUnfinished, 1);
      t.commit();
      after_put(wake);
      // Room left and another putter asleep: pass the signal on.
      if (has_room() && signal(s->space)) wake_putter = true;
    }
    if (wake) futex_wake(&s->items.word, 1);
    if (wake_putter) futex_wake(&s->space.word, 1);
    return true;
  }

  // A large item: a block of its own, recorded as being written by us.
  const std::uint32_t cls = class_for(bytes.size());
  std::uint64_t off = 0;
  int slot = -1;
  {
    Lock lk(*this);
    if (!block && !has_room()) return false;
    Txn t(s);
    off = alloc(t, cls);
    slot = claim_slot(t, kSlotWriter, off, cls);
    t.commit();
  }
  auto give_back = [&]() noexcept {
    try {
      Lock lk(*this);
      Txn t(s);
      free_block(t, off, cls, false);
      release_slot(t, slot);
      t.commit();
    } catch (...) {
      // The block stays allocated; the slot (if any) names a live process,
      // so it is reclaimed only with this process.
    }
  };
  try {
    // Copy outside the mutex: others keep putting and getting meanwhile.
    std::size_t map_len = 0;
    void* dst = map_block(off, bytes.size(), map_len);
    std::memcpy(dst, bytes.data(), bytes.size());
    if (map_len != 0) ::munmap(dst, map_len);
  } catch (...) {
    give_back();
    throw;
  }
  {
    Lock lk(*this);
    while (!has_room()) {
      if (!block || !sleep_on(s->space, limit.deadline())) {
        Txn t(s);
        free_block(t, off, cls, false);
        release_slot(t, slot);
        t.commit();
        return false;
      }
    }
    Txn t(s);
    RefPayload ref{off, bytes.size(), cls};
    append_entry(t, kRef, std::as_bytes(std::span(&ref, 1)));
    release_slot(t, slot);
    t.add(kCount, 1);
    if (s->joinable) t.add(kUnfinished, 1);
    t.commit();
    after_put(wake);
    if (has_room() && signal(s->space)) wake_putter = true;
  }
  if (wake) futex_wake(&s->items.word, 1);
  if (wake_putter) futex_wake(&s->space.word, 1);
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
    if (s->w[kCount].load(std::memory_order_relaxed) != 0) {
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
  if (block && s->w[kCount].load(std::memory_order_relaxed) == 0) {
    (void)limit.deadline();  // the timeout counts from here
    spin_for_item();
  }
  bool wake = false;
  bool wake_getter = false;
  RefPayload ref{};
  bool large = false;
  {
    Lock lk(*this);
    while (s->w[kCount].load(std::memory_order_relaxed) == 0) {
      if (!block || !sleep_on(s->items, limit.deadline())) return false;
    }
    Txn t(s);
    std::uint64_t pos = t.get(kHead);
    EntryHeader h;
    std::memcpy(&h, at(pos), sizeof h);
    if (h.kind == kNext) {
      std::uint64_t next;
      std::memcpy(&next, at(pos) + sizeof h, sizeof next);
      if (next < kHeaderBytes || next >= kHeapLimit || (next & (kSegmentBytes - 1)) != 0) {
        throw Error("Queue::get: the shared queue is corrupted (bad segment link)");
      }
      free_block(t, pos & ~(kSegmentBytes - 1), 0, false);
      pos = next;
      std::memcpy(&h, at(pos), sizeof h);
    }
    const std::uint64_t need = entry_size(h.length);
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
      if (ref.cls >= kClasses || ref.off < kHeaderBytes || ref.off + class_size(static_cast<std::uint32_t>(ref.cls)) > kHeapLimit ||
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
    const std::uint64_t left = t.get(kCount) - 1;
    t.set(kCount, left);
    t.commit();
    // Room for a sleeping putter; and if items remain while getters sleep
    // (a wake was suppressed as pending), pass it on to the next one.
    if (has_room() && signal(s->space)) wake = true;
    if (left != 0 && signal(s->items)) wake_getter = true;
    if (left == 0 && s->armed.load(std::memory_order_relaxed) != 0) {
      std::uint64_t v;
      [[maybe_unused]] auto r = ::read(event_.get(), &v, sizeof v);
      s->armed.store(0, std::memory_order_relaxed);
    }
  }
  if (wake) futex_wake(&s->space.word, 1);
  if (wake_getter) futex_wake(&s->items.word, 1);
  if (large) {
    // Read straight from shared memory, outside the mutex. If mapping
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
  // Large blocks give their pages back before the mutex is taken: that
  // can take a while and nobody else can reach the block.
  const bool punched = item.cls_ > kHotMaxClass;
  if (punched) punch(item.off_, item.cls_);
  try {
    Lock lk(*this);
    Txn t(shared_);
    free_block(t, item.off_, item.cls_, punched);
    release_slot(t, item.slot_);
    t.commit();
  } catch (...) {
    // Only if the mutex is unusable; the block then stays allocated.
  }
}

// ------------------------------------------------------------- joinable ---

void QueueCore::task_done() {
  QueueShared* s = shared_;
  bool wake = false;
  {
    Lock lk(*this);
    const std::uint64_t u = s->w[kUnfinished].load(std::memory_order_relaxed);
    if (u == 0) throw Error("JoinableQueue::task_done: called more times than items were put");
    Txn t(s);
    t.set(kUnfinished, u - 1);
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
  Lock lk(*this);
  while (s->w[kUnfinished].load(std::memory_order_relaxed) != 0) {
    if (!sleep_on(s->done, deadline)) return false;
  }
  return true;
}

// ----------------------------------------------------------------- wait ---

bool QueueCore::begin_wait() {
  QueueShared* s = shared_;
  Lock lk(*this);
  s->pollers.fetch_add(1, std::memory_order_relaxed);
  const bool ready = s->w[kCount].load(std::memory_order_relaxed) != 0;
  if (ready && s->armed.load(std::memory_order_relaxed) == 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(event_.get(), &one, sizeof one);
    s->armed.store(1, std::memory_order_relaxed);
  }
  return ready;
}

void QueueCore::end_wait() noexcept {
  try {
    Lock lk(*this);
    shared_->pollers.fetch_sub(1, std::memory_order_relaxed);
  } catch (...) {
    // A leftover poller count only costs producers an eventfd write.
  }
}

bool QueueCore::confirm_ready() {
  QueueShared* s = shared_;
  Lock lk(*this);
  if (s->w[kCount].load(std::memory_order_relaxed) != 0) return true;
  // Readable but empty: a stale signal (a getter raced us, or a producer
  // died between signalling and recording it). Clear it.
  std::uint64_t v;
  [[maybe_unused]] auto r = ::read(event_.get(), &v, sizeof v);
  s->armed.store(0, std::memory_order_relaxed);
  return false;
}

// ---------------------------------------------------------- diagnostics ---

std::size_t QueueCore::in_flight() const noexcept {
  try {
    auto& self = const_cast<QueueCore&>(*this);
    Lock lk(self);
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
