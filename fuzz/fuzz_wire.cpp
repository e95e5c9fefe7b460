// fuzz_wire.cpp: libFuzzer target for the message framing
// (detail::recv_message, detail/wire.hpp).
//
// Every byte a process reads from a socket (child frames, pool tasks and
// results, Connection messages) is framed by recv_message. Here the fuzz
// input is written into one end of a Unix stream socket pair, that end is
// closed, and recv_message reads from the other with a small max_bytes. The
// promise under test: a header that lies (about the length, the descriptor
// count) or a stream that ends early gives EOFError or SerializationError,
// never a crash, a hang, a leaked descriptor, an allocation bigger than what
// arrived, or any other exception.
//
// The first input byte chooses how many descriptors (0-3, copies of
// /dev/null) ride along with the bytes as SCM_RIGHTS, so that the
// "header announces N descriptors, M arrived" path is exercised too, and
// (bit 2) whether the reader has a BulkRing (detail/bulk_ring.hpp) of
// 128 KiB: then bulk frames (descriptor count kBulkFrame, a 16-byte
// position and length) are taken from it, and a frame that points anywhere
// but at the ring's next body must be a SerializationError, never a read
// outside the ring; and (bit 3) whether the messages are read by a
// MessageReader (several per system call, descriptors queued) instead of
// one recv_message_into each. Up to three messages are read from one
// stream, as a real reader would.
//
// Seeds: fuzz/corpus/fuzz_wire/ (regenerate with
// MPROC_FUZZ_WRITE_SEEDS=<dir> ./fuzz_wire).

#include <mproc/detail/wire.hpp>
#include <mproc/errors.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kMaxBytes = 4096;          // recv_message's limit under test
constexpr std::size_t kMaxInput = 64 * 1024;     // stays below the socket buffer
constexpr std::size_t kRingBytes = 128 * 1024;   // the reader's BulkRing, when it has one

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_wire: %s\n", what);
  std::abort();
}

// The lowest free descriptor number: if it changes between runs, a
// descriptor leaked.
int lowest_free_fd() {
  const int fd = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) bug("fcntl(F_DUPFD_CLOEXEC) failed");
  ::close(fd);
  return fd;
}

// Writes `bytes` into `sock` as one sendmsg carrying `nfds` descriptors.
void send_raw(int sock, const std::uint8_t* bytes, std::size_t n, int nfds, int devnull) {
  iovec iov{const_cast<std::uint8_t*>(bytes), n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 3)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    for (int i = 0; i < nfds; ++i) std::memcpy(CMSG_DATA(c) + i * sizeof(int), &devnull, sizeof(int));
  }
  // Data and descriptors need at least one byte to travel.
  if (n == 0 && nfds == 0) return;
  static std::uint8_t zero = 0;
  if (n == 0) iov = {&zero, 1};
  if (::sendmsg(sock, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(iov.iov_len)) bug("sendmsg failed");
}

void write_seed(const char* dir, const char* name, std::uint8_t nfds, std::uint64_t length,
                std::uint32_t announced_fds, const std::string& body) {
  std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
  out.put(static_cast<char>(nfds));
  out.write(reinterpret_cast<const char*>(&length), sizeof length);
  out.write(reinterpret_cast<const char*>(&announced_fds), sizeof announced_fds);
  out.write(body.data(), static_cast<std::streamsize>(body.size()));
}

