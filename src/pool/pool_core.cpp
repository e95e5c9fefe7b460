// pool_core.cpp: the supervisor of a pool (detail/pool_core.hpp).

#include "mproc/detail/pool_core.hpp"

#include <signal.h>
#include <time.h>

#include <cstdio>
#include <cstring>

#include "mproc/detail/launch.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/errors.hpp"

namespace mproc::detail {

namespace {
constexpr std::size_t kSmallChunk = 64 << 10;
// How many small chunks a worker whose chunks come back within kQuickTurn
// may hold at once.
constexpr std::size_t kMaxQueued = 32;
constexpr auto kQuickTurn = std::chrono::milliseconds(1);
// Buffers of finished chunks kept for reuse: at most 2 per worker, none
// over this size.
constexpr std::size_t kMaxSpareBuffer = std::size_t{64} << 20;
// Workers that die before finishing a chunk, in a row, break the pool once
// their weights reach this: 8 that crashed or never started, or 64 killed
// by SIGKILL from outside (see on_death).
constexpr int kMaxStartupDeaths = 64;
constexpr int kStartupCrashWeight = 8;
// Events handled between two dispatches at most (so that a flood of
// results cannot starve the sending of new chunks).
constexpr int kMaxEventsPerRound = 64;

std::uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}
}  // namespace

// ---------------------------------------------------------------- chunks ---

void ChunkWriter::begin(std::uint64_t invoker_key) {
  w_.clear();
  item_offsets_.clear();
  stride_ = 0;
  fixed_count_ = 0;
  key_ = invoker_key;
  w_.write_pod(PoolMsg::task);
  w_.write_pod(std::uint64_t{0});  // chunk id, set when sent
  w_.write_pod(invoker_key);
  callable_begin_ = w_.size();
}

void ChunkWriter::end_callable() {
  callable_end_ = w_.size();
  w_.write_pod(std::uint32_t{0});  // item count, patched by finish()
}

void ChunkWriter::begin_item() { item_offsets_.push_back(w_.size()); }

std::byte* ChunkWriter::add_fixed_items(std::size_t n, std::size_t size) {
  stride_ = size;
  fixed_count_ += n;
  return w_.extend(n * size);
}

std::uint32_t ChunkWriter::finish() {
  const auto n = items();
  std::memcpy(w_.data() + callable_end_, &n, sizeof n);
  return n;
}

struct PoolCore::Chunk {
  std::uint64_t id = 0;
  std::shared_ptr<JobBase> job;
  std::size_t first = 0;
  std::uint32_t count = 0;
  std::uint32_t answered = 0;
  ByteBuffer bytes;
  std::vector<int> fds;
  std::size_t callable_begin = 0, callable_end = 0;
  // Where each item starts: items[i], or with fixed-size items (stride),
  // computed from the first (after the callable and the count).
  std::vector<std::size_t> items;
  std::size_t stride = 0;
  std::chrono::steady_clock::time_point last_activity;
  std::chrono::steady_clock::time_point sent_at;

  // The items [from, to) as a new chunk (same callable, same fds).
  std::unique_ptr<Chunk> slice(std::uint32_t from, std::uint32_t to) const {
    auto c = std::make_unique<Chunk>();
    c->job = job;
    c->first = first + from;
    c->count = to - from;
    c->fds = fds;
    c->callable_begin = callable_begin;
    c->callable_end = callable_end;
    c->stride = stride;
    // header and callable | item count | the items [from, to)
    const std::uint32_t n = c->count;
    const std::size_t begin = offset(from);
    const std::size_t end = to < count ? offset(to) : bytes.size();
    c->bytes.resize(callable_end + sizeof n + (end - begin));
    std::memcpy(c->bytes.data(), bytes.data(), callable_end);
    std::memcpy(c->bytes.data() + callable_end, &n, sizeof n);
    std::memcpy(c->bytes.data() + callable_end + sizeof n, bytes.data() + begin, end - begin);
    const std::size_t shift = begin - (callable_end + sizeof n);
    if (stride == 0) {
      for (std::uint32_t i = from; i < to; ++i) c->items.push_back(items[i] - shift);
    }
    return c;
  }

