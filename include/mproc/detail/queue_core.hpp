// detail/queue_core.hpp: the untyped, shared-memory engine behind Queue,
// SimpleQueue and JoinableQueue.
//
// A queue is one memfd (its "heap") plus one eventfd. The heap starts with
// a header (three robust locks: producers', consumers' and the heap
// allocator's, so that a producer and a consumer do not contend; the
// queue's state words; futex words for sleepers; a redo log per lock) and
// holds every item: small items are copied, under the put lock, into a
// chain of 64 KiB segments; large items get a block of their own, written
// outside the locks and linked into the chain
// only once complete. Every process maps the heap in 1 GiB windows, so
// blocks allocated later by another process are reachable without passing
// any descriptor: the only descriptors a handle ever carries are the heap's
// and the eventfd's. Nothing is reserved up front: the memfd is sparse and
// grows with ftruncate; freed large blocks give their pages back.
//
// The full design, including what happens when a process dies at any point
// of a put or a get, is in docs/design/queue.md.
//
// QueueCore is one process's view of one queue; copies of a handle in one
// process share it. All member functions are thread-safe.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/fd.hpp"
#include "mproc/detail/futex.hpp"

namespace mproc::detail {

struct QueueShared;
struct WaitSet;
struct LockCore;

// How long a blocking queue call may wait: for ever, until a deadline, or
// for a timeout counted from the moment the call first has to wait. The
// last form reads the clock only then, so a get that finds an item (the
// common case while items flow) pays no clock read for its timeout.
class WaitLimit {
 public:
  WaitLimit() noexcept = default;  // for ever
  WaitLimit(std::nullopt_t) noexcept {}
  WaitLimit(Deadline deadline) noexcept : deadline_(deadline) {}
  // `timeout` from the first wait; a timeout <= 0 is expired at once, one
  // beyond 10^9 s means for ever (as deadline_after).
  template <class Rep, class Period>
  static WaitLimit after(std::chrono::duration<Rep, Period> timeout) {
    using namespace std::chrono;
    WaitLimit w;
    if (timeout <= duration<Rep, Period>::zero()) {
      w.pending_ = true;
    } else if (duration_cast<duration<double>>(timeout).count() <= 1e9) {
      w.pending_ = true;
      w.relative_ = ceil<steady_clock::duration>(timeout);
    }
    return w;
  }
  // The absolute deadline (nullopt: none), fixed on the first call.
  Deadline deadline() noexcept {
    if (pending_) {
      deadline_ = std::chrono::steady_clock::now() + relative_;
      pending_ = false;
    }
    return deadline_;
  }

 private:
  Deadline deadline_;
  std::chrono::steady_clock::duration relative_{0};
  bool pending_ = false;
};

class QueueCore {
 public:
  // Items whose encoded size is at most this are copied inline, under the
  // lock; larger ones get a block of their own.
  static constexpr std::size_t kInlineMax = 8 * 1024;

  // A new queue. maxsize <= 0: unbounded. joinable: counts unfinished tasks.
  static std::shared_ptr<QueueCore> create(std::int64_t maxsize, bool joinable);
  // The handle-crossing pair: the two descriptors. decode checks that the
  // memory really is a queue.
  void encode(Writer& w) const;
  static std::shared_ptr<QueueCore> decode(Reader& r);

  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;
  ~QueueCore();

  // Appends one encoded item. Blocks while a bounded queue is full (if
  // `block`), up to `deadline`. Returns false when the queue stayed full.
  bool put(std::span<const std::byte> bytes, WaitLimit limit, bool block);

  // A taken item: its bytes stay valid while the Item lives (a large one is
  // read straight from shared memory, and its block is freed when the Item
  // is destroyed).
  class Item {
   public:
    Item() = default;
    Item(const Item&) = delete;
    Item& operator=(const Item&) = delete;
    ~Item() { release(); }
    std::span<const std::byte> bytes() const noexcept { return bytes_; }

   private:
    friend class QueueCore;
    void release() noexcept;
    QueueCore* core_ = nullptr;
    std::span<const std::byte> bytes_;
    std::uint64_t off_ = 0;
    std::uint32_t cls_ = 0;
    int slot_ = -1;
    void* map_ = nullptr;
    std::size_t map_len_ = 0;
  };
  // Takes the oldest item. Blocks while empty (if `block`), up to
  // `deadline`. Returns false when the queue stayed empty.
  bool get(Item& out, WaitLimit limit, bool block);

