// bench/w2_apply_roundtrip/mproc.cpp: W2, the latency of one task: a
// Pool(2) with one apply_async(noop).get() in flight at a time. The floor
// is the raw futex ping-pong (bench/reference/futex_pingpong.cpp); the
// spin-then-futex reference shows what a round trip costs while work flows.
//
//   RESULT roundtrip_us <mean microseconds per apply_async().get()> us

#include <mproc/mproc.hpp>

#include "../common/harness.hpp"

namespace {

void noop() {}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  const int warmup = args.quick ? 200 : 1000;
  const int timed = args.quick ? 2000 : 20000;
  mproc::Pool pool(static_cast<std::size_t>(args.processes));
  for (int i = 0; i < warmup; ++i) pool.apply_async(noop).get();
  const double t0 = bench::now();
  for (int i = 0; i < timed; ++i) pool.apply_async(noop).get();
  const double t1 = bench::now();
  pool.close();
  pool.join();
  bench::result("roundtrip_us", (t1 - t0) / timed * 1e6, "us");
}
