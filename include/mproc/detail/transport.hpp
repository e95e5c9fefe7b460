// detail/transport.hpp: the one interface between a pool's scheduling and
// result logic (detail/pool_core.hpp) and the workers that run its tasks.
//
// The pool core knows workers only as numbered slots that take messages,
// send messages back, and may die. How a worker is started, how bytes move,
// and how death is noticed is the transport's business:
//  - ProcessTransport (src/pool/process_transport.cpp): local worker
//    processes started with any start method, a MailLink each (shared-
//    memory rings, and a socket for descriptors: mail_link.hpp), pidfds
//    (or the forkserver's status pipe) for death, and a shared-memory
//    progress slot per worker that says which item is running;
//  - an MPI transport (mproc::mpi) maps slots to ranks.
//
// Threading: every method but wake() is called from the pool's supervisor
// thread only; wake() may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "mproc/detail/futex.hpp"
#include "mproc/detail/wire.hpp"

namespace mproc::detail {

// Where a worker is in its current chunk, when the transport can tell
// (shared memory written by the worker before each item).
struct WorkerProgress {
  std::atomic<std::uint64_t> chunk_id{0};  // chunk being run; 0 = none yet
  std::atomic<std::uint32_t> item{0};      // index within that chunk
  std::atomic<std::uint32_t> running{0};   // 1 while an item runs
  std::atomic<std::uint64_t> started_ns{0};  // CLOCK_MONOTONIC start of that item
  std::atomic<std::uint32_t> ready{0};       // 1 once the worker's loop runs
};
static_assert(sizeof(WorkerProgress) <= 64, "one progress slot per cache line");

class Transport {
 public:
  struct Event {
    enum class Kind { message, died, wake, timeout } kind = Kind::timeout;
    std::size_t slot = 0;
    Message message;          // for `message`
    std::string death;        // for `died`: "SIGKILL", "exit code 3", ...
    int exit_code = 0;        // for `died`: Python convention (-N = signal N)
    bool never_started = false;  // for `died`: killed for not starting in time
  };

  virtual ~Transport() = default;

  virtual std::size_t slots() const noexcept = 0;
  // Starts (or restarts) the worker of `slot` and sends it `init` as its
  // first message. Throws if the worker cannot be started.
  virtual void start(std::size_t slot, std::span<const std::byte> init, std::span<const int> init_fds) = 0;
  // Sends one message to a live worker. A worker that died meanwhile is
  // reported by a later `died` event, not by an exception.
  virtual void send(std::size_t slot, std::span<const std::byte> bytes, std::span<const int> fds) = 0;
  // The next event, or `timeout` at `deadline`. All messages a worker sent
  // before dying are delivered before its `died` event.
  virtual Event wait(Deadline deadline) = 0;
  // Makes a concurrent or the next wait() return a `wake` event.
  virtual void wake() = 0;
  // Kills the worker at once (a `died` event follows).
  virtual void kill(std::size_t slot) = 0;
  // Tells an idle worker to exit (a `died` event with code 0 follows).
  virtual void retire(std::size_t slot) = 0;
  virtual bool alive(std::size_t slot) const = 0;
  virtual int pid(std::size_t slot) const = 0;
  // Progress of the worker in `slot`, or nullptr if this transport cannot
  // see it (then the core assumes the first unanswered item was running).
  virtual const WorkerProgress* progress(std::size_t slot) const = 0;
  // Whether messages can carry descriptors (the handles of serialize.hpp:
  // queues, locks, shared memory). One between machines cannot; the core
  // then fails a task whose arguments hold a handle with SerializationError.
  virtual bool carries_fds() const noexcept { return true; }
  // Hands back a message the core is done with, so the transport may
  // reuse its buffer.
  virtual void recycle(Message&& /*m*/) {}
  // Whether the worker of `slot` is gone for good and must not be started
  // again (an MPI rank that went silent); the pool goes on with the others.
  virtual bool lost(std::size_t /*slot*/) const noexcept { return false; }
};

// Message kinds between the pool core and its workers (first byte).
enum class PoolMsg : std::uint8_t {
  init = 1,         // core -> worker: [has initializer u8][key u64][payload]
  task = 2,         // core -> worker: [chunk id u64][key u64][callable][count u32][items]
  exit = 3,         // core -> worker: finish and exit
  results = 4,      // worker -> core: [chunk id u64][first u32][count u32][outcomes]
  init_failed = 5,  // worker -> core: [facts]
  retiring = 6,     // worker -> core: maxtasksperchild reached, exiting
  chunk_failed = 7,  // worker -> core: [chunk id u64][facts]: the chunk could not
                     // start (its callable did not decode); its items fail
};

}  // namespace mproc::detail
