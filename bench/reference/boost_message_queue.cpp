// bench/reference/boost_message_queue.cpp: Boost.Interprocess
// message_queue streaming 8-byte messages from a child to its parent, the
// library reference for W6's Queue streaming (Debian libboost-dev,
// header-only). The queue holds up to kCapacity messages; the child blocks
// when it is full, the parent when it is empty.
//
// The queue lives in a named POSIX shared-memory object (Boost's design);
// it is removed before and after the run, so nothing is left in /dev/shm.
//
//   RESULT msgs_per_s <messages per second> msgs/s

#include <boost/interprocess/ipc/message_queue.hpp>

#include <cstdint>
#include <string>

#include "raw.hpp"

namespace bip = boost::interprocess;

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  constexpr std::size_t kCapacity = 4096;
  const std::uint64_t warmup = 1000;
  const std::uint64_t timed = args.quick ? 50000 : 200000;
  const std::uint64_t total = warmup + timed;
  const std::string name = "mproc_bench_mq_" + std::to_string(::getpid());

  bip::message_queue::remove(name.c_str());
  double rate = 0;
  try {
    bip::message_queue mq(bip::create_only, name.c_str(), kCapacity, sizeof(std::uint64_t));
    const pid_t child = bench::raw::fork_child([&] {
      bip::message_queue out(bip::open_only, name.c_str());
      for (std::uint64_t i = 0; i < total; ++i) out.send(&i, sizeof i, 0);
    });
    double t0 = 0;
    for (std::uint64_t i = 0; i < total; ++i) {
      if (i == warmup) t0 = bench::now();
      std::uint64_t v = 0;
      bip::message_queue::size_type got = 0;
      unsigned priority = 0;
      mq.receive(&v, sizeof v, got, priority);
      if (got != sizeof v || v != i) bench::fail("message_queue: wrong message");
    }
    const double t1 = bench::now();
    bench::raw::reap(child);
    rate = static_cast<double>(timed) / (t1 - t0);
  } catch (const bip::interprocess_exception& e) {
    bip::message_queue::remove(name.c_str());
    bench::fail(std::string("message_queue: ") + e.what());
  }
  bip::message_queue::remove(name.c_str());
  bench::result("msgs_per_s", rate, "msgs/s");
}
