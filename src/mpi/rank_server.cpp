// rank_server.cpp: a worker rank. It serves one pool after another until
// rank 0 says shutdown, relaying each pool's messages between rank 0 and a
// local worker process (a one-slot ProcessTransport, src/pool/), so that a
// task that crashes or hangs ends that process, never the rank: the rank
// reports the death with the item its worker was running, and starts a new
// worker when rank 0 asks (see protocol.hpp for the messages).

#include <cstring>

#include "mproc/errors.hpp"
#include "pool/process_transport.hpp"
#include "protocol.hpp"

namespace mproc::detail::mpi {
namespace {

class RankServer {
 public:
  // Returns when rank 0 says shutdown.
  void run() {
    Backoff backoff(std::chrono::microseconds(100));
    std::vector<std::byte> body;
    for (;;) {
      outbox_.progress();
      MPI_Status st;
      if (try_recv(0, MPI_ANY_TAG, body, st)) {
        if (st.MPI_TAG == kShutdown) return;
        on_command(st.MPI_TAG, body);
        backoff.reset();
        continue;
      }
      if (!local_) {
        // Between pools: poll less often.
        idle_.pause();
        continue;
      }
      idle_.reset();
      if (std::chrono::steady_clock::now() - last_told_ > kHeartbeatEvery) tell(kHeartbeat, nullptr, 0);
      // Sleeps in the local transport's poll for the pause, so a result of
      // the local worker is relayed at once.
      const auto pause = backoff.next();
      const Transport::Event e = local_->wait(std::chrono::steady_clock::now() + pause);
      if (e.kind == Transport::Event::Kind::message || e.kind == Transport::Event::Kind::died) {
        relay(e);
        backoff.reset();
      }
    }
  }

 private:
  void on_command(int tag, const std::vector<std::byte>& body) {
    switch (tag) {
      case kStart:
        start(body);
        break;
      case kSend:
        if (local_ && local_->alive(0)) local_->send(0, body, {});
        break;
      case kKill:
        if (local_ && local_->alive(0)) local_->kill(0);
        break;
      case kRetire:
        if (local_ && local_->alive(0)) local_->retire(0);
        break;
      case kEnd:
        end_pool();
        tell(kEndAck, nullptr, 0);
        break;
      default:
        break;  // unknown: ignored
    }
  }

  void start(const std::vector<std::byte>& body) {
    Config c;
    if (body.size() < sizeof c) throw SerializationError("mproc::mpi: malformed start message");
    std::memcpy(&c, body.data(), sizeof c);
    const std::span<const std::byte> init(body.data() + sizeof c, body.size() - sizeof c);
    if (!local_) {
      ProcessTransportOptions o;
      o.processes = 1;
      o.start_method = static_cast<StartMethod>(c.start_method);
      o.maxtasksperchild = c.maxtasksperchild;
      o.flush_each_item = c.flush_each_item != 0;
      local_ = make_process_transport(o);
    }
    try {
      local_->start(0, init, {});
    } catch (const std::exception& e) {
      send_died(1, 0, std::string("a failure to start the worker (") + e.what() + ")", nullptr);
      return;
    }
    const std::int32_t pid = local_->pid(0);
    tell(kStarted, &pid, sizeof pid);
  }

  void relay(const Transport::Event& e) {
    if (e.kind == Transport::Event::Kind::message) {
      // Descriptors cannot go on; a result that held a handle fails to
      // decode on rank 0 (SerializationError for that item).
      tell(kMessage, e.message.bytes.data(), e.message.bytes.size());
      return;
    }
    send_died(e.exit_code, local_->pid(0), e.death, local_->progress(0));
  }

  void send_died(int exit_code, int pid, const std::string& death, const WorkerProgress* p) {
    Died d;
    d.exit_code = exit_code;
    d.pid = pid;
    if (p != nullptr) {
      d.chunk_id = p->chunk_id.load();
      d.item = p->item.load();
      d.running = p->running.load();
    }
    std::vector<std::byte> body(sizeof d + death.size());
    std::memcpy(body.data(), &d, sizeof d);
    std::memcpy(body.data() + sizeof d, death.data(), death.size());
    tell(kDied, body.data(), body.size());
  }

  // The pool is over: its worker goes (killed if still there), and with
  // it whatever it would still have said.
  void end_pool() {
    if (!local_) return;
    if (local_->alive(0)) {
      local_->kill(0);
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (local_->alive(0) && std::chrono::steady_clock::now() < give_up) (void)local_->wait(give_up);
    }
    local_.reset();
  }

  // Everything to rank 0 goes through here; while a pool is open, rank 0
  // hears from this rank at least every kHeartbeatEvery (it takes a long
  // silence for death, see set_rank_silence_limit).
  void tell(int tag, const void* data, std::size_t n) {
    outbox_.post(0, tag, data, n);
    last_told_ = std::chrono::steady_clock::now();
  }

  static constexpr auto kHeartbeatEvery = std::chrono::milliseconds(500);
  std::chrono::steady_clock::time_point last_told_{};
  std::unique_ptr<Transport> local_;
  Outbox outbox_;
  Backoff idle_{std::chrono::milliseconds(2)};
};

}  // namespace

void serve() { RankServer().run(); }

}  // namespace mproc::detail::mpi
