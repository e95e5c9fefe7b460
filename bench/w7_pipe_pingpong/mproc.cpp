// bench/w7_pipe_pingpong/mproc.cpp: W7, the round trip of a small message
// over mproc::Pipe<int> (a duplex pair of Connections): the parent sends,
// a child echoes. The floor is the raw pipe ping-pong
// (bench/reference/pipe_pingpong.cpp). The parent closes the child's end
// after the start, so a dead child gives EOFError instead of a hang.
//
//   RESULT roundtrip_us <mean microseconds per round trip> us

#include <mproc/mproc.hpp>
#include <mproc/pipe.hpp>

#include "../common/harness.hpp"

namespace {

void echo(mproc::Connection<int> c) {
  for (;;) {
    const int v = c.recv();
    if (v < 0) return;
    c.send(v);
  }
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  const int warmup = args.quick ? 200 : 2000;
  const int timed = args.quick ? 2000 : 20000;
  auto [mine, theirs] = mproc::Pipe<int>();
  mproc::Process child(echo, theirs);
  child.start();
  theirs.close();
  double t0 = 0;
  for (int i = 0; i < warmup + timed; ++i) {
    if (i == warmup) t0 = bench::now();
    mine.send(i);
    if (mine.recv() != i) bench::fail("Pipe ping-pong: wrong echo");
  }
  const double t1 = bench::now();
  mine.send(-1);
  child.join();
  bench::result("roundtrip_us", (t1 - t0) / timed * 1e6, "us");
}
