// mpi_transport.cpp: the pool transport of rank 0 (detail/transport.hpp):
// slot i is rank i + 1, which relays to a local worker process of its own
// (rank_server.cpp; the protocol is in protocol.hpp).
//
// What a local transport sees directly, this one learns from the ranks:
//  - a worker's pid arrives with `started`, its death with `died`;
//  - progress() is nullptr while a worker lives (the core times tasks out
//    by their last answer; results come item by item under task_timeout),
//    and after its death it holds what the rank saw at that moment, so the
//    core fails exactly the item that was running, as with local workers;
//  - wake() sets a flag that wait() polls (MPI has nothing to sleep on).

#include <atomic>
#include <cstring>
#include <memory>

#include "mproc/errors.hpp"
#include "mproc/mpi.hpp"
#include "protocol.hpp"

namespace mproc::detail::mpi {
namespace {

std::atomic<bool> g_pool_exists{false};

class MpiTransport final : public Transport {
 public:
  MpiTransport(std::size_t workers, Config config)
      : config_(config), workers_(workers), seen_(std::make_unique<WorkerProgress[]>(workers)) {
    alive_.assign(workers, false);
    pids_.assign(workers, 0);
  }

  ~MpiTransport() override {
    // The ranks drop whatever is left of this pool and say so; until then
    // anything else they send belongs to this pool and is discarded.
    try {
      for (std::size_t i = 0; i < workers_; ++i) mpi::send(rank_of(i), kEnd, nullptr, 0);
      std::size_t acks = 0;
      Backoff backoff(std::chrono::milliseconds(1));
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      std::vector<std::byte> body;
      while (acks < workers_ && std::chrono::steady_clock::now() < give_up) {
        MPI_Status st;
        if (try_recv(MPI_ANY_SOURCE, MPI_ANY_TAG, body, st)) {
          if (st.MPI_TAG == kEndAck) ++acks;
          backoff.reset();
        } else {
          backoff.pause();
        }
      }
    } catch (...) {
    }
    g_pool_exists.store(false);
  }

  std::size_t slots() const noexcept override { return workers_; }

  void start(std::size_t slot, std::span<const std::byte> init, std::span<const int> init_fds) override {
    if (!init_fds.empty()) throw SerializationError("mproc::mpi::Pool: handles cannot cross to other ranks");
    std::vector<std::byte> body(sizeof config_ + init.size());
    std::memcpy(body.data(), &config_, sizeof config_);
    if (!init.empty()) std::memcpy(body.data() + sizeof config_, init.data(), init.size());
    const int r = rank_of(slot);
    mpi::send(r, kStart, body.data(), body.size());
    // The rank answers `started` with the pid, or `died` if its local
    // worker could not start (then the core sees a death, as locally).
    std::vector<std::byte> reply;
    MPI_Status st;
    Backoff backoff(std::chrono::milliseconds(1));
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      if (try_recv(r, kStarted, reply, st)) break;
      if (std::chrono::steady_clock::now() > give_up) {
        throw Error("mproc::mpi::Pool: rank " + std::to_string(r) + " (" + host_of(r) +
                    ") did not start its worker within 60 s");
      }
      backoff.pause();
    }
    std::int32_t pid = 0;
    if (reply.size() >= sizeof pid) std::memcpy(&pid, reply.data(), sizeof pid);
    pids_[slot] = pid;
    alive_[slot] = true;
    seen_[slot].running.store(0);
  }

  void send(std::size_t slot, std::span<const std::byte> bytes, std::span<const int> fds) override {
    if (!fds.empty()) throw SerializationError("mproc::mpi::Pool: handles cannot cross to other ranks");
    mpi::send(rank_of(slot), kSend, bytes.data(), bytes.size());
  }

  Event wait(Deadline deadline) override {
    Backoff backoff(std::chrono::milliseconds(1));
    std::vector<std::byte> body;
    for (;;) {
      if (woken_.exchange(false)) return event(Event::Kind::wake);
      MPI_Status st;
      if (try_recv(MPI_ANY_SOURCE, MPI_ANY_TAG, body, st)) {
        if (auto e = on_receive(st, body)) return std::move(*e);
        backoff.reset();
        continue;
      }
      if (deadline && std::chrono::steady_clock::now() >= *deadline) return event(Event::Kind::timeout);
      backoff.pause();
    }
  }

