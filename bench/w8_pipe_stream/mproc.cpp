// bench/w8_pipe_stream/mproc.cpp: W8, bandwidth of mproc::Pipe for 1 MiB
// messages (send_bytes in a child, recv_bytes in the parent). The
// reference is a raw AF_UNIX socketpair streaming 1 MiB writes
// (bench/reference/socketpair_stream.cpp).
//
//   RESULT gb_per_s <10^9 payload bytes per second> GB/s

#include <mproc/mproc.hpp>
#include <mproc/pipe.hpp>

#include <cstddef>
#include <span>
#include <vector>

#include "../common/harness.hpp"

namespace {

constexpr std::size_t kMsg = std::size_t{1} << 20;

void send_all(mproc::Connection<int> out, int count) {
  std::vector<std::byte> buf(kMsg, std::byte{'x'});
  for (int i = 0; i < count; ++i) out.send_bytes(std::span<const std::byte>(buf));
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const bench::Args args = bench::parse_args(argc, argv);
  const int warmup = 16;
  const int timed = args.quick ? 64 : 512;
  auto [in, out] = mproc::Pipe<int>(false);  // in receives, out sends
  mproc::Process child(send_all, out, warmup + timed);
  child.start();
  out.close();
  for (int i = 0; i < warmup; ++i) (void)in.recv_bytes();
  const double t0 = bench::now();
  std::size_t bytes = 0;
  for (int i = 0; i < timed; ++i) bytes += in.recv_bytes().size();
  const double t1 = bench::now();
  child.join();
  if (bytes != kMsg * static_cast<std::size_t>(timed)) bench::fail("Pipe stream: wrong message sizes");
  bench::result("gb_per_s", static_cast<double>(bytes) / (t1 - t0) / 1e9, "GB/s");
}
