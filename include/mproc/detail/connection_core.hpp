// detail/connection_core.hpp: the untyped half of mproc::Connection<T>.
//
// One ConnectionCore is one end of a stream socket as this process sees it:
// the descriptor, which directions it may be used in, whether descriptors
// (handles) may travel on it (Unix sockets: yes; TCP: no), and the largest
// message it accepts. Connection<T> handles that are copies of each other
// share one ConnectionCore, so close() on any copy closes the end for all
// of them in this process; other processes hold their own descriptor.
//
// Thread safety: like Python's Connection, one end is meant to be used by
// one thread at a time for receiving and one for sending.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <span>
#include <vector>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/scratch.hpp"
#include "mproc/detail/fd.hpp"
#include "mproc/detail/frame.hpp"
#include "mproc/detail/futex.hpp"

namespace mproc::detail {

class ConnectionCore {
 public:
  enum Flags : std::uint8_t { kReadable = 1, kWritable = 2, kCarriesFds = 4 };
  // No limit worth the name: the ends of a Pipe are both written by mproc.
  static constexpr std::size_t kUnlimited = std::size_t{1} << 48;

  ConnectionCore(UniqueFd fd, std::uint8_t flags, std::size_t max_message_size) noexcept
      : fd_(std::move(fd)), flags_(flags), max_(max_message_size) {}

  // Sends one message (its descriptors too, where allowed).
  void send(std::span<const std::byte> bytes, std::span<const int> fds);

  // One received message: the body (in this thread's scratch buffer for
  // small messages, valid until the next receive on this thread; in its own
  // buffer otherwise) and the descriptors that came with it.
  struct Received {
    std::span<const std::byte> bytes;
    std::vector<UniqueFd> fds;
    ByteBuffer own;
    std::vector<int> raw_fds() const;
  };
  // Receives one message. EOFError once the peer has closed and nothing is
  // left; on a frame that breaks the framing (bad magic, over the size
  // limit) this end is closed and SerializationError thrown.
  Received recv();
  std::vector<std::byte> recv_bytes();

  // True when recv would not block (a message, or the end of the stream).
  bool poll(Deadline deadline);

  void close() noexcept { fd_.reset(); }
  bool closed() const noexcept { return !fd_; }
  int fileno() const;
  bool readable() const noexcept { return flags_ & kReadable; }
  bool writable() const noexcept { return flags_ & kWritable; }
  std::size_t max_message_size() const noexcept { return max_; }

  // The handle-crossing pair (the descriptor travels, is duplicated on
  // arrival).
  void encode(Writer& w) const;
  static std::shared_ptr<ConnectionCore> decode(Reader& r);

 private:
  void check_open(const char* op) const;
  // Reads one frame head; closes this end if the stream is out of step.
  std::optional<FrameHead> head(const char* op);

  UniqueFd fd_;
  std::uint8_t flags_;
  std::size_t max_;
};

// A connected socketpair as two cores (Pipe's work). duplex=false: the
// first end only receives, the second only sends.
std::pair<std::shared_ptr<ConnectionCore>, std::shared_ptr<ConnectionCore>> make_pipe(bool duplex);

}  // namespace mproc::detail