  std::size_t offset(std::uint32_t i) const {
    return stride != 0 ? callable_end + sizeof(std::uint32_t) + i * stride : items[i];
  }
};

struct PoolCore::Slot {
  std::deque<std::unique_ptr<Chunk>> inflight;
  bool retiring = false;
  bool timed_out = false;
  std::uint64_t timeout_chunk = 0;
  std::uint32_t timeout_item = 0;
  bool ever_finished_chunk = false;
  bool quick = false;  // its last chunk came back within kQuickTurn
};

// ------------------------------------------------------------ lifecycle ---

PoolCore::PoolCore(std::unique_ptr<Transport> transport, PoolCoreOptions options)
    : transport_(std::move(transport)),
      options_(std::move(options)),
      slots_(transport_->slots()),
      callbacks_("mproc::Pool", options_.on_callback_error) {
  if (!options_.init_fds.empty() && !transport_->carries_fds()) {
    throw SerializationError("mproc::Pool: initargs hold a handle (queue, lock, shared memory), which cannot "
                             "cross to this pool's workers");
  }
  slot_state_.resize(slots_);
  supervisor_ = std::thread([this] { supervise(); });
}

PoolCore::~PoolCore() {
  terminate();
  try {
    join();
  } catch (...) {
  }
}

void PoolCore::submit(std::shared_ptr<JobBase> job) {
  {
    std::lock_guard lock(mu_);
    if (broken_) std::rethrow_exception(broken_);
    if (state_ != State::run) throw PoolClosedError("mproc::Pool: the pool is closed; no more tasks can be submitted");
    incoming_.push_back(std::move(job));
  }
  transport_->wake();
}

void PoolCore::close() {
  {
    std::lock_guard lock(mu_);
    if (state_ == State::run) state_ = State::close;
  }
  transport_->wake();
}

void PoolCore::terminate() {
  {
    std::lock_guard lock(mu_);
    state_ = State::terminate;
  }
  transport_->wake();
}

bool PoolCore::running() const {
  std::lock_guard lock(mu_);
  return state_ == State::run;
}

std::exception_ptr PoolCore::broken() const {
  std::lock_guard lock(mu_);
  return broken_;
}

void PoolCore::join() {
  {
    std::lock_guard lock(mu_);
    if (state_ == State::run) throw Error("mproc::Pool::join: call close() or terminate() first");
    // Every task of a closed pool runs before join() returns, an imap's
    // included (Python's pool has taken its whole input by then).
    draining_ = state_ == State::close;
  }
  transport_->wake();
  std::lock_guard lock(join_mu_);
  if (joined_) return;
  if (supervisor_.joinable()) supervisor_.join();
  callbacks_.stop_and_join();
  joined_ = true;
}

void PoolCore::wake() { transport_->wake(); }

void PoolCore::post_callback(std::function<void()> fn) { callbacks_.post(std::move(fn)); }

// ------------------------------------------------------------ supervisor ---

bool PoolCore::start_worker(std::size_t slot) {
  try {
    transport_->start(slot, options_.init_message, options_.init_fds);
    return true;
  } catch (...) {
    std::lock_guard lock(mu_);
    if (!broken_) broken_ = std::current_exception();
    return false;
  }
}

