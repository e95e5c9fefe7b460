// bench/reference/pipe_pingpong.cpp: the raw pipe ping-pong between two
// processes (8-byte messages through two pipe(2)s), the floor for a
// round trip over a kernel byte stream such as mproc's Pipe.
//
//   RESULT roundtrip_us <mean microseconds per round trip> us

#include <unistd.h>

#include <cstdint>

#include "raw.hpp"

namespace {

void write_all(int fd, const void* p, std::size_t n) {
  if (::write(fd, p, n) != static_cast<ssize_t>(n)) bench::fail("pipe write failed");
}
void read_all(int fd, void* p, std::size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::read(fd, c, n);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      bench::fail("pipe read failed");
    }
    c += r;
    n -= static_cast<std::size_t>(r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  const std::uint64_t warmup = args.quick ? 200 : 2000;
  const std::uint64_t timed = args.quick ? 2000 : 20000;
  const std::uint64_t total = warmup + timed;

  int to_child[2];
  int to_parent[2];
  if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) bench::fail("pipe failed");
  const pid_t child = bench::raw::fork_child([&] {
    ::close(to_child[1]);
    ::close(to_parent[0]);
    for (std::uint64_t i = 0; i < total; ++i) {
      std::uint64_t v = 0;
      read_all(to_child[0], &v, sizeof v);
      write_all(to_parent[1], &v, sizeof v);
    }
  });
  ::close(to_child[0]);
  ::close(to_parent[1]);

  double t0 = 0;
  for (std::uint64_t i = 0; i < total; ++i) {
    if (i == warmup) t0 = bench::now();
    std::uint64_t v = i;
    write_all(to_child[1], &v, sizeof v);
    read_all(to_parent[0], &v, sizeof v);
    if (v != i) bench::fail("pipe echo mismatch");
  }
  const double t1 = bench::now();
  bench::raw::reap(child);
  bench::result("roundtrip_us", (t1 - t0) / timed * 1e6, "us");
}
