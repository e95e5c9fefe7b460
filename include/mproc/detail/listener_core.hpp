// detail/listener_core.hpp: the untyped half of Listener<T> and Client<T>:
// addresses, sockets, and the authentication handshake around them.
//
// An address is a Unix socket path ("/tmp/app.sock", "./s", or a leading
// '\0' for Linux's abstract namespace) or "host:port" for TCP
// ("127.0.0.1:6000", "localhost:0" for any free port, "[::1]:6000").
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "mproc/detail/connection_core.hpp"
#include "mproc/detail/fd.hpp"

namespace mproc::detail {

struct ParsedAddress {
  bool tcp = false;
  std::string host;  // TCP
  std::string port;  // TCP
  std::string path;  // Unix (may start with '\0': abstract)
};
// Throws mproc::Error for an empty address or a Unix path that is too long.
ParsedAddress parse_address(const std::string& address);

struct EndpointOptions {
  int backlog = 128;
  std::chrono::milliseconds handshake_timeout{10000};
  std::size_t max_message_size = std::size_t{64} << 20;
};

class ListenerCore {
 public:
  // Binds and listens. authkey nullopt: no authentication.
  ListenerCore(const std::string& address, std::optional<std::string> authkey, EndpointOptions options);
  ~ListenerCore();
  ListenerCore(const ListenerCore&) = delete;
  ListenerCore& operator=(const ListenerCore&) = delete;

  // Waits for a peer and authenticates it. AuthenticationError if the
  // handshake fails (that peer's socket is closed; the listener goes on).
  std::shared_ptr<ConnectionCore> accept();
  // Stops listening; removes a Unix socket file this listener created.
  void close() noexcept;
  bool closed() const noexcept { return !fd_; }
  // The bound address, with the real port for "host:0".
  const std::string& address() const noexcept { return address_; }
  int fileno() const;
  const std::optional<std::string>& last_accepted() const noexcept { return last_accepted_; }

 private:
  UniqueFd fd_;
  bool tcp_ = false;
  std::string address_;
  std::string unlink_path_;
  std::optional<std::string> key_;
  EndpointOptions options_;
  std::optional<std::string> last_accepted_;
};

// Connects and authenticates. AuthenticationError if the handshake fails,
// mproc::Error if nothing listens there.
std::shared_ptr<ConnectionCore> client_connect(const std::string& address, const std::optional<std::string>& authkey,
                                               EndpointOptions options);

}  // namespace mproc::detail
