// mpi.hpp: the same Pool across many machines, on MPI (optional component,
// CMake target mproc::mpi, built when MPI is found).
//
//   int main(int argc, char** argv) {
//     mproc::mpi::init(argc, argv);  // ranks > 0 serve as workers and exit
//                                    // inside this call when rank 0 ends
//     mproc::mpi::Pool pool;         // one worker per rank > 0
//     auto squares = pool.map(square, std::vector{1, 2, 3});
//   }
//
//   mpirun -n 4 ./prog                       # one machine, 3 workers
//   mpirun -n 33 --hostfile hosts ./prog     # a cluster
//   srun -n 33 ./prog                        # under Slurm
//
// mproc::mpi::Pool is an mproc::Pool (pool.hpp): the whole API, the same
// semantics (errors, callbacks, imap laziness, task_timeout), so code
// written against `mproc::Pool&` takes either. Every rank runs the same
// binary; callables and values cross as they do between local processes
// (serialize.hpp), except handles (queues, locks, shared memory), which
// cannot leave their machine: a task whose arguments hold one fails with
// mproc::SerializationError.
//
// Each worker rank runs the tasks in a local worker process of its own
// (PoolOptions::start_method, default fork), so a task that crashes, calls
// _exit or hangs past task_timeout costs that task and a restart of the
// local worker, never the rank or the MPI job: the error names the rank
// and host (docs/design/mpi.md says what MPI's fault model allows beyond).
//
// Only one mproc::mpi::Pool may exist at a time (the ranks serve one pool);
// pools can follow each other. rank 0 shuts the workers down and finalizes
// MPI at exit, or earlier with mproc::mpi::finalize().
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "mproc/pool.hpp"

namespace mproc::mpi {

// Initializes MPI (thread level MPI_THREAD_MULTIPLE where offered, at least
// MPI_THREAD_SERIALIZED) and mproc (mproc::init). On ranks > 0 it serves
// pool tasks and never returns: the process exits when rank 0 finalizes.
// If MPI was initialized already, it is used as it is and not finalized.
// Throws mproc::Error if MPI cannot be initialized.
void init(int argc, char** argv);

// On rank 0: tells the worker ranks to exit, then finalizes MPI (if init()
// initialized it). Runs at exit if not called. Idempotent.
void finalize();

bool initialized() noexcept;
// This process's rank in MPI_COMM_WORLD and the world size; also right in
// the local worker processes of a rank (a task can ask where it runs).
int rank();
int size();
// MPI_Get_processor_name of this rank (the host name, usually).
std::string processor_name();

// Worker ranks send a heartbeat twice a second while a pool is open. One
// that sends nothing for this long (default 10 s) is taken as dead or hung:
// its unanswered tasks fail with mproc::WorkerLostError naming the rank
// and host, the pool goes on with the other ranks, and the rank is not
// used again in this run. (By default Open MPI ends the whole job when a
// rank dies; under `mpirun --enable-recovery` it does not, and this is
// what notices.) Rank 0 only; takes effect for pools made afterwards.
void set_rank_silence_limit(std::chrono::milliseconds limit);

class Pool : public mproc::Pool {
 public:
  // One worker per rank > 0.
  Pool() : Pool(PoolOptions<>{}) {}
  // The first `workers` ranks after 0; throws mproc::Error if there are
  // fewer, or workers == 0.
  explicit Pool(std::size_t workers) : Pool(with_workers(workers)) {}
  // options.processes: the number of worker ranks (0 = all ranks > 0);
  // options.start_method: how each rank starts its local worker process.
  template <class Init, class InitArgs>
  explicit Pool(const PoolOptions<Init, InitArgs>& options) : mproc::Pool(options, transport_factory()) {}

 private:
  static PoolOptions<> with_workers(std::size_t workers);
  static detail::TransportFactory transport_factory();
};

}  // namespace mproc::mpi
