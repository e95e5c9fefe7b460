// fuzz_handshake.cpp: libFuzzer target for the Listener/Client
// authentication handshake (detail/handshake.hpp).
//
// The fuzz input plays the peer: after its first byte it is written into
// one end of a Unix stream socket pair, whose write side is then shut, and
// the handshake runs on the other end, as the listener (first byte odd) or
// as the client (even), with a fixed authkey. The promise under test: an
// unauthenticated peer can only make the handshake fail, with
// AuthenticationError, never succeed (it cannot know a fresh challenge's
// HMAC), crash, hang, leak a descriptor, allocate more than a handshake
// message, or raise anything else.
//
// Seeds: fuzz/corpus/fuzz_handshake/ (regenerate with
// MPROC_FUZZ_WRITE_SEEDS=<dir> ./fuzz_handshake): well-formed transcripts
// with wrong MACs, so the fuzzer starts past the framing.

#include <mproc/detail/frame.hpp>
#include <mproc/detail/handshake.hpp>
#include <mproc/errors.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <span>
#include <string>

namespace {

constexpr std::size_t kMaxInput = 16 * 1024;

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_handshake: %s\n", what);
  std::abort();
}

int lowest_free_fd() {
  const int fd = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) bug("fcntl(F_DUPFD_CLOEXEC) failed");
  ::close(fd);
  return fd;
}

std::string frame(const std::string& body) {
  mproc::detail::FrameHeader h{mproc::detail::kFrameMagic, 0, body.size()};
  return std::string(reinterpret_cast<const char*>(&h), sizeof h) + body;
}

void write_seed(const char* dir, const char* name, char role, const std::string& stream) {
  std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
  out.put(role);
  out.write(stream.data(), static_cast<std::streamsize>(stream.size()));
}

void write_seeds(const char* dir) {
  const std::string nonce(32, 'n'), mac(32, 'm');
  // As the listener: the client's RESPONSE (type 2, MAC, nonce), then ACCEPT (5).
  write_seed(dir, "listener_response", 1, frame("\x02" + mac + nonce) + frame("\x05"));
  write_seed(dir, "listener_failure", 1, frame("\x02" + mac + nonce) + frame("\x04"));
  // As the client: the listener's CHALLENGE, then WELCOME (type 3, MAC).
  write_seed(dir, "client_challenge", 0, frame("\x01mproc-auth-1" + nonce) + frame("\x03" + mac));
  write_seed(dir, "client_failure", 0, frame("\x01mproc-auth-1" + nonce) + frame("\x04"));
  write_seed(dir, "garbage", 0, "GET / HTTP/1.0\r\n\r\n");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("MPROC_FUZZ_WRITE_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // Measured per input: between inputs libFuzzer itself may open
  // descriptors for good (the sanitizer's symbolizer pipes, when it
  // prints a new function), which are not ours.
  const int baseline = lowest_free_fd();
  const bool as_listener = (data[0] & 1) != 0;
  const std::size_t n = std::min(size - 1, kMaxInput);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) bug("socketpair failed");
  if (n > 0 && ::send(sv[0], data + 1, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) bug("send failed");
  // No more input, but the handshake's own messages still have somewhere
  // to go (a closed peer would end it at the first send instead).
  ::shutdown(sv[0], SHUT_WR);

  static const char key[] = "fuzzing key";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  try {
    const auto k = std::as_bytes(std::span(key, sizeof key - 1));
    if (as_listener) {
      mproc::detail::server_handshake(sv[1], k, deadline);
    } else {
      mproc::detail::client_handshake(sv[1], k, deadline);
    }
    bug("the handshake succeeded against a peer that does not know the key");
  } catch (const mproc::AuthenticationError&) {
    // The only acceptable outcome. Anything else propagates: a crash.
  }
  ::close(sv[0]);
  ::close(sv[1]);
  if (lowest_free_fd() != baseline) bug("a descriptor leaked");
  return 0;
}
