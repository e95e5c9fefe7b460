// worker_main.cpp: the loop a Pool worker process runs.
//
// A worker reads messages from its link to the pool (detail/mail_link.hpp):
// first `init` (run the pool's initializer, if any), then `task` chunks,
// each run item by item, until `exit` or the end of the stream. Outcomes go
// back in `results` messages through the chunk's ItemSink
// (detail/item_sink.hpp), which also records which item runs.

#include "mproc/detail/item_sink.hpp"
#include "mproc/detail/mail_link.hpp"
#include "mproc/detail/pool_worker.hpp"
#include "mproc/detail/registry.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/detail/task_entry.hpp"
#include "mproc/detail/transport.hpp"

namespace mproc::detail {

void pool_worker_main(FdHandle sock, FdHandle bell, FdHandle pool_bell, RegionHandle region, WorkerConfig config) {
  const PoolLayout layout{config.processes};
  std::byte* base = region.get()->as<std::byte>(0);
  auto* progress = region.get()->as<WorkerProgress>(layout.progress(config.slot));
  // Alive and well: the pool's birth watchdog (process_transport.cpp) stops
  // watching this worker.
  progress->ready.store(1, std::memory_order_release);
  // Messages in and out through shared memory (mail_link.hpp; the pool
  // reset the rings before starting us).
  MailLink link(sock.get(), layout.mail_to_worker(base, config.slot), layout.mail_from_worker(base, config.slot),
                layout.bulk_to_worker(base, config.slot), layout.bulk_from_worker(base, config.slot),
                MailLink::Peer{region.get()->as<std::atomic<std::uint32_t>>(layout.pool_sleeping()), pool_bell.get()});
  // Spinning for a message pays only while tasks flow: not for the init
  // message and the first task (other workers may be starting beside us).
  AdaptiveSpin spin(config.spin_ns);
  AdaptiveSpin no_spin(0);
  try {
    Message init;
    link.next(init, no_spin, bell.get());
    Reader r(init.bytes.bytes(), init.raw_fds());
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
        link.send(w.bytes(), w.fds());
        return;
      }
    }
    std::uint64_t chunks_run = 0;
    // Reused for every chunk: a large chunk's buffers are allocated (and
    // their pages faulted in) once, not per chunk.
    Message m;
    Writer results;
    for (;;) {
      // A big chunk is run in place, in the ring (until the next message).
      link.next(m, chunks_run == 0 ? no_spin : spin, bell.get(), /*borrow=*/true);
      const std::vector<int> fds = m.raw_fds();
      Reader in(m.body(), fds);
      const auto kind = in.read_pod<PoolMsg>();
      if (kind == PoolMsg::exit) return;
      if (kind != PoolMsg::task) throw SerializationError("mproc: pool worker: unexpected message");
      const auto chunk_id = in.read_pod<std::uint64_t>();
      ItemSink sink(link, progress, chunk_id, config.flush_each_item, results);
      current_item_sink() = &sink;
      bool started = true;
      try {
        const Invoker invoke = find_invoker(in.read_pod<std::uint64_t>());
        Writer unused;
        invoke(in, unused);
      } catch (...) {
        // The chunk could not even be started (unknown invoker, undecodable
        // callable; every item's own failure is caught inside): each of its
        // items fails with that error, and the worker goes on with the next
        // chunk, as Python's does with a task it cannot unpickle.
        const RemoteFacts facts = describe_current_exception();
        results.clear();
        results.write_pod(PoolMsg::chunk_failed);
        results.write_pod(chunk_id);
        encode_facts(results, facts);
        link.send(results.bytes(), results.fds());
        started = false;
      }
      current_item_sink() = nullptr;
      if (started) sink.finish();
      // The descriptors that came with the chunk (handles among its
      // arguments) are not kept while waiting for the next one: a pipe end
      // given to a task must close when the task is done (CPython's
      // test_release_task_refs).
      m.fds.clear();
      ++chunks_run;
      if (config.maxtasks != 0 && chunks_run >= config.maxtasks) {
        Writer w;
        w.write_pod(PoolMsg::retiring);
        link.send(w.bytes());
        return;
      }
    }
  } catch (const EOFError&) {
    // The pool closed our socket: nothing more to do.
  }
}

}  // namespace mproc::detail
