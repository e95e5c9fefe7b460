// bench/w6_queue/mproc.cpp: W6, mproc::Queue<int> between two processes:
// streaming 200,000 small ints from a child to the parent (messages per
// second; the library reference is Boost.Interprocess message_queue), and
// a ping-pong over two queues (round trip; the floor is the raw futex
// ping-pong). Every get has a generous timeout, so a dead child fails the
// benchmark instead of hanging it.
//
//   RESULT stream_msgs_per_s <messages per second>            msgs/s
//   RESULT pingpong_us       <mean microseconds per round trip> us

#include <mproc/mproc.hpp>
#include <mproc/queue.hpp>

#include <chrono>

#include "../common/harness.hpp"

namespace {

constexpr auto kGuard = std::chrono::seconds(60);

void produce(mproc::Queue<int> q, int n) {
  for (int i = 0; i < n; ++i) q.put(i);
}

void echo(mproc::Queue<int> in, mproc::Queue<int> out) {
  for (;;) {
    const int v = in.get(kGuard);
    if (v < 0) return;
    out.put(v);
  }
}

double stream(int warmup, int timed) {
  mproc::Queue<int> q;
  mproc::Process child(produce, q, warmup + timed);
  child.start();
  for (int i = 0; i < warmup; ++i) {
    if (q.get(kGuard) != i) bench::fail("Queue stream: out of order");
  }
  const double t0 = bench::now();
  for (int i = warmup; i < warmup + timed; ++i) {
    if (q.get(kGuard) != i) bench::fail("Queue stream: out of order");
  }
  const double t1 = bench::now();
  child.join();
  return timed / (t1 - t0);
}

double pingpong(int warmup, int timed) {
  mproc::Queue<int> there;
  mproc::Queue<int> back;
  mproc::Process child(echo, there, back);
  child.start();
  double t0 = 0;
  for (int i = 0; i < warmup + timed; ++i) {
    if (i == warmup) t0 = bench::now();
    there.put(i);
    if (back.get(kGuard) != i) bench::fail("Queue ping-pong: wrong echo");
  }
  const double t1 = bench::now();
  there.put(-1);
  child.join();
  return (t1 - t0) / timed * 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  bench::result("stream_msgs_per_s", stream(1000, args.quick ? 50000 : 200000), "msgs/s");
  bench::result("pingpong_us", pingpong(200, args.quick ? 2000 : 10000), "us");
}
