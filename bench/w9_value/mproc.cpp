// bench/w9_value/mproc.cpp: W9, mproc::Value<int> hammered by two
// processes, 100,000 increments each: under its lock (std::lock_guard on
// get_lock()), and with the lock-free fetch_add. Each round starts two
// fresh children that meet the parent at a Barrier(3); each child notes
// the monotonic clock (one clock for all processes) when it starts and
// ends its loop in a RawArray<double>, and the round's time is from the
// first start to the last end, as in the references
// (bench/reference/pthread_mutex.cpp, atomic_fetch_add.cpp). Process start
// and wake-up latency are thus outside the measurement on both sides.
// One warm-up round, then the median rate of the timed rounds.
//
//   RESULT lock_ops_per_s      <locked increments per second> ops/s
//   RESULT fetch_add_ops_per_s <fetch_adds per second>         ops/s

#include <mproc/mproc.hpp>
#include <mproc/barrier.hpp>
#include <mproc/shared_value.hpp>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <vector>

#include "../common/harness.hpp"

namespace {

constexpr int kPerChild = 100000;
constexpr auto kGuard = std::chrono::seconds(60);

// times[2 * who] and times[2 * who + 1]: when child `who` started and
// finished its loop.
void locked(mproc::Value<int> v, mproc::Barrier start_line, mproc::RawArray<double> times, int who, int n) {
  start_line.wait(kGuard);
  const double t0 = bench::now();
  for (int i = 0; i < n; ++i) {
    std::lock_guard<mproc::RLock> g(v.get_lock());
    v.value() += 1;
  }
  times[2 * who + 1] = bench::now();
  times[2 * who] = t0;
}

void atomic(mproc::Value<int> v, mproc::Barrier start_line, mproc::RawArray<double> times, int who, int n) {
  start_line.wait(kGuard);
  const double t0 = bench::now();
  for (int i = 0; i < n; ++i) v.fetch_add(1);
  times[2 * who + 1] = bench::now();
  times[2 * who] = t0;
}

template <class Worker>
double rate(Worker worker, int rounds) {
  std::vector<double> rates;
  for (int round = 0; round <= rounds; ++round) {
    mproc::Value<int> v(0);
    mproc::Barrier start_line(3);
    mproc::RawArray<double> times(4);
    mproc::Process a(worker, v, start_line, times, 0, kPerChild);
    mproc::Process b(worker, v, start_line, times, 1, kPerChild);
    a.start();
    b.start();
    start_line.wait(kGuard);
    a.join();
    b.join();
    if (a.exitcode() != 0 || b.exitcode() != 0) bench::fail("Value: a child failed");
    if (v.load() != 2 * kPerChild) bench::fail("Value: lost increments");
    const double span = std::max(times[1], times[3]) - std::min(times[0], times[2]);
    if (round > 0) rates.push_back(2.0 * kPerChild / span);
  }
  return bench::median(rates);
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  const int rounds = args.quick ? 3 : 7;
  bench::result("lock_ops_per_s", rate(locked, rounds), "ops/s");
  bench::result("fetch_add_ops_per_s", rate(atomic, rounds), "ops/s");
}