void PoolCore::supervise() noexcept {
  // This thread ends only after the shutdown below has seen every worker
  // end, so workers may be forked right here (PR_SET_PDEATHSIG follows the
  // thread that forks): no hand-off to the launcher thread per worker.
  launch_from_this_thread();
  bool graceful = false;
  try {
    for (std::size_t i = 0; i < slots_; ++i) {
      if (!start_worker(i)) break;
    }
    for (;;) {
      State state;
      std::exception_ptr broken_now;
      bool draining;
      {
        std::lock_guard lock(mu_);
        while (!incoming_.empty()) {
          jobs_.push_back(std::move(incoming_.front()));
          incoming_.pop_front();
          // A job can be finished on arrival (a map over an empty input):
          // no outcome will ever come to complete it.
          if (jobs_.back()->input_exhausted() && jobs_.back()->finished()) drained_.push_back(jobs_.back());
        }
        state = state_;
        broken_now = broken_;
        draining = draining_;
      }
      if (draining) {
        for (const auto& job : jobs_) job->drain();
      }
      if (state == State::terminate) break;
      if (broken_now) {
        fail_everything(broken_now);
        for (std::size_t i = 0; i < slots_; ++i) transport_->kill(i);
      } else {
        dispatch();
      }
      // Jobs that finished without a last outcome (see drained_).
      while (!drained_.empty()) {
        auto job = std::move(drained_.back());
        drained_.pop_back();
        finish_job_if_done(job);
      }
      bool idle = jobs_.empty() && requeued_.empty();
      for (const auto& s : slot_state_) idle = idle && s.inflight.empty();
      if (state == State::close && idle) {
        graceful = true;
        break;
      }
      // Every event that is ready is handled before the next dispatch, so
      // that a worker answering several chunks at once gets all its next
      // chunks at once too (one wake-up each way, not one per chunk).
      Deadline until = next_deadline();
      for (int handled = 0; handled < kMaxEventsPerRound; ++handled) {
        Transport::Event e = transport_->wait(until);
        if (e.kind == Transport::Event::Kind::timeout) break;
        if (e.kind == Transport::Event::Kind::message) {
          on_message(e.slot, e.message);
          transport_->recycle(std::move(e.message));
        } else if (e.kind == Transport::Event::Kind::died) {
          on_death(e.slot, e);
        }
        until = std::chrono::steady_clock::time_point::min();  // no more waiting this round
      }
      check_timeouts();
    }
  } catch (...) {
    std::lock_guard lock(mu_);
    if (!broken_) broken_ = std::current_exception();
  }

  // Shutdown: the one place that ends workers.
  try {
    for (std::size_t i = 0; i < slots_; ++i) {
      if (!transport_->alive(i)) continue;
      if (graceful) {
        transport_->retire(i);
      } else {
        transport_->kill(i);
      }
    }
    // Idle workers exit at once when retired; one that does not within the
    // grace period is killed.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(graceful ? 10 : 60);
    for (;;) {
      bool any = false;
      for (std::size_t i = 0; i < slots_; ++i) any = any || transport_->alive(i);
      if (!any) break;
      Transport::Event e = transport_->wait(deadline);
      if (e.kind == Transport::Event::Kind::timeout) {
        for (std::size_t i = 0; i < slots_; ++i) transport_->kill(i);
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      } else if (e.kind == Transport::Event::Kind::message && graceful) {
        on_message(e.slot, e.message);
      }
    }
  } catch (...) {
  }
  {
    std::lock_guard lock(mu_);
    while (!incoming_.empty()) {
      jobs_.push_back(std::move(incoming_.front()));
      incoming_.pop_front();
    }
  }
  std::exception_ptr why = broken();
  if (!why) why = std::make_exception_ptr(PoolClosedError("mproc::Pool: terminated before the task finished"));
  fail_everything(why);
}

