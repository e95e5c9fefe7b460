// bench/w1_pool_start/mproc.cpp: W1, what a whole Pool(2) lifetime costs
// when it does no work: construct, close(), join(); under fork and under
// spawn. The Python twin is python_mp.py in this folder; the reference is
// two raw fork()+waitpid() (bench/reference/fork_waitpid.cpp).
//
// --touch-mib N first touches N MiB in the parent (4 KiB pages, no huge
// pages), which fork has to map into every child: run it by hand to see
// fork's cost grow with the parent while spawn's stays put.
//
// Between the fork cycles it also times two raw fork()+waitpid() from this
// same process, interleaved: fork costs what the forking process's memory
// and threads make it cost, and this is the floor for the pool's two
// workers in this program (the reference program is a smaller process).
//
//   RESULT fork_ms      <median ms per create+close+join, fork>  ms
//   RESULT raw_fork2_ms <median ms for 2 raw forks + 2 waitpids here> ms
//   RESULT spawn_ms     <median ms per create+close+join, spawn> ms

#include <sys/wait.h>
#include <unistd.h>

#include <mproc/mproc.hpp>

#include <vector>

#include "../common/harness.hpp"

namespace {

double pool_cycle(mproc::StartMethod method, int processes) {
  const double t0 = bench::now();
  mproc::PoolOptions<> options;
  options.processes = static_cast<std::size_t>(processes);
  options.start_method = method;
  mproc::Pool pool(options);
  pool.close();
  pool.join();
  return bench::now() - t0;
}

// Two children that _exit(0) at once, then both reaped.
double raw_fork_pair() {
  const double t0 = bench::now();
  pid_t pids[2];
  for (pid_t& pid : pids) {
    pid = ::fork();
    if (pid < 0) bench::fail("fork failed");
    if (pid == 0) ::_exit(0);
  }
  for (const pid_t pid : pids) {
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) bench::fail("waitpid failed");
  }
  return bench::now() - t0;
}

double median_ms(mproc::StartMethod method, int processes, int warmup, int timed) {
  for (int i = 0; i < warmup; ++i) pool_cycle(method, processes);
  std::vector<double> t;
  for (int i = 0; i < timed; ++i) t.push_back(pool_cycle(method, processes));
  return bench::median(t) * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // first: spawned workers run inside this call
  const bench::Args args = bench::parse_args(argc, argv);
  const int fork_n = args.quick ? 5 : 20;
  const int spawn_n = args.quick ? 3 : 10;
  bench::touch_memory(args.touch_mib);
  std::vector<double> pool, raw;
  for (int i = 0; i < 2; ++i) {
    pool_cycle(mproc::StartMethod::fork, args.processes);
    raw_fork_pair();
  }
  for (int i = 0; i < fork_n; ++i) {
    pool.push_back(pool_cycle(mproc::StartMethod::fork, args.processes));
    raw.push_back(raw_fork_pair());
  }
  bench::result("fork_ms", bench::median(pool) * 1e3, "ms");
  bench::result("raw_fork2_ms", bench::median(raw) * 1e3, "ms");
  bench::result("spawn_ms", median_ms(mproc::StartMethod::spawn, args.processes, 1, spawn_n), "ms");
}
