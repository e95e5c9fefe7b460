// bench/reference/atomic_fetch_add.cpp: a relaxed atomic fetch_add on one
// shared word, hammered by two processes (2 x 100,000), the reference for
// W9's Value<int>::fetch_add.
//
//   RESULT ops_per_s <fetch_adds per second, both processes> ops/s

#include <atomic>

#include "contended_loop.hpp"

namespace {

struct Shared {
  alignas(64) std::atomic<long> counter{0};
};

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  const int per_child = 100000;
  const int rounds = args.quick ? 3 : 7;
  Shared* s = bench::raw::shared_new<Shared>();
  const double rate = bench::raw::contended_rate(
      per_child, rounds, [s] { s->counter.fetch_add(1, std::memory_order_relaxed); },
      [s] { s->counter.store(0); }, [s, per_child] { return s->counter.load() == 2L * per_child; });
  bench::result("ops_per_s", rate, "ops/s");
}
