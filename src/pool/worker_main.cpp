// worker_main.cpp: the loop a Pool worker process runs.
//
// A worker reads messages from its socket: first `init` (run the pool's
// initializer, if any), then `task` chunks, each run item by item, until
// `exit` or the end of the stream. Outcomes go back in `results` messages.
// Before each item the worker writes which item it starts into its shared
// progress slot, so that if it dies (or is killed for a timeout) the pool
// fails exactly that item and re-queues the ones it never started.
//
// Results are batched: they are sent when the chunk ends, when 2 ms have
// passed since the last send, or when 1 MiB is waiting; with a task
// timeout, after every item. So a SIGKILL loses at most the results of a
// few ms of work; the pool runs those items again (only the item that was
// running when the worker died fails, pool_core.cpp), never drops them.

#include <time.h>

#include <chrono>
#include <cstdio>

#include "mproc/detail/pool_worker.hpp"
#include "mproc/detail/registry.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/detail/task_entry.hpp"
#include "mproc/detail/transport.hpp"
#include "mproc/detail/wire.hpp"

namespace mproc::detail {

ItemSink*& current_item_sink() noexcept {
  thread_local ItemSink* sink = nullptr;
  return sink;
}

namespace {

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

class ChunkSink final : public ItemSink {
 public:
  // `out` is the worker's one results buffer, reused chunk after chunk.
  ChunkSink(int sock, WorkerProgress* progress, std::uint64_t chunk_id, bool flush_each, Writer& out)
      : sock_(sock), progress_(progress), chunk_id_(chunk_id), flush_each_(flush_each), out_(out) {
    start_batch(0);
  }

  void begin_item(std::uint32_t index) override {
    // Look at the clock only every 64 items (or for every item when task
    // timeouts need the start time): a clock read costs as much as a small
    // task.
    const bool timed = flush_each_;
    if (count_ > 0) {
      const bool due = timed || out_.size() > (1u << 20) ||
                       ((index & 63u) == 0 && now_ns() - last_flush_ > 2000000u);
      if (due) {
        flush();
        start_batch(index);
      }
    }
    mark_bytes_ = out_.size();
    mark_fds_ = out_.fds().size();
    progress_->chunk_id.store(chunk_id_, std::memory_order_relaxed);
    progress_->item.store(index, std::memory_order_relaxed);
    if (timed) progress_->started_ns.store(now_ns(), std::memory_order_relaxed);
    progress_->running.store(1, std::memory_order_release);
  }
  Writer& succeed() override {
    out_.write_pod(std::uint8_t{1});
    return out_;
  }
  void fail(const RemoteFacts& facts) override {
    out_.truncate(mark_bytes_, mark_fds_);
    out_.write_pod(std::uint8_t{0});
    encode_facts(out_, facts);
  }
  void end_item() override {
    progress_->running.store(0, std::memory_order_release);
    ++count_;
  }
  void finish() {
    if (count_ > 0) flush();
  }

 private:
  void start_batch(std::uint32_t first) {
    out_.clear();
    out_.write_pod(PoolMsg::results);
    out_.write_pod(chunk_id_);
    out_.write_pod(first);
    count_at_ = out_.size();
    out_.write_pod(std::uint32_t{0});
    count_ = 0;
    last_flush_ = now_ns();
  }
  void flush() {
    std::memcpy(out_.data() + count_at_, &count_, sizeof count_);
    send_message(sock_, out_.bytes(), out_.fds());
    count_ = 0;
  }

  int sock_;
  WorkerProgress* progress_;
  std::uint64_t chunk_id_;
  bool flush_each_;
  Writer& out_;
  std::size_t count_at_ = 0;
  std::uint32_t count_ = 0;
  std::size_t mark_bytes_ = 0, mark_fds_ = 0;
  std::uint64_t last_flush_ = 0;
};

}  // namespace

void pool_worker_main(FdHandle sock, RegionHandle progress_region, WorkerConfig config) {
  auto* progress = progress_region.get()->as<WorkerProgress>(config.slot * 64);
  const int fd = sock.get();
  try {
    Message init = recv_message(fd);
    Reader r(init.bytes, init.raw_fds());
    if (r.read_pod<PoolMsg>() != PoolMsg::init) throw SerializationError("mproc: pool worker: expected init");
    if (r.read_pod<std::uint8_t>() != 0) {
      try {
        const Invoker initializer = find_invoker(r.read_pod<std::uint64_t>());
        Writer unused;
        TracebackScope traceback;
        initializer(r, unused);
      } catch (...) {
        Writer w;
        w.write_pod(PoolMsg::init_failed);
        encode_facts(w, describe_current_exception());
        send_message(fd, w.bytes(), w.fds());
        return;
      }
    }
    std::uint32_t chunks_done = 0;
    // Reused for every chunk: a large chunk's buffers are allocated (and
    // their pages faulted in) once, not per chunk.
    Message m;
    Writer results;
    for (;;) {
      recv_message_into(fd, m);
      const std::vector<int> fds = m.raw_fds();
      Reader in(m.bytes, fds);
      const auto kind = in.read_pod<PoolMsg>();
      if (kind == PoolMsg::exit) return;
      if (kind != PoolMsg::task) throw SerializationError("mproc: pool worker: unexpected message");
      const auto chunk_id = in.read_pod<std::uint64_t>();
      ChunkSink sink(fd, progress, chunk_id, config.flush_each_item, results);
      current_item_sink() = &sink;
      try {
        const Invoker invoke = find_invoker(in.read_pod<std::uint64_t>());
        Writer unused;
        invoke(in, unused);
      } catch (...) {
        // The chunk could not even be started (unknown invoker, undecodable
        // callable): every item of it fails with that error.
        const RemoteFacts facts = describe_current_exception();
        Writer w;
        w.write_pod(PoolMsg::init_failed);
        encode_facts(w, facts);
        send_message(fd, w.bytes(), w.fds());
        return;
      }
      current_item_sink() = nullptr;
      sink.finish();
      if (config.maxtasks != 0 && ++chunks_done >= config.maxtasks) {
        Writer w;
        w.write_pod(PoolMsg::retiring);
        send_message(fd, w.bytes());
        return;
      }
    }
  } catch (const EOFError&) {
    // The pool closed our socket: nothing more to do.
  }
}

}  // namespace mproc::detail
