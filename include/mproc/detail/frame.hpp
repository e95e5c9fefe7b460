// detail/frame.hpp: how a Connection cuts its byte stream into messages.
//
// Every message on a Connection (a Pipe's socketpair, a Listener/Client
// socket) is one frame: a 16-byte header, then the body.
//
//   u32 magic "mPrC" | u32 descriptor count | u64 body length | body
//
// Descriptors (for mproc handles inside the message) ride on the header's
// first byte as SCM_RIGHTS, Unix sockets only. The magic lets a receiver
// tell a stream that went out of step (a peer writing raw bytes) from a
// message, and the length is never trusted: the receiver checks it against
// its connection's limit and grows its buffer only as the bytes really
// arrive, so a forged header costs it nothing. Sender and receiver touch the
// body exactly once each (writev from the encoded bytes; recv straight into
// the buffer that is then decoded).
//
// Waits take a Deadline (detail/futex.hpp): nullopt blocks in the system
// call itself (the fast path); a deadline polls first and throws
// TimeoutError when it passes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "mproc/detail/scratch.hpp"
#include "mproc/detail/fd.hpp"
#include "mproc/detail/futex.hpp"

namespace mproc::detail {

inline constexpr std::uint32_t kFrameMagic = 0x4372506du;  // "mPrC" little-endian
inline constexpr std::size_t kFrameMaxFds = kFdsPerSendmsg;  // per recvmsg (send_fds_ahead)

struct FrameHeader {
  std::uint32_t magic;
  std::uint32_t nfds;
  std::uint64_t length;
};
static_assert(sizeof(FrameHeader) == 16);

// Sends one frame. Descriptors require a Unix socket. Throws EOFError when
// the peer is gone (no SIGPIPE), mproc::Error on other failures.
void send_frame(int fd, std::span<const std::byte> body, std::span<const int> fds = {});

struct FrameHead {
  std::uint64_t length = 0;
  std::vector<UniqueFd> fds;
};

// Reads one frame header and the descriptors that came with it. Returns
// nullopt on a clean end of stream before the first byte. Throws EOFError
// when the stream ends inside the header, SerializationError on a bad magic,
// a length above `max_bytes`, more descriptors than announced or allowed,
// TimeoutError at `deadline`.
std::optional<FrameHead> recv_frame_head(int fd, std::size_t max_bytes, Deadline deadline = std::nullopt);

// Reads exactly `n` bytes. EOFError if the stream ends first, TimeoutError
// at `deadline`.
void recv_exact(int fd, std::byte* out, std::size_t n, Deadline deadline = std::nullopt);

// Reads a body of `length` bytes into `out`, growing it only as bytes
// arrive (a forged length allocates nothing it does not receive).
void recv_body(int fd, std::uint64_t length, ByteBuffer& out, Deadline deadline = std::nullopt);
void recv_body(int fd, std::uint64_t length, std::vector<std::byte>& out, Deadline deadline = std::nullopt);

// Waits until `fd` is readable or hung up; false when `deadline` passes
// first (nullopt: no limit). Retries EINTR with the time that is left.
bool poll_readable(int fd, Deadline deadline);

}  // namespace mproc::detail