bool PoolCore::dispatch() {
  bool sent = false;
  for (;;) {
    // Prefer idle workers; then let a busy one hold small chunks more: one,
    // or up to kMaxQueued while its chunks come back quickly (so a worker
    // with tiny tasks never waits for a round trip through this thread).
    // The first of the workers that hold the fewest chunks and may take one
    // more.
    std::optional<std::size_t> target;
    std::size_t fewest = kMaxQueued;
    for (std::size_t i = 0; i < slots_; ++i) {
      const Slot& s = slot_state_[i];
      const std::size_t held = s.inflight.size();
      if (held >= fewest || (held >= 2 && !s.quick) || s.retiring || s.timed_out || !transport_->alive(i)) continue;
      target = i;
      fewest = held;
    }
    if (!target) return sent;
    const bool busy = !slot_state_[*target].inflight.empty();

    std::unique_ptr<Chunk> chunk;
    if (!requeued_.empty()) {
      if (busy && requeued_.front()->bytes.size() > kSmallChunk) return sent;
      chunk = std::move(requeued_.front());
      requeued_.pop_front();
    } else {
      for (const auto& job : jobs_) {
        // A finished chunk's buffers write this one (no fresh pages, no
        // allocations per chunk).
        std::unique_ptr<Chunk> fresh = spare_chunk();
        ChunkWriter cw;
        cw.w_.adopt(std::move(fresh->bytes));
        cw.item_offsets_.swap(fresh->items);
        // Chunks of one call tend to have one size: room for the last one's
        // at once, not a doubling series of copies.
        cw.w_.reserve(std::min(last_chunk_bytes_, kMaxSpareBuffer));
        std::optional<std::size_t> first;
        try {
          first = job->next_chunk(cw);
        } catch (...) {
          // Reading the input or encoding an item failed in the parent: it
          // is that job's error (e.g. an imap input iterator that threw).
          job->abandon(std::current_exception());
          finish_job_if_done(job);
          return sent;
        }
        if (!first) {
          fresh->bytes = cw.w_.take();
          fresh->items.swap(cw.item_offsets_);
          recycle(std::move(fresh));
          // An imap over an empty input, or cancelled after its last
          // answer, learns that it is finished here, not from an outcome.
          if (job->input_exhausted() && job->finished()) drained_.push_back(job);
          continue;
        }
        chunk = std::move(fresh);
        chunk->job = job;
        chunk->first = *first;
        chunk->count = cw.finish();
        chunk->callable_begin = cw.callable_begin_;
        chunk->callable_end = cw.callable_end_;
        chunk->items.swap(cw.item_offsets_);
        chunk->stride = cw.stride_;
        chunk->fds = cw.w_.fds();
        chunk->bytes = cw.w_.take();
        break;
      }
      if (!chunk) return sent;
      if (chunk->count == 0) continue;
      if (!chunk->fds.empty() && !transport_->carries_fds()) {
        const auto e = std::make_exception_ptr(
            SerializationError("mproc::Pool: a task's arguments hold a handle (queue, lock, shared memory), "
                               "which cannot cross to this pool's workers"));
        for (std::uint32_t i = 0; i < chunk->count; ++i) chunk->job->fail(chunk->first + i, e);
        finish_job_if_done(chunk->job);
        continue;
      }
      if (busy && chunk->bytes.size() > kSmallChunk) {
        // Too big to wait behind another chunk: keep it for an idle worker.
        requeued_.push_front(std::move(chunk));
        return sent;
      }
    }
    last_chunk_bytes_ = chunk->bytes.size();
    chunk->id = next_chunk_id_++;
    std::memcpy(chunk->bytes.data() + 1, &chunk->id, sizeof chunk->id);
    chunk->last_activity = std::chrono::steady_clock::now();
    chunk->sent_at = chunk->last_activity;
    transport_->send(*target, chunk->bytes.bytes(), chunk->fds);
    slot_state_[*target].inflight.push_back(std::move(chunk));
    sent = true;
  }
}

