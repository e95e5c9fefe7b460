// bench/reference/contended_loop.hpp: the harness shared by the two
// "two processes hammer one shared word" references (pthread_mutex.cpp,
// atomic_fetch_add.cpp), mirroring W9: two freshly forked children wait
// at a start line, each runs `per_child` operations and notes the
// monotonic clock when its loop starts and ends; a round lasts from the
// first start to the last end (process start and wake-up latency stay
// outside, as in W9). One warm-up round, then `rounds` timed ones; the
// result is the median rate.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "raw.hpp"

namespace bench::raw {

struct StartLine {
  alignas(64) Word ready{0};
  alignas(64) Word go{0};
  alignas(64) double times[4]{};  // start, end of child 0; start, end of child 1
};

// op() is what a child repeats; check() tells whether the round's end
// state is right (a lost increment fails the benchmark).
template <class Op, class Reset, class Check>
double contended_rate(int per_child, int rounds, Op op, Reset reset, Check check) {
  StartLine* line = shared_new<StartLine>();
  std::vector<double> rates;
  for (int round = 0; round <= rounds; ++round) {
    reset();
    line->ready.store(0);
    line->go.store(0);
    pid_t kids[2];
    for (int who = 0; who < 2; ++who) {
      kids[who] = fork_child([&] {
        line->ready.fetch_add(1);
        futex_wake(&line->ready);
        wait_at_least(&line->go, 1);
        const double t0 = now();
        for (int i = 0; i < per_child; ++i) op();
        line->times[2 * who + 1] = now();
        line->times[2 * who] = t0;
      });
    }
    wait_at_least(&line->ready, 2);
    line->go.store(1);
    futex_wake(&line->go, 2);
    for (pid_t k : kids) reap(k);
    if (!check()) fail("lost updates: the shared counter is wrong");
    const double span = std::max(line->times[1], line->times[3]) - std::min(line->times[0], line->times[2]);
    if (round > 0) rates.push_back(2.0 * per_child / span);
  }
  return median(rates);
}

}  // namespace bench::raw
