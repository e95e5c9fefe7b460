// bench/reference/futex_pingpong.cpp: the raw futex ping-pong between two
// processes over a shared mapping, the floor for any blocking round trip
// (mproc's Pool apply_async round trip, Queue ping-pong).
//
// One shared 32-bit sequence word. The parent makes it odd and wakes the
// child; the child makes it even and wakes the parent. Each side sleeps on
// the futex whenever it is not its turn and always calls FUTEX_WAKE: no
// spinning, so every round trip pays two blocking wake-ups.
//
//   RESULT roundtrip_us <mean microseconds per round trip> us

#include <cstdint>

#include "raw.hpp"

namespace {

struct Shared {
  alignas(64) bench::raw::Word seq{0};
};

// Waits until *seq == want (sleeping whenever it is something else).
void wait_for(bench::raw::Word* seq, std::uint32_t want) {
  for (std::uint32_t v = seq->load(); v != want; v = seq->load()) bench::raw::futex_wait(seq, v);
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  const std::uint32_t warmup = args.quick ? 200 : 2000;
  const std::uint32_t timed = args.quick ? 2000 : 20000;
  const std::uint32_t total = warmup + timed;

  Shared* s = bench::raw::shared_new<Shared>();
  const pid_t child = bench::raw::fork_child([&] {
    for (std::uint32_t i = 0; i < total; ++i) {
      wait_for(&s->seq, 2 * i + 1);
      s->seq.store(2 * i + 2);
      bench::raw::futex_wake(&s->seq);
    }
  });

  double t0 = 0;
  for (std::uint32_t i = 0; i < total; ++i) {
    if (i == warmup) t0 = bench::now();
    s->seq.store(2 * i + 1);
    bench::raw::futex_wake(&s->seq);
    wait_for(&s->seq, 2 * i + 2);
  }
  const double t1 = bench::now();
  bench::raw::reap(child);
  bench::result("roundtrip_us", (t1 - t0) / timed * 1e6, "us");
}