void PoolCore::on_message(std::size_t slot, Message& m) {
  Slot& s = slot_state_[slot];
  const std::vector<int> fds = m.raw_fds();
  Reader r(m.bytes.bytes(), fds);
  const auto kind = r.read_pod<PoolMsg>();
  if (kind == PoolMsg::init_failed) {
    std::exception_ptr e = make_remote_exception(decode_facts(r));
    {
      std::lock_guard lock(mu_);
      if (!broken_) broken_ = e;
    }
    return;
  }
  if (kind == PoolMsg::retiring) {
    s.retiring = true;
    return;
  }
  if (kind == PoolMsg::chunk_failed) {
    const auto id = r.read_pod<std::uint64_t>();
    std::exception_ptr e = make_remote_exception(decode_facts(r));
    auto it = s.inflight.begin();
    while (it != s.inflight.end() && (*it)->id != id) ++it;
    if (it == s.inflight.end()) return;  // a chunk already written off
    std::unique_ptr<Chunk> owned = std::move(*it);
    s.inflight.erase(it);
    for (std::uint32_t i = owned->answered; i < owned->count; ++i) owned->job->fail(owned->first + i, e);
    const auto now = std::chrono::steady_clock::now();
    if (!s.inflight.empty()) s.inflight.front()->last_activity = now;
    auto job = owned->job;
    recycle(std::move(owned));
    finish_job_if_done(job);
    return;
  }
  if (kind != PoolMsg::results) throw SerializationError("mproc::Pool: unexpected message from a worker");
  const auto id = r.read_pod<std::uint64_t>();
  const auto first = r.read_pod<std::uint32_t>();
  const auto count = r.read_pod<std::uint32_t>();
  auto it = s.inflight.begin();
  while (it != s.inflight.end() && (*it)->id != id) ++it;
  if (it == s.inflight.end()) return;  // a chunk already written off
  Chunk& c = **it;
  if (first != c.answered || count > c.count - c.answered) {
    throw SerializationError("mproc::Pool: worker answered items out of order");
  }
  s.ever_finished_chunk = true;
  // A message that completes a big chunk frees the worker: its next chunk
  // is sent before these results are decoded, so that the worker computes
  // while this thread decodes. (Small chunks wait for the supervisor loop,
  // which sends a worker all its next chunks at once.)
  std::unique_ptr<Chunk> owned;
  const bool completes = c.answered + count == c.count;
  if (completes) {
    owned = std::move(*it);
    s.inflight.erase(it);
    s.quick = !options_.task_timeout && std::chrono::steady_clock::now() - c.sent_at < kQuickTurn;
    bool broken_now;
    {
      std::lock_guard lock(mu_);
      broken_now = broken_ != nullptr || state_ == State::terminate;
    }
    if (!broken_now && c.bytes.size() > kSmallChunk) dispatch();
  }
  bool readable = true;
  std::exception_ptr desync;
  bool bulk = true;  // until the job says it cannot
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::size_t index = c.first + first + i;
    if (readable && bulk) {
      // Runs of successes in bulk, where the job can (a map of plain values).
      const std::uint32_t n = c.job->deliver_run(index, count - i, r);
      if (n != 0) {
        i += n - 1;
        continue;
      }
      bulk = false;
    }
    if (!readable) {
      c.job->fail(index, desync);
      continue;
    }
    try {
      const auto tag = r.read_pod<std::uint8_t>();
      if (tag == 1) {
        c.job->deliver(index, r);
      } else if (tag == 0) {
        c.job->fail(index, make_remote_exception(decode_facts(r)));
      } else {
        throw SerializationError("mproc::Pool: malformed result message");
      }
    } catch (...) {
      // A result that cannot be decoded fails its item; the ones after it
      // in this message cannot be located any more and fail the same way.
      desync = std::current_exception();
      readable = false;
      c.job->fail(index, desync);
    }
  }
  c.answered += count;
  const auto c_done_at = std::chrono::steady_clock::now();
  c.last_activity = c_done_at;
  auto job = c.job;
  if (completes) {
    // The next chunk starts now: without a progress slot its tasks' age
    // is counted from here, not from when it was queued.
    if (!s.inflight.empty()) s.inflight.front()->last_activity = c_done_at;
    // Its buffers write a later chunk: big chunks then cost no fresh pages.
    recycle(std::move(owned));
  }
  finish_job_if_done(job);
}

std::unique_ptr<PoolCore::Chunk> PoolCore::spare_chunk() {
  if (spare_chunks_.empty()) return std::make_unique<Chunk>();
  std::unique_ptr<Chunk> c = std::move(spare_chunks_.back());
  spare_chunks_.pop_back();
  return c;
}

void PoolCore::recycle(std::unique_ptr<Chunk> c) {
  if (spare_chunks_.size() >= 2 * slots_ + 2) return;
  ByteBuffer bytes = std::move(c->bytes);
  std::vector<std::size_t> items = std::move(c->items);
  *c = Chunk{};
  if (bytes.capacity() <= kMaxSpareBuffer) c->bytes = std::move(bytes);
  items.clear();
  c->items = std::move(items);
  spare_chunks_.push_back(std::move(c));
}

