// protocol.hpp: what rank 0 (MpiTransport, mpi_transport.cpp) and the
// worker ranks (rank_server.cpp) say to each other, and the state both
// share (world.cpp).
//
// Every message travels on mproc's own duplicate of MPI_COMM_WORLD, so a
// program's own MPI traffic never matches ours. The MPI tag says what the
// message is; the body is raw bytes:
//
//   rank 0 -> worker rank          worker rank -> rank 0
//   start    [Config][init msg]    started  [pid i32]
//   send     [pool message]        message  [pool message from the worker]
//   kill     -                     died     [Died][death text]
//   retire   -                     end_ack  -
//   end      - (pool is over)       heartbeat - (while a pool is open)
//   shutdown - (leave serve())
//
// A worker rank relays pool messages between rank 0 and a local worker
// process (a ProcessTransport of one slot), so a task's crash is a local
// process death that the rank reports, with the item it was running.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mproc/detail/buffer.hpp"
#include "mproc/pool.hpp"

namespace mproc::detail::mpi {

enum Tag : int {
  kStart = 101,
  kSend,
  kKill,
  kRetire,
  kEnd,
  kShutdown,
  kStarted = 201,
  kMessage,
  kDied,
  kEndAck,
  kHeartbeat,
};

// The per-pool settings of a worker rank's local worker process.
struct Config {
  std::uint32_t maxtasksperchild = 0;
  std::uint8_t start_method = 0;  // StartMethod
  std::uint8_t flush_each_item = 0;
};

// What the rank saw of its local worker when it died (the transport's
// WorkerProgress at that moment), then the death in words.
struct Died {
  std::int32_t exit_code = 0;
  std::int32_t pid = 0;
  std::uint64_t chunk_id = 0;
  std::uint32_t item = 0;
  std::uint32_t running = 0;
};

// The communicator, rank, size and host names, set by init().
MPI_Comm comm();
int world_rank();
int world_size();
const std::string& host_of(int rank);

// Receives the next message matching (source, tag) if one is there;
// returns false otherwise. `source`/`tag` may be MPI_ANY_*.
bool try_recv(int source, int tag, std::vector<std::byte>& body, MPI_Status& status);
// The same into uninitialised storage (no zero-fill before the bytes land).
bool try_recv(int source, int tag, ByteBuffer& body, MPI_Status& status);
void send(int dest, int tag, const void* data, std::size_t n);

// Sends that never block: two ranks that each send the other a big
// message (rendezvous protocol) with a blocking MPI_Send would wait for
// each other forever, as neither receives. A message is copied in, sent
// with MPI_Isend, and kept until MPI is done with it; MPI keeps the order
// of messages between two ranks. progress() must be called while polling.
class Outbox {
 public:
  Outbox() = default;
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;
  ~Outbox();  // waits (bounded) for the sends still in flight

  void post(int dest, int tag, const void* data, std::size_t n);
  // Completes what MPI has finished sending; true if nothing is in flight.
  bool progress();

 private:
  struct Pending {
    MPI_Request request;
    std::vector<std::byte> bytes;
  };
  std::vector<Pending> pending_;
};

// Polling with a growing pause: MPI has no descriptor to sleep on, so an
// idle waiter polls, first back to back, then at most every `max` apart.
class Backoff {
 public:
  explicit Backoff(std::chrono::microseconds max) : max_(max) {}
  void reset() noexcept { polls_ = 0; pause_ = std::chrono::microseconds(0); }
  // The pause before the next poll (zero while still polling back to back).
  std::chrono::microseconds next() noexcept;
  // Sleeps next().
  void pause();

 private:
  std::chrono::microseconds max_;
  std::chrono::microseconds pause_{0};
  unsigned polls_ = 0;
};

// rank_server.cpp: serves pools until rank 0 says shutdown.
void serve();

// mpi_transport.cpp: the transport of an mproc::mpi::Pool on rank 0.
std::unique_ptr<Transport> make_transport(const TransportRequest& request);

}  // namespace mproc::detail::mpi
