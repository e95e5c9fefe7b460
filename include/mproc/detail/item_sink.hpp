// detail/item_sink.hpp: the worker side of one chunk's outcomes.
//
// A pool worker runs a chunk item by item (detail/task_entry.hpp) and
// reports each outcome here: the encoded result, or the facts of the
// exception. Before each item the sink writes which item starts into the
// worker's shared progress slot, so that if the worker dies (or is killed
// for a timeout) the pool fails exactly that item and re-queues the ones it
// never started.
//
// Results are batched into `results` messages: one is sent when the chunk
// ends, when 2 ms have passed since the last send (looked at every 1 to 256
// items, more rarely the quicker the items), or when 1 MiB is waiting; with
// a task timeout, after every item. So a SIGKILL loses at
// most the results of a few ms of work; the pool runs those items again
// (only the item that was running when the worker died fails), never drops
// them.
//
// A batch is sent through the worker's link (detail/mail_link.hpp): into
// shared memory, with no system call while the pool is awake. A chunk's
// last batch is sent before the worker looks for its next chunk, so with
// chunksize=1 a task's result is in the pool's hands (in shared memory,
// which outlives the worker) before the next task starts: a finished task
// is never run again when its worker dies later (docs/design/pool.md).
//
// The per-item calls are inline: for small tasks they are most of what a
// worker does besides the task itself (src/pool/item_sink.cpp has the rest).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/mail_link.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/detail/transport.hpp"

namespace mproc::detail {

class ItemSink {
 public:
  // `out` is the worker's one results buffer, reused chunk after chunk;
  // batches go to the pool through `link`.
  ItemSink(MailLink& link, WorkerProgress* progress, std::uint64_t chunk_id, bool flush_each, Writer& out);
  ItemSink(const ItemSink&) = delete;
  ItemSink& operator=(const ItemSink&) = delete;

  void begin_item(std::uint32_t index) {
    // The clock is read for every item at first, and every 2, 4, ... up to
    // 256 items while items keep taking under 20 us between reads (or for
    // every item when task timeouts need each start time): a clock read
    // costs as much as a small task, and a slow task must still not hold
    // results back for long.
    if (count_ > 0 && (flush_each_ || out_.size() > kFlushBytes || ((index & clock_mask_) == 0 && flush_due()))) {
      flush();
      start_batch(index);
    }
    mark_bytes_ = out_.size();
    mark_fds_ = out_.fds().size();
    progress_->item.store(index, std::memory_order_relaxed);
    if (flush_each_) progress_->started_ns.store(now_ns(), std::memory_order_relaxed);
    progress_->running.store(1, std::memory_order_release);
  }
  // Marks the item successful and returns where to encode its result.
  Writer& succeed() {
    out_.write_pod(std::uint8_t{1});
    return out_;
  }
  // Marks the item failed (dropping whatever part of a result was written).
  void fail(const RemoteFacts& facts);
  void end_item() {
    progress_->running.store(0, std::memory_order_release);
    ++count_;
  }
  // The bulk form of begin_item() ... end_item() for plain items with
  // plain results (task_entry.hpp): begins items [index, index + n) at once,
  // `n` cut to where the next clock read falls, and returns where to write
  // their outcomes (`step` bytes each: the tag byte and the value). The
  // flush checks are those begin_item() makes, once for the run. Each item
  // still says that it starts (mark()), so a death blames the right one.
  // Not for flush_each() sinks (task timeouts need each item's start time).
  std::byte* begin_run(std::uint32_t index, std::uint32_t& n, std::size_t step) {
    if (count_ > 0 && (out_.size() > kFlushBytes || ((index & clock_mask_) == 0 && flush_due()))) {
      flush();
      start_batch(index);
    }
    n = std::min(n, (index | clock_mask_) + 1 - index);
    mark_bytes_ = out_.size();
    mark_fds_ = out_.fds().size();
    progress_->item.store(index, std::memory_order_relaxed);
    progress_->running.store(1, std::memory_order_release);
    return out_.extend(n * step);
  }
  void mark(std::uint32_t index) {
    progress_->item.store(index, std::memory_order_relaxed);
    // Stored before the item runs, also if the task is inlined: a crash
    // inside it must find this index (a compiler barrier; costs nothing).
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  // Ends a run whose first `done` items succeeded; the room of the others
  // is given back (an item that threw is then reported with begin_item()
  // and fail()).
  void end_run(std::uint32_t done, std::size_t step) {
    out_.truncate(mark_bytes_ + done * step, mark_fds_);
    count_ += done;
    progress_->running.store(0, std::memory_order_release);
  }
  bool flush_each() const noexcept { return flush_each_; }

  // Sends what is left. Called once, after the last item.
  void finish() {
    if (count_ != 0) flush();
  }

  static std::uint64_t now_ns() noexcept;

 private:
  static constexpr std::size_t kFlushBytes = std::size_t{1} << 20;
  static constexpr std::uint64_t kFlushNs = 2000000;
  static constexpr std::uint64_t kQuickItemsNs = 20000;

  bool flush_due() noexcept {
    const std::uint64_t now = now_ns();
    if (now - last_clock_ < kQuickItemsNs) {
      clock_mask_ = std::min<std::uint32_t>(clock_mask_ * 2 + 1, 255);
    } else {
      clock_mask_ = 0;
    }
    last_clock_ = now;
    return now - last_flush_ > kFlushNs;
  }
  void start_batch(std::uint32_t first);
  void flush();

  MailLink& link_;
  WorkerProgress* progress_;
  std::uint64_t chunk_id_;
  bool flush_each_;
  Writer& out_;
  std::size_t count_at_ = 0;
  std::uint32_t count_ = 0;
  std::size_t mark_bytes_ = 0, mark_fds_ = 0;
  std::uint64_t last_flush_ = 0;
  std::uint64_t last_clock_ = 0;
  std::uint32_t clock_mask_ = 0;  // read the clock when (index & mask) == 0
};

// The sink of the chunk this thread runs (set by the worker loop for the
// chunk's invoker, which finds it here).
ItemSink*& current_item_sink() noexcept;

}  // namespace mproc::detail