void PoolCore::on_death(std::size_t slot, const Transport::Event& e) {
  Slot& s = slot_state_[slot];
  auto inflight = std::move(s.inflight);
  s.inflight.clear();
  const int pid = transport_->pid(slot);
  std::deque<std::unique_ptr<Chunk>> again;
  std::vector<std::shared_ptr<JobBase>> touched;
  bool lost_any = false;
  if (!inflight.empty()) {
    // Only the item that was running fails. Items that had finished but
    // whose results died with the worker (results are sent in batches
    // within a chunk: item_sink.hpp) run again, as do the items not yet
    // started: "a worker's death fails that
    // task only". The running item is the one its progress slot names, in
    // whichever of its chunks; without a progress slot it is unknown, and
    // every unanswered item of the oldest chunk fails.
    const WorkerProgress* p = transport_->progress(slot);
    std::size_t running_chunk = inflight.size();  // none
    std::uint32_t running_item = 0;
    if (p == nullptr) {
      running_chunk = 0;
    } else if (p->running.load(std::memory_order_acquire) != 0) {
      const std::uint64_t id = p->chunk_id.load(std::memory_order_acquire);
      const std::uint32_t k = p->item.load(std::memory_order_acquire);
      for (std::size_t i = 0; i < inflight.size(); ++i) {
        if (inflight[i]->id == id && k >= inflight[i]->answered && k < inflight[i]->count) {
          running_chunk = i;
          running_item = k;
          break;
        }
      }
    }
    for (std::size_t ci = 0; ci < inflight.size(); ++ci) {
      Chunk& c = *inflight[ci];
      touched.push_back(c.job);
      if (ci != running_chunk) {
        // No item of it was running: what is unanswered runs again.
        if (c.answered == 0) {
          again.push_back(std::move(inflight[ci]));
        } else if (c.answered < c.count) {
          again.push_back(c.slice(c.answered, c.count));
        }
        continue;
      }
      std::uint32_t fail_from = running_item, fail_to = running_item + 1;
      if (p == nullptr) {
        fail_from = c.answered;
        fail_to = c.count;
      }
      for (std::uint32_t i = fail_from; i < fail_to; ++i) {
        lost_any = true;
        const std::size_t index = c.first + i;
        if (s.timed_out && s.timeout_chunk == c.id && s.timeout_item == i) {
          c.job->fail(index, std::make_exception_ptr(TimeoutError(
                                 "mproc::Pool: task #" + std::to_string(index) + " exceeded task_timeout; its worker (pid " +
                                 std::to_string(pid) + ") was killed")));
        } else {
          c.job->fail(index, std::make_exception_ptr(WorkerLostError(
                                 "mproc::Pool: worker (pid " + std::to_string(pid) + ") died with " + e.death +
                                 " while running task #" + std::to_string(index))));
        }
      }
      if (c.answered < fail_from) again.push_back(c.slice(c.answered, fail_from));
      if (fail_to < c.count) again.push_back(c.slice(fail_to, c.count));
    }
  }
  while (!again.empty()) {
    requeued_.push_front(std::move(again.back()));
    again.pop_back();
  }
  const bool expected = s.retiring || s.timed_out;
  // Whether this worker ever did work: answered something, or died in a
  // task. (A death between items fails nothing but is no startup failure.)
  const bool worked = s.ever_finished_chunk || lost_any;
  s = Slot{};
  for (const auto& job : touched) finish_job_if_done(job);

  // A worker that dies before ever finishing a chunk, again and again (a
  // crashing initializer, a broken spawn, one that never starts) would
  // otherwise be restarted forever: after a few in a row the pool is
  // declared broken. A SIGKILL from outside (the OOM killer, a user, a
  // chaos test killing workers at random, which under spawn often hits one
  // still starting) says little about the start itself: it takes a long
  // run of those. An exit with status 0 counts too (an initializer that
  // calls exit(0)): a worker never leaves by itself unasked.
  if (!expected && !worked) {
    const bool killed_from_outside = e.exit_code == -SIGKILL && !e.never_started;
    startup_deaths_ += killed_from_outside ? 1 : kStartupCrashWeight;
    if (startup_deaths_ >= kMaxStartupDeaths) {
      std::lock_guard lock(mu_);
      if (!broken_) {
        broken_ = std::make_exception_ptr(WorkerLostError(
            "mproc::Pool: workers keep dying before running any task (last: " + e.death + ")"));
      }
      return;
    }
  } else {
    startup_deaths_ = 0;
  }
  {
    std::lock_guard lock(mu_);
    if (state_ == State::terminate || broken_) return;
  }
  if (transport_->lost(slot)) {
    bool all = true;
    for (std::size_t i = 0; i < slots_; ++i) all = all && transport_->lost(i);
    if (all) {
      std::lock_guard lock(mu_);
      if (!broken_) broken_ = std::make_exception_ptr(WorkerLostError("mproc::Pool: every worker is lost (last: " + e.death + ")"));
    }
    return;
  }
  start_worker(slot);
}

