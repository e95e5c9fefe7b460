// bench/reference/socketpair_stream.cpp: raw AF_UNIX socketpair streaming
// of 1 MiB writes from a child to its parent, the bandwidth a byte stream
// between two processes reaches on this machine (mproc's Pipe send_bytes
// rides on the same kind of socket). Default socket buffer sizes.
//
//   RESULT gb_per_s <10^9 bytes per second> GB/s

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "raw.hpp"

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  constexpr std::size_t kMsg = std::size_t{1} << 20;
  const std::size_t warmup = 16;
  const std::size_t timed = args.quick ? 64 : 512;
  const std::size_t total = warmup + timed;

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) bench::fail("socketpair failed");
  const pid_t child = bench::raw::fork_child([&] {
    ::close(sv[0]);
    std::vector<char> buf(kMsg, 'x');
    for (std::size_t i = 0; i < total; ++i) {
      std::size_t off = 0;
      while (off < kMsg) {
        const ssize_t w = ::write(sv[1], buf.data() + off, kMsg - off);
        if (w < 0) {
          if (errno == EINTR) continue;
          bench::fail("socket write failed");
        }
        off += static_cast<std::size_t>(w);
      }
    }
  });
  ::close(sv[1]);

  std::vector<char> buf(kMsg);
  std::size_t got = 0;
  std::size_t got0 = 0;  // bytes read when the clock started
  double t0 = 0;
  while (got < total * kMsg) {
    if (t0 == 0 && got >= warmup * kMsg) {
      t0 = bench::now();
      got0 = got;
    }
    const ssize_t r = ::read(sv[0], buf.data(), kMsg);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      bench::fail("socket read failed");
    }
    got += static_cast<std::size_t>(r);
  }
  const double t1 = bench::now();
  bench::raw::reap(child);
  bench::result("gb_per_s", static_cast<double>(got - got0) / (t1 - t0) / 1e9, "GB/s");
}
