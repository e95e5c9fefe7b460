// mpi_transport.cpp: the pool transport of rank 0 (detail/transport.hpp):
// each slot is a worker rank, which relays to a local worker process of
// its own (rank_server.cpp; the protocol is in protocol.hpp).
//
// What a local transport sees directly, this one learns from the ranks:
//  - a worker's pid arrives with `started`, its death with `died`;
//  - progress() is nullptr while a worker lives (the core times tasks out
//    by their last answer; results come item by item under task_timeout),
//    and after its death it holds what the rank saw at that moment, so the
//    core fails exactly the item that was running, as with local workers;
//  - wake() sets a flag that wait() polls (MPI has nothing to sleep on);
//  - a rank that sends nothing, not even its heartbeat, for the silence
//    limit is dead or hung: its slot is lost (its unanswered items fail
//    with WorkerLostError, the pool goes on with the other ranks), and the
//    rank is never used again in this run (MPI cannot restart it).

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>

#include "mproc/errors.hpp"
#include "mproc/mpi.hpp"
#include "protocol.hpp"

namespace mproc::detail::mpi {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_pool_exists{false};
std::atomic<std::int64_t> g_silence_ms{10000};
std::mutex g_lost_mu;
std::set<int> g_lost_ranks;  // ranks gone silent in this run

bool rank_lost(int r) {
  std::lock_guard lock(g_lost_mu);
  return g_lost_ranks.count(r) != 0;
}

class MpiTransport final : public Transport {
 public:
  MpiTransport(std::vector<int> ranks, Config config)
      : config_(config),
        ranks_(std::move(ranks)),
        seen_(std::make_unique<WorkerProgress[]>(ranks_.size())),
        silence_(std::chrono::milliseconds(g_silence_ms.load())) {
    const std::size_t n = ranks_.size();
    alive_.assign(n, false);
    lost_.assign(n, false);
    pids_.assign(n, 0);
    last_heard_.assign(n, Clock::now());
  }