  std::size_t qsize() const noexcept;
  std::int64_t maxsize() const noexcept;
  bool joinable() const noexcept;

  // JoinableQueue: one task is finished (throws mproc::Error if more
  // task_done() calls than puts); join waits until every put item has had
  // its task_done() (false at deadline).
  void task_done();
  bool join(Deadline deadline);

  // This handle (and its copies in this process) puts no more. As Python's
  // Queue.close, it concerns the calling process only: a child (forked
  // after the close, or sent the handle) starts with the queue open.
  void close() noexcept { closed_by_.store(::getpid(), std::memory_order_relaxed); }
  bool closed() const noexcept {
    const pid_t by = closed_by_.load(std::memory_order_relaxed);
    return by != 0 && by == ::getpid();
  }

  // mproc::wait support. begin_wait registers this process as waiting
  // (the eventfd then becomes readable whenever the queue is not empty) and
  // says whether it is not empty now; end_wait undoes it. After the eventfd
  // polled readable, confirm_ready says whether the queue really has an
  // item (and clears a stale signal if not).
  int event_fd() const noexcept { return event_.get(); }
  bool begin_wait();
  void end_wait() noexcept;
  bool confirm_ready();

  // For tests and docs: large items being written or read right now (or
  // left behind by a process that died doing so and not yet reclaimed),
  // and bytes of heap the queue holds.
  std::size_t in_flight() const noexcept;
  std::uint64_t heap_bytes() const noexcept;

  // A handle-free identity of the shared queue (the header's address in
  // this process) for comparisons.
  const void* identity() const noexcept { return shared_; }

 private:
  class Lock;
  class Txn;
  // The queue's three robust locks (docs/design/queue.md, "Three
  // locks"): producers', consumers', and the heap's (allocator, in-flight
  // slots, joinable count, mproc::wait). Lock order: kGet, kPut, kHeap.
  enum Which : int { kPutLock, kGetLock, kHeapLock };
  QueueCore(UniqueFd heap, UniqueFd event);
  void map_first_arena();
  void init_header(std::int64_t maxsize, bool joinable);
  void check_header() const;

  LockCore& lock_of(Which m) const noexcept;
  void lock(Which m);
  void unlock(Which m) noexcept;
  void repair(Which m) noexcept;
  // Under the lock named in each.
  bool sleep_on(WaitSet& ws, Deadline deadline);  // heap
  bool sleep_on_items(Deadline deadline);          // get
  bool sleep_on_space(Deadline deadline);          // put
  bool signal(WaitSet& ws) noexcept;
  bool has_item(std::uint64_t head) noexcept;      // get
  bool has_room() noexcept;                        // put
  void spin_for_item() noexcept;
  void append_small(std::span<const std::byte> bytes);  // put
  std::uint64_t alloc(Txn& t, std::uint32_t cls);
  void free_block(Txn& t, std::uint64_t off, std::uint32_t cls, bool punch_now);
  std::uint64_t append_entry(Txn& t, std::uint32_t kind, std::span<const std::byte> payload);
  int claim_slot(Txn& t, std::uint32_t kind, std::uint64_t off, std::uint32_t cls);
  void release_slot(Txn& t, int slot);
  void reclaim_dead_slots();
  bool after_put();  // put
  void release_item(Item& item) noexcept;

  // Memory access by heap offset.
  std::byte* at(std::uint64_t off) const;  // maps the arena on first use
  std::byte* arena(std::uint64_t index) const;       // maps on first use
  std::byte* map_arena(std::uint64_t index) const;
  void* map_block(std::uint64_t off, std::size_t len, std::size_t& map_len) const;
  std::uint64_t read_link(std::uint64_t off) const;
  void write_link(std::uint64_t off, std::uint64_t value) const;
  void punch(std::uint64_t off, std::uint32_t cls) const noexcept;

  UniqueFd heap_;
  UniqueFd event_;
  QueueShared* shared_ = nullptr;
  std::unique_ptr<std::atomic<std::byte*>[]> arenas_;
  std::atomic<pid_t> closed_by_{0};  // the process that closed it; 0: open
  // How long get() spins before it sleeps, adapted to how often spinning
  // pays off (see spin_for_item).
  std::atomic<std::int64_t> spin_ns_{4000};
};

}  // namespace mproc::detail
