// connection.hpp: mproc::Connection<T>, one end of a message channel
// between processes (Python's multiprocessing.connection.Connection).
//
//   auto [parent_end, child_end] = mproc::Pipe<std::string>();
//   mproc::Process p([](mproc::Connection<std::string> c) { c.send("hello"); }, child_end);
//   p.start();
//   std::string s = parent_end.recv();   // "hello"
//
// A Connection carries whole messages of type T, each encoded with mproc's
// serialization (serialize.hpp), plus raw byte messages (send_bytes /
// recv_bytes) on the same stream: send_bytes followed by recv() on the peer
// decodes those bytes as one T, and recv_bytes() after a send() returns the
// message's encoded bytes. Connections come from Pipe<T>() (pipe.hpp) and
// from Listener<T>::accept() / Client<T>() (listener.hpp).
//
// Handles: a Connection is a copyable handle with shared-reference
// semantics. Passed to a Process or a pool task (any start method) the
// receiver gets a working end of the same channel (the socket travels as a
// descriptor). Values of T may themselves contain mproc handles on
// Unix-socket connections (a Pipe's, a Unix Listener's), not over TCP.
//
// End of stream: recv() throws mproc::EOFError once the peer's end is
// closed in every process that had it (close(), destruction, exit or death)
// and everything sent before has been read. A peer that dies in the middle
// of a message gives EOFError too.
//
// Garbage: bytes that do not decode as a T (send_bytes of random data, a
// peer using another type) make recv() throw mproc::SerializationError; the
// message is consumed and the connection stays usable. A stream that breaks
// the framing itself (a peer writing raw bytes into the socket, a message
// above the connection's size limit) cannot be resynchronised: that end is
// closed and SerializationError thrown.
//
// Large messages: the sender encodes the value once and streams those bytes
// into the socket; the receiver reads them straight into the buffer it
// decodes from, grown as the bytes arrive. A 1 GiB message therefore costs
// one encoded copy on each side, never two.
//
// Thread safety: as in Python, one thread at a time may receive on an end
// and one thread at a time may send on it.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "mproc/detail/scratch.hpp"
#include "mproc/detail/connection_core.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/wait_item.hpp"
#include "mproc/errors.hpp"
#include "mproc/serialize.hpp"

namespace mproc {

template <class T>
class Connection {
 public:
  // An empty handle: every operation but assignment throws mproc::Error.
  Connection() noexcept = default;
  explicit Connection(std::shared_ptr<detail::ConnectionCore> core) noexcept : core_(std::move(core)) {
    static_assert(detail::serializable_check<T>::ok);
  }

  // Sends one value. Blocks while the socket buffer is full (the peer is
  // not reading). Throws mproc::EOFError if the peer's end is closed,
  // mproc::Error if this end is closed or read-only, and whatever encoding
  // throws (nothing is sent then).
  void send(const T& value) {
    static_assert(detail::serializable_check<T>::ok);
    detail::Writer& w = detail::scratch_writer();
    mproc::encode(w, value);
    core().send(w.bytes(), w.fds());
    detail::release_scratch(w);
  }

  // Receives one value, blocking until a whole message has arrived.
  // mproc::EOFError when the peer has closed and nothing is left;
  // mproc::SerializationError when the message does not decode as a T (it
  // is consumed; the connection stays usable).
  T recv() {
    static_assert(detail::serializable_check<T>::ok);
    auto msg = core().recv();
    const std::vector<int> fds = msg.raw_fds();
    detail::Reader r(msg.bytes, fds);
    T out = mproc::decode<T>(r);
    if (!r.at_end()) {
      throw SerializationError("Connection::recv: " + std::to_string(r.remaining()) +
                               " bytes left over after the value: the message is not a T");
    }
    return out;
  }

  // Sends raw bytes as one message (the peer may recv_bytes() them, or
  // recv() them as an encoded T).
  void send_bytes(std::span<const std::byte> bytes) { core().send(bytes, {}); }

  // Receives one message as raw bytes (the encoded form, for a message
  // sent with send()). Descriptors that came with it are closed.
  std::vector<std::byte> recv_bytes() { return core().recv_bytes(); }

  // True when recv() would not block: a message is waiting, or the peer
  // has closed. poll() does not wait; poll(timeout) waits at most timeout.
  bool poll() { return core().poll(std::chrono::steady_clock::now()); }
  template <class Rep, class Period>
  bool poll(std::chrono::duration<Rep, Period> timeout) {
    return core().poll(detail::deadline_after(timeout));
  }

  // Closes this process's end, for every copy of this handle in this
  // process. The peer's recv() throws EOFError once no process holds this
  // end open. Further operations on it throw mproc::Error. Idempotent.
  void close() noexcept {
    if (core_) core_->close();
  }
  bool closed() const noexcept { return !core_ || core_->closed(); }
  bool readable() const noexcept { return core_ && core_->readable(); }
  bool writable() const noexcept { return core_ && core_->writable(); }
  // The socket's descriptor (for poll/select or mproc::wait).
  int fileno() const { return core().fileno(); }

  // Copies of one handle compare equal.
  friend bool operator==(const Connection& a, const Connection& b) noexcept { return a.core_ == b.core_; }

  // The handle-crossing pair (serialize.hpp).
  void mproc_encode(detail::Writer& w) const { core().encode(w); }
  static Connection mproc_decode(detail::Reader& r) { return Connection(detail::ConnectionCore::decode(r)); }
  // For mproc::wait.
  detail::WaitItem mproc_wait_item() const { return {fileno(), nullptr, core_.get()}; }

 private:
  detail::ConnectionCore& core() const {
    if (!core_) throw Error("Connection: empty handle");
    return *core_;
  }
  std::shared_ptr<detail::ConnectionCore> core_;
};

}  // namespace mproc