  ~MpiTransport() override {
    // The ranks drop whatever is left of this pool and say so; until then
    // anything else they send belongs to this pool and is discarded. Lost
    // ranks are not waited for.
    try {
      std::size_t expected = 0;
      for (std::size_t i = 0; i < ranks_.size(); ++i) {
        if (lost_[i]) continue;
        outbox_.post(ranks_[i], kEnd, nullptr, 0);
        ++expected;
      }
      std::size_t acks = 0;
      Backoff backoff(std::chrono::milliseconds(1));
      const auto give_up = Clock::now() + silence_;
      std::vector<std::byte> body;
      while (acks < expected && Clock::now() < give_up) {
        outbox_.progress();
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

  std::size_t slots() const noexcept override { return ranks_.size(); }

  // Asks the rank to start its worker and returns: `started` (with the
  // pid) or `died` (it could not) arrives later through wait().
  void start(std::size_t slot, std::span<const std::byte> init, std::span<const int> init_fds) override {
    if (!init_fds.empty()) throw SerializationError("mproc::mpi::Pool: handles cannot cross to other ranks");
    if (lost_[slot]) throw WorkerLostError("mproc::mpi::Pool: rank " + std::to_string(ranks_[slot]) + " is lost");
    std::vector<std::byte> body(sizeof config_ + init.size());
    std::memcpy(body.data(), &config_, sizeof config_);
    if (!init.empty()) std::memcpy(body.data() + sizeof config_, init.data(), init.size());
    outbox_.post(ranks_[slot], kStart, body.data(), body.size());
    pids_[slot] = 0;
    alive_[slot] = true;
    last_heard_[slot] = Clock::now();
    seen_[slot].running.store(0);
  }

  void send(std::size_t slot, std::span<const std::byte> bytes, std::span<const int> fds) override {
    if (!fds.empty()) throw SerializationError("mproc::mpi::Pool: handles cannot cross to other ranks");
    if (!lost_[slot]) outbox_.post(ranks_[slot], kSend, bytes.data(), bytes.size());
  }

  Event wait(Deadline deadline) override {
    Backoff backoff(std::chrono::milliseconds(1));
    ByteBuffer body;
    auto next_silence_check = Clock::now();
    for (;;) {
      if (woken_.exchange(false)) return event(Event::Kind::wake);
      outbox_.progress();
      MPI_Status st;
      if (try_recv(MPI_ANY_SOURCE, MPI_ANY_TAG, body, st)) {
        if (auto e = on_receive(st, body)) return std::move(*e);
        backoff.reset();
        continue;
      }
      const auto now = Clock::now();
      if (now >= next_silence_check) {
        if (auto e = silent_rank(now)) return std::move(*e);
        next_silence_check = now + std::chrono::milliseconds(100);
      }
      if (deadline && now >= *deadline) return event(Event::Kind::timeout);
      backoff.pause();
    }
  }

  void wake() override { woken_.store(true); }

  void kill(std::size_t slot) override {
    if (alive_[slot] && !lost_[slot]) outbox_.post(ranks_[slot], kKill, nullptr, 0);
  }
  void retire(std::size_t slot) override {
    if (alive_[slot] && !lost_[slot]) outbox_.post(ranks_[slot], kRetire, nullptr, 0);
  }
  bool alive(std::size_t slot) const override { return alive_[slot]; }
  int pid(std::size_t slot) const override { return pids_[slot]; }
  const WorkerProgress* progress(std::size_t slot) const override {
    // A lost rank said nothing about its last moments: unknown (nullptr).
    return alive_[slot] || lost_[slot] ? nullptr : &seen_[slot];
  }
  bool carries_fds() const noexcept override { return false; }
  bool lost(std::size_t slot) const noexcept override { return lost_[slot]; }

 private:
  static Event event(Event::Kind kind) {
    Event e;
    e.kind = kind;
    return e;
  }

  std::optional<std::size_t> slot_of(int rank) const {
    for (std::size_t i = 0; i < ranks_.size(); ++i) {
      if (ranks_[i] == rank) return i;
    }
    return std::nullopt;
  }

  std::string where(std::size_t slot) const {
    const int r = ranks_[slot];
    return "rank " + std::to_string(r) + " (host " + host_of(r) + ")";
  }

  std::optional<Event> on_receive(const MPI_Status& st, ByteBuffer& body) {
    const auto found = slot_of(st.MPI_SOURCE);
    if (!found || lost_[*found]) return std::nullopt;  // not (or no longer) one of this pool's ranks
    const std::size_t slot = *found;
    last_heard_[slot] = Clock::now();
    switch (st.MPI_TAG) {
      case kMessage: {
        Event e = event(Event::Kind::message);
        e.slot = slot;
        e.message.bytes = std::move(body);
        body = {};
        return e;
      }
      case kStarted: {
        std::int32_t pid = 0;
        if (body.size() >= sizeof pid) std::memcpy(&pid, body.data(), sizeof pid);
        pids_[slot] = pid;
        return std::nullopt;
      }
      case kDied: {
        if (body.size() < sizeof(Died)) return std::nullopt;
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
        e.death += " on " + where(slot);
        return e;
      }
      default:
        return std::nullopt;  // a heartbeat: last_heard_ is all it is for
    }
  }

  // The first live slot whose rank has been silent past the limit, as a
  // death; the slot is lost from then on.
  std::optional<Event> silent_rank(Clock::time_point now) {
    for (std::size_t i = 0; i < ranks_.size(); ++i) {
      if (!alive_[i] || lost_[i] || now - last_heard_[i] <= silence_) continue;
      lost_[i] = true;
      alive_[i] = false;
      {
        std::lock_guard lock(g_lost_mu);
        g_lost_ranks.insert(ranks_[i]);
      }
      Event e = event(Event::Kind::died);
      e.slot = i;
      e.exit_code = -9;
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(silence_).count();
      e.death = "silence: " + where(i) + " sent nothing for " + std::to_string(ms) +
                " ms (dead or hung; it is not used again)";
      return e;
    }
    return std::nullopt;
  }

  Config config_;
  std::vector<int> ranks_;
  std::vector<bool> alive_;
  std::vector<bool> lost_;
  std::vector<int> pids_;
  std::vector<Clock::time_point> last_heard_;
  std::unique_ptr<WorkerProgress[]> seen_;
  std::chrono::milliseconds silence_;
  std::atomic<bool> woken_{false};
  Outbox outbox_;  // last: its destructor lets the last sends finish
};

}  // namespace

std::unique_ptr<Transport> make_transport(const TransportRequest& request) {
  if (!mproc::mpi::initialized()) throw Error("mproc::mpi::Pool: call mproc::mpi::init(argc, argv) first");
  if (world_rank() != 0) throw Error("mproc::mpi::Pool: only rank 0 can make a pool");
  const int size = world_size();
  if (size < 2) {
    throw Error("mproc::mpi::Pool: needs at least 2 ranks (rank 0 and a worker); run it with mpirun -n N, N >= 2");
  }
  std::vector<int> usable;
  for (int r = 1; r < size; ++r) {
    if (!rank_lost(r)) usable.push_back(r);
  }
  const std::size_t workers = request.processes == 0 ? usable.size() : request.processes;
  if (workers == 0 || workers > usable.size()) {
    throw Error("mproc::mpi::Pool: asked for " + std::to_string(workers) + " workers, but " +
                std::to_string(usable.size()) + " ranks besides rank 0 can serve (" +
                std::to_string(size - 1 - static_cast<int>(usable.size())) + " lost)");
  }
  usable.resize(workers);
  if (g_pool_exists.exchange(true)) {
    throw Error("mproc::mpi::Pool: another mproc::mpi::Pool exists; the ranks serve one pool at a time");
  }
  Config c;
  c.maxtasksperchild = request.maxtasksperchild;
  c.start_method = static_cast<std::uint8_t>(request.start_method);
  c.flush_each_item = request.flush_each_item ? 1 : 0;
  return std::make_unique<MpiTransport>(std::move(usable), c);
}

}  // namespace mproc::detail::mpi

namespace mproc::mpi {

void set_rank_silence_limit(std::chrono::milliseconds limit) {
  if (limit.count() <= 0) throw Error("mproc::mpi::set_rank_silence_limit: the limit must be positive");
  detail::mpi::g_silence_ms.store(limit.count());
}

PoolOptions<> Pool::with_workers(std::size_t workers) {
  if (workers == 0) throw Error("mproc::mpi::Pool: the number of workers must be at least 1");
  PoolOptions<> o;
  o.processes = workers;
  return o;
}

detail::TransportFactory Pool::transport_factory() { return &detail::mpi::make_transport; }

}  // namespace mproc::mpi
