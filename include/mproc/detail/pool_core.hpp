// detail/pool_core.hpp: a pool's scheduling and result logic, independent of
// what its workers are (see detail/transport.hpp).
//
// Jobs (one per map/apply/imap call, detail/pool_jobs.hpp) hand out chunks:
// consecutive items, encoded as one task message. The core's supervisor
// thread owns all scheduling state: it gives each idle worker a chunk (a
// second small one may wait behind it, so a worker never idles for a round
// trip), routes each item's outcome back to its job, and handles faults:
//  - a worker that dies fails the item it was running (WorkerLostError, or
//    TimeoutError if the core killed it for task_timeout); items it never
//    started, and finished items whose results died with it, are
//    re-queued; a replacement worker is started;
//  - an initializer that throws breaks the pool: every pending and future
//    task fails with that exception.
// Completed jobs run their callbacks on the core's one callback thread, so
// callbacks never run concurrently.
//
// Shutdown lives in one place, the supervisor loop: close() lets queued
// work finish and then retires the workers; terminate() kills them at once
// (SIGKILL, so it returns promptly even with hung tasks) and fails whatever
// was pending with PoolClosedError.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/callback_thread.hpp"
#include "mproc/detail/transport.hpp"

namespace mproc::detail {

// Builds one task message; used by jobs to write their chunks.
class ChunkWriter {
 public:
  // Writes the header and remembers where the callable starts.
  void begin(std::uint64_t invoker_key);
  void end_callable();
  void begin_item();
  // Adds `n` items of `size` bytes each and returns where to write them
  // (n * size bytes): for items that are their bytes (is_bitwise_v), with
  // no per-item bookkeeping. A chunk's items are all added this way or all
  // with begin_item().
  std::byte* add_fixed_items(std::size_t n, std::size_t size);
  // Patches the item count; returns it.
  std::uint32_t finish();

  Writer& writer() noexcept { return w_; }
  std::uint32_t items() const noexcept {
    return static_cast<std::uint32_t>(stride_ ? fixed_count_ : item_offsets_.size());
  }

 private:
  friend class PoolCore;
  Writer w_;
  std::uint64_t key_ = 0;
  std::size_t callable_begin_ = 0, callable_end_ = 0;
  std::vector<std::size_t> item_offsets_;
  std::size_t stride_ = 0, fixed_count_ = 0;  // add_fixed_items()
};

class PoolCore;

// Where completed jobs run their callbacks: one thread, one at a time.
class CallbackSink {
 public:
  virtual ~CallbackSink() = default;
  virtual void post_callback(std::function<void()> fn) = 0;
};

class JobBase {
 public:
  virtual ~JobBase() = default;
  // Writes the next chunk into `cw` and returns the job index of its first
  // item, or nullopt if none is available now. Supervisor thread only.
  virtual std::optional<std::size_t> next_chunk(ChunkWriter& cw) = 0;
  // True once next_chunk() will never produce another chunk.
  virtual bool input_exhausted() const = 0;
  // Item `index` succeeded; its encoded result is next in `r`.
  virtual void deliver(std::size_t index, Reader& r) = 0;
  // A fast path for many outcomes at once: `r` holds up to `max` outcomes
  // of items index, index + 1, ... (a tag byte, 1 = success, then the
  // result). Delivers the leading successes it can decode in bulk and
  // returns how many; 0 means "use deliver() and fail() one by one".
  virtual std::uint32_t deliver_run(std::size_t /*index*/, std::uint32_t /*max*/, Reader& /*r*/) { return 0; }
  virtual void fail(std::size_t index, std::exception_ptr error) = 0;
  // True when every item that will ever exist has an outcome.
  virtual bool finished() const = 0;
  // Called once, after finished() became true: publish results, run
  // callbacks (through core.post_callback).
  virtual void complete(PoolCore& core) = 0;
  // The pool ends before the job did: fail everything without an outcome.
  virtual void abandon(std::exception_ptr error) = 0;
  // join() of a closed pool: every task is to run before it returns, so a
  // job that takes its input lazily (imap) takes the rest of it now, past
  // its window; its results wait for the reader. Supervisor thread only.
  virtual void drain() {}
};

struct PoolCoreOptions {
  std::optional<std::chrono::nanoseconds> task_timeout;
  // The first message every worker gets (initializer), and what keeps the
  // descriptors it mentions open.
  std::vector<std::byte> init_message;
  std::vector<int> init_fds;
  std::shared_ptr<const void> init_keepalive;
  // Reports exceptions thrown by callbacks; default: print to stderr.
  std::function<void(std::exception_ptr)> on_callback_error;
};

class PoolCore final : public CallbackSink {
 public:
  PoolCore(std::unique_ptr<Transport> transport, PoolCoreOptions options);
  ~PoolCore();  // terminate() + join()
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // Queues a job. Throws PoolClosedError after close()/terminate(), or the
  // initializer's exception if the pool is broken.
  void submit(std::shared_ptr<JobBase> job);
  void close();
  void terminate();
  // Waits for the workers and the pool's threads to end. Throws
  // mproc::Error unless close() or terminate() was called first.
  void join();
  // Tells the supervisor that a job may have new chunks (an imap consumer
  // made room). Any thread.
  void wake();
  // Runs `fn` on the callback thread. Any thread.
  void post_callback(std::function<void()> fn) override;
  std::size_t processes() const noexcept { return slots_; }
  bool running() const;

 private:
  enum class State { run, close, terminate };
  struct Chunk;
  struct Slot;

  void supervise() noexcept;
  bool dispatch();
  void on_message(std::size_t slot, Message& m);
  void on_death(std::size_t slot, const Transport::Event& e);
  void check_timeouts();
  Deadline next_deadline() const;
  void finish_job_if_done(const std::shared_ptr<JobBase>& job);
  std::unique_ptr<Chunk> spare_chunk();
  void recycle(std::unique_ptr<Chunk> c);
  void fail_everything(std::exception_ptr error);
  bool start_worker(std::size_t slot);
  std::exception_ptr broken() const;

  std::unique_ptr<Transport> transport_;
  PoolCoreOptions options_;
  std::size_t slots_;

  // Shared with submitting threads, under mu_.
  mutable std::mutex mu_;
  State state_ = State::run;
  std::deque<std::shared_ptr<JobBase>> incoming_;
  std::exception_ptr broken_;

  // Owned by the supervisor thread.
  std::deque<std::shared_ptr<JobBase>> jobs_;
  std::vector<std::unique_ptr<Chunk>> spare_chunks_;  // finished, with their buffers, for reuse
  std::size_t last_chunk_bytes_ = 0;                   // size of the last chunk sent
  std::deque<std::unique_ptr<Chunk>> requeued_;
  std::deque<Slot> slot_state_;  // a deque: Slot is not copyable
  // Jobs found finished with no outcome left to arrive (an empty input, a
  // cancelled imap): completed by the supervisor loop after dispatch().
  std::vector<std::shared_ptr<JobBase>> drained_;
  std::uint64_t next_chunk_id_ = 1;
  int startup_deaths_ = 0;

  CallbackThread callbacks_;
  std::thread supervisor_;
  std::mutex join_mu_;
  bool joined_ = false;
  // Set by join() of a closed pool: lazy jobs take the rest of their input
  // (JobBase::drain). Shared with the joining thread, under mu_.
  bool draining_ = false;
};

}  // namespace mproc::detail
