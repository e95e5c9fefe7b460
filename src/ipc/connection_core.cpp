// connection_core.cpp: one end of a Connection (detail/connection_core.hpp).

#include "mproc/detail/connection_core.hpp"

#include <sys/socket.h>

#include <string>

#include "mproc/detail/frame.hpp"
#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

// Messages up to this size are received into the thread's scratch buffer.
constexpr std::size_t kSmallMessage = std::size_t{1} << 20;

// The send buffer asked for on each end of a Pipe (the kernel doubles it
// for its bookkeeping).
constexpr std::size_t kPipeSendBuffer = std::size_t{1} << 20;

}  // namespace

std::vector<int> ConnectionCore::Received::raw_fds() const {
  std::vector<int> out;
  out.reserve(fds.size());
  for (const auto& f : fds) out.push_back(f.get());
  return out;
}

int ConnectionCore::fileno() const {
  check_open("Connection::fileno");
  return fd_.get();
}

void ConnectionCore::check_open(const char* op) const {
  if (!fd_) throw Error(std::string(op) + ": the connection is closed");
}

void ConnectionCore::send(std::span<const std::byte> bytes, std::span<const int> fds) {
  check_open("Connection::send");
  if (!writable()) throw Error("Connection::send: this end of the pipe is read-only");
  if (!fds.empty() && !(flags_ & kCarriesFds)) {
    throw Error("Connection::send: mproc handles (descriptors) cannot travel over a TCP connection");
  }
  if (bytes.size() > max_) {
    throw Error("Connection::send: a message of " + std::to_string(bytes.size()) +
                " bytes exceeds this connection's limit of " + std::to_string(max_));
  }
  send_frame(fd_.get(), bytes, fds);
}

std::optional<FrameHead> ConnectionCore::head(const char* op) {
  check_open(op);
  if (!readable()) throw Error(std::string(op) + ": this end of the pipe is write-only");
  try {
    return recv_frame_head(fd_.get(), max_);
  } catch (const SerializationError&) {
    // The stream is out of step (or a message is over the limit): nothing
    // after this point can be trusted to be a message boundary.
    close();
    throw;
  }
}

ConnectionCore::Received ConnectionCore::recv() {
  auto h = head("Connection::recv");
  if (!h) throw EOFError("Connection::recv: the peer closed the connection");
  Received out;
  out.fds = std::move(h->fds);
  if (h->length <= kSmallMessage) {
    ByteBuffer& b = scratch_buffer();
    b.resize(static_cast<std::size_t>(h->length));
    recv_exact(fd_.get(), b.data(), b.size());
    out.bytes = b.bytes();
  } else {
    recv_body(fd_.get(), h->length, out.own);
    out.bytes = out.own.bytes();
  }
  return out;
}

std::vector<std::byte> ConnectionCore::recv_bytes() {
  auto h = head("Connection::recv_bytes");
  if (!h) throw EOFError("Connection::recv_bytes: the peer closed the connection");
  std::vector<std::byte> out;
  recv_body(fd_.get(), h->length, out);
  return out;  // descriptors that came along are closed with h
}

bool ConnectionCore::poll(Deadline deadline) {
  check_open("Connection::poll");
  if (!readable()) throw Error("Connection::poll: this end of the pipe is write-only");
  return poll_readable(fd_.get(), deadline);
}

void ConnectionCore::encode(Writer& w) const {
  check_open("Connection (sending the handle)");
  w.write_fd(fd_.get());
  w.write_pod(flags_);
  w.write_pod(static_cast<std::uint64_t>(max_));
}

std::shared_ptr<ConnectionCore> ConnectionCore::decode(Reader& r) {
  const int fd = r.read_fd();
  const auto flags = r.read_pod<std::uint8_t>();
  const auto max = r.read_pod<std::uint64_t>();
  if (flags & ~(kReadable | kWritable | kCarriesFds)) {
    throw SerializationError("mproc: malformed Connection handle (bad flags)");
  }
  return std::make_shared<ConnectionCore>(dup_cloexec(fd), flags, static_cast<std::size_t>(max));
}

std::pair<std::shared_ptr<ConnectionCore>, std::shared_ptr<ConnectionCore>> make_pipe(bool duplex) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("mproc::Pipe: socketpair");
  UniqueFd a(sv[0]), b(sv[1]);
  // A Pipe often carries messages of a megabyte or more. With the default
  // send buffer (208 KiB) such a message crosses in many small pieces, and
  // the sender stalls whenever the receiver is busy between two reads (for
  // example allocating the next message's buffer). A larger limit lets the
  // sender go on copying meanwhile. It reserves nothing: the kernel uses
  // memory only for bytes in flight. Best effort: net.core.wmem_max caps it,
  // and a failure leaves the default.
  for (int fd : {a.get(), b.get()}) {
    const int bytes = static_cast<int>(kPipeSendBuffer);
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  }
  std::uint8_t fa = ConnectionCore::kReadable | ConnectionCore::kWritable | ConnectionCore::kCarriesFds;
  std::uint8_t fb = fa;
  if (!duplex) {
    // Python's Pipe(False): the first end receives, the second sends. A
    // socketpair (not a pipe) keeps descriptor passing; shutting the unused
    // directions makes misuse fail at the kernel too.
    ::shutdown(a.get(), SHUT_WR);
    ::shutdown(b.get(), SHUT_RD);
    fa = ConnectionCore::kReadable | ConnectionCore::kCarriesFds;
    fb = ConnectionCore::kWritable | ConnectionCore::kCarriesFds;
  }
  return {std::make_shared<ConnectionCore>(std::move(a), fa, ConnectionCore::kUnlimited),
          std::make_shared<ConnectionCore>(std::move(b), fb, ConnectionCore::kUnlimited)};
}

}  // namespace mproc::detail
