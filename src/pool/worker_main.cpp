// worker_main.cpp: the loop a Pool worker process runs.
//
// A worker reads messages from its socket: first `init` (run the pool's
// initializer, if any), then `task` chunks, each run item by item, until
// `exit` or the end of the stream. Outcomes go back in `results` messages through the chunk's ItemSink
// (detail/item_sink.hpp), which also records which item runs.

#include <poll.h>

#include "mproc/detail/item_sink.hpp"
#include "mproc/detail/pool_worker.hpp"
#include "mproc/detail/registry.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/detail/task_entry.hpp"
#include "mproc/detail/transport.hpp"
#include "mproc/detail/wire.hpp"

namespace mproc::detail {
namespace {

// Whether the pool has sent more already: in the reader's buffer, or on
// the socket (a poll that does not wait).
bool input_waiting(const MessageReader& reader, int fd) {
  if (reader.has_bytes()) return true;
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace

void pool_worker_main(FdHandle sock, RegionHandle progress_region, WorkerConfig config) {
  auto* progress = progress_region.get()->as<WorkerProgress>(config.slot * 64);
  // Alive and well: the pool's birth watchdog (process_transport.cpp) stops
  // watching this worker.
  progress->ready.store(1, std::memory_order_release);
  const int fd = sock.get();
  // Big bodies: tasks in, results out (bulk_ring.hpp; set up by the pool).
  BulkRing in_ring, out_ring;
  if (config.ring_bytes != 0) {
    auto* rings = progress_region.get()->as<std::byte>(config.rings_offset);
    in_ring = BulkRing(rings, config.ring_bytes);
    out_ring = BulkRing(rings + BulkRing::kHeaderBytes + config.ring_bytes, config.ring_bytes);
  }
  try {
    // Messages are read several per system call when several are there.
    MessageReader reader(fd);
    Message init;
    reader.next(init, &in_ring);
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
        send_message(fd, w.bytes(), w.fds());
        return;
      }
    }
    std::uint32_t chunks_done = 0;
    // Reused for every chunk: a large chunk's buffers are allocated (and
    // their pages faulted in) once, not per chunk.
    Message m;
    Writer results;
    Writer deferred;  // results of earlier chunks not sent yet (item_sink.hpp)
    for (;;) {
      // A big chunk is run in place, in the ring (until the next message).
      reader.next(m, &in_ring, std::size_t{1} << 40, /*borrow=*/true);
      const std::vector<int> fds = m.raw_fds();
      Reader in(m.body(), fds);
      const auto kind = in.read_pod<PoolMsg>();
      if (kind == PoolMsg::exit) {
        ItemSink::send_deferred(fd, deferred);
        return;
      }
      if (kind != PoolMsg::task) throw SerializationError("mproc: pool worker: unexpected message");
      const auto chunk_id = in.read_pod<std::uint64_t>();
      ItemSink sink(fd, out_ring, progress, chunk_id, config.flush_each_item, results, deferred);
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
        ItemSink::send_deferred(fd, deferred);
        send_message(fd, w.bytes(), w.fds());
        return;
      }
      current_item_sink() = nullptr;
      const bool retire = config.maxtasks != 0 && ++chunks_done >= config.maxtasks;
      // With the next chunk already here, this one's results may wait for
      // a later send (one wake-up of the pool for several chunks).
      sink.finish(!retire && input_waiting(reader, fd));
      if (retire) {
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