void PoolCore::check_timeouts() {
  if (!options_.task_timeout) return;
  const auto limit = static_cast<std::uint64_t>(options_.task_timeout->count());
  const std::uint64_t now = monotonic_ns();
  for (std::size_t i = 0; i < slots_; ++i) {
    Slot& s = slot_state_[i];
    if (s.inflight.empty() || s.timed_out || !transport_->alive(i)) continue;
    const WorkerProgress* p = transport_->progress(i);
    const Chunk& c = *s.inflight.front();
    if (p == nullptr) {
      const auto age = std::chrono::steady_clock::now() - c.last_activity;
      if (age > *options_.task_timeout) {
        s.timed_out = true;
        s.timeout_chunk = c.id;
        s.timeout_item = c.answered;
        transport_->kill(i);
      }
      continue;
    }
    if (p->running.load(std::memory_order_acquire) == 0 || p->chunk_id.load() != c.id) continue;
    const std::uint64_t started = p->started_ns.load(std::memory_order_relaxed);
    if (now > started && now - started > limit) {
      s.timed_out = true;
      s.timeout_chunk = c.id;
      s.timeout_item = p->item.load();
      transport_->kill(i);
    }
  }
}

Deadline PoolCore::next_deadline() const {
  if (!options_.task_timeout) return std::nullopt;
  Deadline best;
  const auto now_steady = std::chrono::steady_clock::now();
  const std::uint64_t now = monotonic_ns();
  for (std::size_t i = 0; i < slots_; ++i) {
    const Slot& s = slot_state_[i];
    if (s.inflight.empty() || s.timed_out) continue;
    std::chrono::steady_clock::time_point at;
    const WorkerProgress* p = transport_->progress(i);
    if (p != nullptr) {
      // Not running yet, or between items: look again soon.
      if (p->running.load() == 0 || p->chunk_id.load() != s.inflight.front()->id) {
        at = now_steady + std::chrono::milliseconds(5);
      } else {
        const std::uint64_t started = p->started_ns.load();
        const auto elapsed = std::chrono::nanoseconds(now > started ? now - started : 0);
        at = now_steady + (*options_.task_timeout - elapsed) + std::chrono::milliseconds(1);
      }
    } else {
      at = s.inflight.front()->last_activity + *options_.task_timeout + std::chrono::milliseconds(1);
    }
    if (!best || at < *best) best = at;
  }
  return best;
}

void PoolCore::finish_job_if_done(const std::shared_ptr<JobBase>& job) {
  if (!job->finished()) return;
  for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
    if (*it == job) {
      jobs_.erase(it);
      job->complete(*this);
      return;
    }
  }
}

void PoolCore::fail_everything(std::exception_ptr error) {
  for (auto& s : slot_state_) s.inflight.clear();
  requeued_.clear();
  auto jobs = std::move(jobs_);
  jobs_.clear();
  for (auto& job : jobs) {
    job->abandon(error);
    job->complete(*this);
  }
}

}  // namespace mproc::detail