void write_seeds(const char* dir) {
  write_seed(dir, "hello", 0, 5, 0, "hello");
  write_seed(dir, "empty_body", 0, 0, 0, "");
  write_seed(dir, "with_fd", 1, 3, 1, "abc");
  write_seed(dir, "two_fds", 2, 1, 2, "x");
  write_seed(dir, "fd_mismatch", 1, 2, 0, "hi");
  write_seed(dir, "too_long", 0, 1u << 20, 0, "short");
  write_seed(dir, "truncated", 0, 10, 0, "abc");
  // Two messages back to back.
  std::string second(12, '\0');
  const std::uint64_t len2 = 2;
  std::memcpy(second.data(), &len2, sizeof len2);
  write_seed(dir, "two_messages", 0, 1, 0, "a" + second + "bc");
  // Bulk frames (with a ring: first byte 4): the ring's first body, then
  // one that skips to the next lap, and one that points past the ring.
  auto ref = [](std::uint64_t position, std::uint64_t length) {
    std::string r(16, '\0');
    std::memcpy(r.data(), &position, 8);
    std::memcpy(r.data() + 8, &length, 8);
    return r;
  };
  std::string next(12, '\0');
  const std::uint64_t len16 = 16;
  const std::uint32_t bulk = mproc::detail::kBulkFrame;
  std::memcpy(next.data(), &len16, 8);
  std::memcpy(next.data() + 8, &bulk, 4);
  write_seed(dir, "bulk_first", 4, 16, bulk, ref(0, 100));
  write_seed(dir, "bulk_next_lap", 4, 16, bulk, ref(0, 100) + next + ref(kRingBytes, 5000));
  write_seed(dir, "bulk_outside", 4, 16, bulk, ref(kRingBytes - 10, 100));
  write_seed(dir, "bulk_without_ring", 0, 16, bulk, ref(0, 100));
  // The same streams through a MessageReader (first byte + 8).
  write_seed(dir, "reader_two_messages", 8, 1, 0, "a" + second + "bc");
  write_seed(dir, "reader_with_fd", 9, 3, 1, "abc");
  write_seed(dir, "reader_bulk_next_lap", 12, 16, bulk, ref(0, 100) + next + ref(kRingBytes, 5000));
  write_seed(dir, "reader_borrowed_bulk", 28, 16, bulk, ref(0, 100) + next + ref(128, 300));
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
  // Measured at each call, not once: libFuzzer's own descriptors (the
  // corpus it was reading when the first input ran) come and go between
  // calls, and a baseline from the first call once failed a CI run with a
  // "leak" that no single input reproduces.
  const int baseline = lowest_free_fd();
  const int nfds = data[0] % 4;
  const bool with_ring = (data[0] & 4) != 0;
  const bool buffered = (data[0] & 8) != 0;
  const std::uint8_t* body = data + 1;
  const std::size_t n = std::min(size - 1, kMaxInput);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) bug("socketpair failed");
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) bug("open /dev/null failed");
  send_raw(sv[0], body, n, nfds, devnull);
  ::close(devnull);
  ::close(sv[0]);  // the peer is gone: the reader must see the end, not hang

  // Header, then the ring's bytes (a pattern), exactly as big as the ring:
  // ASan reports any read outside it.
  static std::vector<std::byte> ring_memory(mproc::detail::BulkRing::kHeaderBytes + kRingBytes, std::byte{0x5a});
  std::memset(ring_memory.data(), 0, mproc::detail::BulkRing::kHeaderBytes);
  mproc::detail::BulkRing ring(ring_memory.data(), kRingBytes);
  // The reader owns the descriptors it queued: it ends before the leak check.
  std::optional<mproc::detail::MessageReader> reader(std::in_place, sv[1]);
  for (int i = 0; i < 3; ++i) {
    try {
      mproc::detail::Message m;
      if (buffered) {
        // Bit 4: bodies from the ring are borrowed, not copied.
        reader->next(m, with_ring ? &ring : nullptr, kMaxBytes, (data[0] & 16) != 0);
        if (m.body().size() > kMaxBytes) bug("a borrowed body larger than max_bytes was accepted");
      } else if (with_ring) {
        mproc::detail::recv_message_into(sv[1], m, ring, kMaxBytes);
      } else {
        m = mproc::detail::recv_message(sv[1], kMaxBytes);
      }
      if (m.bytes.size() > kMaxBytes) bug("a message larger than max_bytes was accepted");
    } catch (const mproc::EOFError&) {
      break;
    } catch (const mproc::SerializationError&) {
      break;
    }
    // Any other exception propagates: libFuzzer reports it as a crash.
  }
  reader.reset();
  ::close(sv[1]);
  if (lowest_free_fd() != baseline) bug("a descriptor leaked");
  return 0;
}
