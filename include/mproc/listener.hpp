// listener.hpp: mproc::Listener<T> and mproc::Client<T>, connections
// between processes that did not start each other (Python's
// multiprocessing.connection.Listener and Client).
//
//   // server
//   mproc::Listener<std::string> l("/tmp/app.sock", "secret key");   // or "127.0.0.1:6000"
//   mproc::Connection<std::string> c = l.accept();
//   std::string hello = c.recv();
//
//   // client, in any process on the machine (or the network, for TCP)
//   auto c = mproc::Client<std::string>("/tmp/app.sock", "secret key");
//   c.send("hello");
//
// Addresses: a Unix socket path (the file is created by the Listener and
// removed by close() or its destructor; a leading '\0' names Linux's
// abstract namespace) or "host:port" for TCP ("127.0.0.1:0" picks a free
// port: see address()).
//
// Authentication: with an authkey, both ends prove to each other that they
// know it (HMAC-SHA256 challenge-response with fresh random challenges, see
// detail/handshake.hpp) before any message is exchanged. A wrong key makes
// accept() and Client() both throw mproc::AuthenticationError. An
// unauthenticated peer can make the listener do nothing but the handshake:
// each handshake message is at most 256 bytes and the handshake must finish
// within ListenerOptions::handshake_timeout. A failed handshake closes that
// peer's socket and throws from accept(); the Listener stays usable, so a
// server loop catches AuthenticationError and accepts the next peer.
// Without an authkey anyone who can reach the address may connect.
//
// Bounded memory: connections made here accept messages of at most
// max_message_size bytes (default 64 MiB). A larger one, or a peer writing
// bytes that are not mproc frames, gets that connection closed and
// mproc::SerializationError thrown from its recv(); other connections and
// the Listener are unaffected.
//
// Handles in messages: over a Unix socket values may contain mproc handles
// (they travel as descriptors); over TCP they cannot (send throws).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mproc/connection.hpp"
#include "mproc/detail/listener_core.hpp"
#include "mproc/serialize.hpp"

namespace mproc {

struct ListenerOptions {
  int backlog = 128;                                         // listen(2) queue length
  std::chrono::milliseconds handshake_timeout{10000};        // per accepted peer
  std::size_t max_message_size = std::size_t{64} << 20;      // per message, both directions
};

struct ClientOptions {
  std::chrono::milliseconds handshake_timeout{10000};
  std::size_t max_message_size = std::size_t{64} << 20;
};

template <class T>
class Listener {
 public:
  // Listens at `address` and authenticates every peer with `authkey`.
  // Throws mproc::Error if the address cannot be bound (in use, a bad path).
  Listener(const std::string& address, std::string_view authkey, ListenerOptions options = {})
      : core_(std::make_unique<detail::ListenerCore>(address, std::string(authkey), endpoint(options))) {
    static_assert(detail::serializable_check<T>::ok);
  }
  // Listens without authentication.
  explicit Listener(const std::string& address, ListenerOptions options = {})
      : core_(std::make_unique<detail::ListenerCore>(address, std::nullopt, endpoint(options))) {
    static_assert(detail::serializable_check<T>::ok);
  }
  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&&) noexcept = default;

  // Waits for the next peer, authenticates it and returns the connection.
  // Throws mproc::AuthenticationError when that peer fails the handshake
  // (wrong key, garbage, too slow); the listener goes on working.
  Connection<T> accept() { return Connection<T>(core().accept()); }

  // Stops listening (removes the Unix socket file). Idempotent; also done
  // by the destructor. Connections already accepted stay open.
  void close() noexcept {
    if (core_) core_->close();
  }
  bool closed() const noexcept { return !core_ || core_->closed(); }
  // The address bound, e.g. "127.0.0.1:41234" for "127.0.0.1:0".
  std::string address() const { return core().address(); }
  // The address of the last peer accepted (empty for an unnamed Unix peer).
  std::optional<std::string> last_accepted() const { return core().last_accepted(); }
  // The listening socket (readable when a peer is waiting to be accepted).
  int fileno() const { return core().fileno(); }

 private:
  static detail::EndpointOptions endpoint(const ListenerOptions& o) {
    return {o.backlog, o.handshake_timeout, o.max_message_size};
  }
  detail::ListenerCore& core() const {
    if (!core_) throw Error("Listener: empty (moved-from)");
    return *core_;
  }
  std::unique_ptr<detail::ListenerCore> core_;
};

// Connects to a Listener at `address` and authenticates with `authkey`.
// Throws mproc::AuthenticationError on a wrong key (either side's),
// mproc::Error if nothing listens there.
template <class T>
Connection<T> Client(const std::string& address, std::string_view authkey, ClientOptions options = {}) {
  static_assert(detail::serializable_check<T>::ok);
  return Connection<T>(detail::client_connect(address, std::string(authkey),
                                              {0, options.handshake_timeout, options.max_message_size}));
}
// Connects without authentication (to a Listener made without an authkey).
template <class T>
Connection<T> Client(const std::string& address, ClientOptions options = {}) {
  static_assert(detail::serializable_check<T>::ok);
  return Connection<T>(
      detail::client_connect(address, std::nullopt, {0, options.handshake_timeout, options.max_message_size}));
}

}  // namespace mproc
