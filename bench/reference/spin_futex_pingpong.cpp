// bench/reference/spin_futex_pingpong.cpp: the spin-then-futex ping-pong,
// which shows how fast a round trip between two processes can be while
// work is flowing: each side spins briefly on the shared word, sleeps on
// the futex only if nothing came, and the other side issues FUTEX_WAKE only
// when its peer is actually asleep.
//
// Lost wake-up: the waiter announces "sleeping" and then re-reads the
// word; the waker publishes the word and then reads "sleeping". Both with
// sequentially consistent order, so at least one of them sees the other's
// store: either the waiter sees the new value and does not sleep, or the
// waker sees the flag and wakes it.
//
// The spin is bounded (kSpin) because the two cores of this machine are
// shared by the parent, the child and everything else running, and it
// yields the CPU every 64 turns: a spinner that never yields can keep the
// very peer it waits for off the core (measured here under load: ~100 us
// round trips without the yield, 0.1-7 us with it).
//
//   RESULT roundtrip_us <mean microseconds per round trip> us

#include <sched.h>

#include <cstdint>

#include "raw.hpp"

namespace {

constexpr double kSpin = 20e-6;  // seconds of spinning before sleeping

struct Shared {
  alignas(64) bench::raw::Word seq{0};
  alignas(64) bench::raw::Word sleeping[2]{};  // [0] parent, [1] child
};

void wait_for(Shared* s, int me, std::uint32_t want) {
  if (s->seq.load() == want) return;
  const double until = bench::now() + kSpin;
  for (unsigned n = 0;; ++n) {
    if (s->seq.load() == want) return;
    bench::raw::cpu_relax();
    if ((n & 63) == 63) {
      if (bench::now() > until) break;
      ::sched_yield();
    }
  }
  for (;;) {
    s->sleeping[me].store(1);
    const std::uint32_t v = s->seq.load();
    if (v == want) break;
    bench::raw::futex_wait(&s->seq, v);
    s->sleeping[me].store(0);
  }
  s->sleeping[me].store(0);
}

void publish(Shared* s, int peer, std::uint32_t value) {
  s->seq.store(value);
  if (s->sleeping[peer].load() != 0) bench::raw::futex_wake(&s->seq);
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  const std::uint32_t warmup = args.quick ? 500 : 5000;
  const std::uint32_t timed = args.quick ? 5000 : 50000;
  const std::uint32_t total = warmup + timed;

  Shared* s = bench::raw::shared_new<Shared>();
  const pid_t child = bench::raw::fork_child([&] {
    for (std::uint32_t i = 0; i < total; ++i) {
      wait_for(s, 1, 2 * i + 1);
      publish(s, 0, 2 * i + 2);
    }
  });

  double t0 = 0;
  for (std::uint32_t i = 0; i < total; ++i) {
    if (i == warmup) t0 = bench::now();
    publish(s, 1, 2 * i + 1);
    wait_for(s, 0, 2 * i + 2);
  }
  const double t1 = bench::now();
  bench::raw::reap(child);
  bench::result("roundtrip_us", (t1 - t0) / timed * 1e6, "us");
}
