// mpi_pool.cpp: from mproc::Pool on a laptop to mproc::mpi::Pool on a
// cluster, without rewriting the code that uses the pool.
//
//   mpirun -n 4 ./example_mpi_pool                  # this machine: 3 worker ranks
//   mpirun -n 65 --hostfile hosts ./example_mpi_pool # 64 workers on many hosts
//   srun -n 65 ./example_mpi_pool                   # under Slurm
//
// `count_primes` is written once against mproc::Pool&; main() hands it a
// pool of local processes and a pool of MPI ranks, and the answers agree.
// Every rank runs this same binary: mproc::mpi::init() makes ranks > 0
// serve tasks (they never return from it); rank 0 goes on with main().
// (The tour and ctest run it with 4 ranks; it checks its own answers.)

#include <mproc/mpi.hpp>
#include <mproc/mproc.hpp>

#include <cstdio>
#include <map>
#include <ranges>
#include <string>

bool is_prime(int n) {
  if (n < 2) return false;
  for (int d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

// Where a task ran, as "host/rank".
std::string where(int) { return mproc::mpi::processor_name() + "/rank " + std::to_string(mproc::mpi::rank()); }

// The code that does not care where its pool's workers are.
long count_primes(mproc::Pool& pool, int below) {
  long n = 0;
  for (bool p : pool.map(is_prime, std::views::iota(0, below))) n += p ? 1 : 0;
  return n;
}

int main(int argc, char** argv) {
  mproc::mpi::init(argc, argv);  // ranks > 0 serve in here until rank 0 ends
  if (mproc::mpi::size() < 2) {
    std::fprintf(stderr, "mpi_pool: run me with mpirun -n N (N >= 2), e.g. mpirun -n 4 %s\n", argv[0]);
    return 2;
  }

  mproc::mpi::Pool cluster;  // one worker per rank > 0
  mproc::Pool local(2);      // two local worker processes
  const long on_cluster = count_primes(cluster, 200000);
  const long on_laptop = count_primes(local, 200000);
  std::printf("primes below 200000: %ld on %zu MPI ranks, %ld on %zu local processes\n", on_cluster,
              cluster.processes(), on_laptop, local.processes());

  std::map<std::string, int> tasks_per_worker;
  for (const auto& w : cluster.map(where, std::views::iota(0, 30), 1)) ++tasks_per_worker[w];
  for (const auto& [w, n] : tasks_per_worker) std::printf("  %2d tasks ran on %s\n", n, w.c_str());

  if (on_cluster != 17984 || on_laptop != 17984) {
    std::fprintf(stderr, "mpi_pool: WRONG RESULT (expected 17984 primes)\n");
    return 1;
  }
  if (tasks_per_worker.count(where(0)) != 0) {
    std::fprintf(stderr, "mpi_pool: WRONG: a task ran on rank 0\n");
    return 1;
  }
  return 0;
}
