// fuzz_connection_frame.cpp: libFuzzer target for the Connection framing
// and decoding (detail/frame.hpp, Connection<T>::recv / recv_bytes).
//
// The fuzz input (after its first byte) is written into one end of a Unix
// stream socket pair and that end is closed; a Connection made on the
// other end, with a small message size limit, then receives until the end
// of the stream. The promise under test (connection.hpp): forged headers,
// bad magic, lying lengths, truncated messages and bodies that do not
// decode give EOFError or SerializationError, never a crash, a hang, a
// leaked descriptor, an allocation larger than what arrived, or any other
// exception; a body that fails to decode leaves the connection usable
// (the next message is read), a frame that breaks the framing closes it.
//
// The first input byte picks, bit by bit, whether each receive is a recv()
// of T or a recv_bytes().
//
// Seeds: fuzz/corpus/fuzz_connection_frame/ (regenerate with
// MPROC_FUZZ_WRITE_SEEDS=<dir> ./fuzz_connection_frame).

#include <mproc/connection.hpp>
#include <mproc/detail/frame.hpp>
#include <mproc/errors.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace {

using Value = std::variant<std::string, std::vector<std::int32_t>, std::map<std::int32_t, std::string>>;

constexpr std::size_t kMaxMessage = 4096;     // the connection's limit under test
constexpr std::size_t kMaxInput = 64 * 1024;  // stays below the socket buffer

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_connection_frame: %s\n", what);
  std::abort();
}

int lowest_free_fd() {
  const int fd = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) bug("fcntl(F_DUPFD_CLOEXEC) failed");
  ::close(fd);
  return fd;
}

std::string frame(const std::vector<std::byte>& body, std::uint64_t announced, std::uint32_t magic) {
  mproc::detail::FrameHeader h{magic, 0, announced};
  std::string out(reinterpret_cast<const char*>(&h), sizeof h);
  out.append(reinterpret_cast<const char*>(body.data()), body.size());
  return out;
}

void write_seed(const char* dir, const char* name, std::uint8_t mode, const std::string& stream) {
  std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
  out.put(static_cast<char>(mode));
  out.write(stream.data(), static_cast<std::streamsize>(stream.size()));
}

void write_seeds(const char* dir) {
  const auto str = mproc::to_bytes(Value(std::string("hello")));
  const auto vec = mproc::to_bytes(Value(std::vector<std::int32_t>{1, 2, 3}));
  const auto map = mproc::to_bytes(Value(std::map<std::int32_t, std::string>{{1, "a"}, {2, "bb"}}));
  const auto m = mproc::detail::kFrameMagic;
  write_seed(dir, "string", 0xff, frame(str, str.size(), m));
  write_seed(dir, "three_messages", 0xff, frame(str, str.size(), m) + frame(vec, vec.size(), m) + frame(map, map.size(), m));
  write_seed(dir, "bytes_then_value", 0x02, frame(vec, vec.size(), m) + frame(str, str.size(), m));
  write_seed(dir, "bad_body_then_good", 0xff, frame({std::byte{9}, std::byte{9}}, 2, m) + frame(str, str.size(), m));
  write_seed(dir, "bad_magic", 0xff, frame(str, str.size(), 0x12345678));
  write_seed(dir, "too_long", 0xff, frame(str, std::uint64_t{1} << 40, m));
  write_seed(dir, "truncated", 0xff, frame(str, str.size() + 10, m));
  write_seed(dir, "empty_body", 0x00, frame({}, 0, m));
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
  const std::uint8_t mode = data[0];
  const std::size_t n = std::min(size - 1, kMaxInput);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) bug("socketpair failed");
  if (n > 0 && ::send(sv[0], data + 1, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) bug("send failed");
  ::close(sv[0]);  // the peer is gone: the reader must see the end, not hang

  {
    using Core = mproc::detail::ConnectionCore;
    mproc::Connection<Value> c(std::make_shared<Core>(mproc::detail::UniqueFd(sv[1]),
                                                      Core::kReadable | Core::kWritable | Core::kCarriesFds,
                                                      kMaxMessage));
    for (int i = 0; i < 8; ++i) {
      try {
        if (mode & (1u << i)) {
          (void)c.recv();
        } else if (c.recv_bytes().size() > kMaxMessage) {
          bug("a message larger than the limit was accepted");
        }
      } catch (const mproc::EOFError&) {
        break;
      } catch (const mproc::SerializationError&) {
        if (c.closed()) break;  // the framing broke: the end is closed
      }
      // Any other exception propagates: libFuzzer reports it as a crash.
    }
  }
  if (lowest_free_fd() != baseline) bug("a descriptor leaked");
  return 0;
}