  void wake() override { woken_.store(true); }

  void kill(std::size_t slot) override {
    if (alive_[slot]) mpi::send(rank_of(slot), kKill, nullptr, 0);
  }
  void retire(std::size_t slot) override {
    if (alive_[slot]) mpi::send(rank_of(slot), kRetire, nullptr, 0);
  }
  bool alive(std::size_t slot) const override { return alive_[slot]; }
  int pid(std::size_t slot) const override { return pids_[slot]; }
  const WorkerProgress* progress(std::size_t slot) const override {
    return alive_[slot] ? nullptr : &seen_[slot];
  }
  bool carries_fds() const noexcept override { return false; }

 private:
  static int rank_of(std::size_t slot) { return static_cast<int>(slot) + 1; }
  static Event event(Event::Kind kind) {
    Event e;
    e.kind = kind;
    return e;
  }

  std::optional<Event> on_receive(const MPI_Status& st, std::vector<std::byte>& body) {
    const int r = st.MPI_SOURCE;
    if (r < 1 || static_cast<std::size_t>(r) > workers_) return std::nullopt;  // not one of this pool's ranks
    const std::size_t slot = static_cast<std::size_t>(r - 1);
    if (st.MPI_TAG == kMessage) {
      Event e = event(Event::Kind::message);
      e.slot = slot;
      e.message.bytes = std::move(body);
      body = {};
      return e;
    }
    if (st.MPI_TAG == kDied && body.size() >= sizeof(Died)) {
      Died d;
      std::memcpy(&d, body.data(), sizeof d);
      WorkerProgress& p = seen_[slot];
      p.chunk_id.store(d.chunk_id);
      p.item.store(d.item);
      p.running.store(d.running);
      alive_[slot] = false;
      if (d.pid != 0) pids_[slot] = d.pid;
      Event e = event(Event::Kind::died);
      e.slot = slot;
      e.exit_code = d.exit_code;
      e.death.assign(reinterpret_cast<const char*>(body.data()) + sizeof d, body.size() - sizeof d);
      e.death += " on rank " + std::to_string(r) + " (host " + host_of(r) + ")";
      return e;
    }
    return std::nullopt;  // a late `started`/`end_ack` of no interest
  }

  Config config_;
  std::size_t workers_;
  std::vector<bool> alive_;
  std::vector<int> pids_;
  std::unique_ptr<WorkerProgress[]> seen_;
  std::atomic<bool> woken_{false};
};

}  // namespace

std::unique_ptr<Transport> make_transport(const TransportRequest& request) {
  const int size = world_size();
  if (!mproc::mpi::initialized()) throw Error("mproc::mpi::Pool: call mproc::mpi::init(argc, argv) first");
  if (world_rank() != 0) throw Error("mproc::mpi::Pool: only rank 0 can make a pool");
  if (size < 2) {
    throw Error("mproc::mpi::Pool: needs at least 2 ranks (rank 0 and a worker); run it with mpirun -n N, N >= 2");
  }
  const std::size_t available = static_cast<std::size_t>(size - 1);
  const std::size_t workers = request.processes == 0 ? available : request.processes;
  if (workers > available) {
    throw Error("mproc::mpi::Pool: asked for " + std::to_string(workers) + " workers, but only " +
                std::to_string(available) + " ranks besides rank 0 exist");
  }
  if (g_pool_exists.exchange(true)) {
    throw Error("mproc::mpi::Pool: another mproc::mpi::Pool exists; the ranks serve one pool at a time");
  }
  Config c;
  c.maxtasksperchild = request.maxtasksperchild;
  c.start_method = static_cast<std::uint8_t>(request.start_method);
  c.flush_each_item = request.flush_each_item ? 1 : 0;
  return std::make_unique<MpiTransport>(workers, c);
}

}  // namespace mproc::detail::mpi

namespace mproc::mpi {

PoolOptions<> Pool::with_workers(std::size_t workers) {
  if (workers == 0) throw Error("mproc::mpi::Pool: the number of workers must be at least 1");
  PoolOptions<> o;
  o.processes = workers;
  return o;
}

detail::TransportFactory Pool::transport_factory() { return &detail::mpi::make_transport; }

}  // namespace mproc::mpi
