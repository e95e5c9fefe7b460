// bench/reference/fork_waitpid.cpp: raw fork() + waitpid(), the floor for
// starting worker processes by fork. A Pool(2) starts two workers, so the
// number compared with W1 is two forks (each child _exit(0)s at once)
// followed by two waitpids.
//
// --touch-mib N first touches N MiB in the parent (see W1).
//
// The same two forks are then timed again after the process has run a
// second thread (started and joined): from then on glibc takes its
// multi-threaded fork path for good (the allocator's and stdio's locks
// are taken around the fork and reset in the child), as it does in any
// program with a Pool, which has a supervisor thread.
//
//   RESULT fork2_waitpid_ms          <median ms for 2 forks + 2 waitpids> ms
//   RESULT fork_waitpid_ms           <median ms for 1 fork + 1 waitpid> ms
//   RESULT fork2_waitpid_threaded_ms <2 forks + 2 waitpids after a thread> ms

#include <thread>
#include <vector>

#include "raw.hpp"

namespace {

double fork_and_reap(int n) {
  const double t0 = bench::now();
  pid_t pids[2];
  for (int i = 0; i < n; ++i) {
    pids[i] = ::fork();
    if (pids[i] < 0) bench::fail("fork failed");
    if (pids[i] == 0) ::_exit(0);
  }
  for (int i = 0; i < n; ++i) bench::raw::reap(pids[i]);
  return bench::now() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  const int iterations = args.quick ? 20 : 100;
  bench::touch_memory(args.touch_mib);
  for (int i = 0; i < 5; ++i) fork_and_reap(2);  // warm-up
  std::vector<double> two;
  std::vector<double> one;
  for (int i = 0; i < iterations; ++i) {
    two.push_back(fork_and_reap(2));
    one.push_back(fork_and_reap(1));
  }
  bench::result("fork2_waitpid_ms", bench::median(two) * 1e3, "ms");
  bench::result("fork_waitpid_ms", bench::median(one) * 1e3, "ms");

  std::thread([] {}).join();
  for (int i = 0; i < 5; ++i) fork_and_reap(2);  // warm-up
  std::vector<double> threaded;
  for (int i = 0; i < iterations; ++i) threaded.push_back(fork_and_reap(2));
  bench::result("fork2_waitpid_threaded_ms", bench::median(threaded) * 1e3, "ms");
}
