// listener_core.cpp: Unix and TCP endpoints with authentication
// (detail/listener_core.hpp, detail/handshake.hpp).

#include "mproc/detail/listener_core.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <span>

#include "mproc/detail/handshake.hpp"
#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

std::span<const std::byte> key_bytes(const std::string& key) {
  return std::as_bytes(std::span(key.data(), key.size()));
}

sockaddr_un unix_address(const std::string& path, socklen_t& len) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  // An abstract name's length is exactly its bytes; a path is terminated.
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '\0' ? 0 : 1));
  return sa;
}

std::string describe(const sockaddr_storage& ss, socklen_t len) {
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    // Built piecewise: g++ 12 warns falsely (-Wrestrict) on "[" + std::string.
    std::string out(1, '[');
    out += host;
    out += "]:";
    out += std::to_string(ntohs(a->sin6_port));
    return out;
  }
  if (ss.ss_family == AF_UNIX) {
    const auto* a = reinterpret_cast<const sockaddr_un*>(&ss);
    const std::size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    return std::string(a->sun_path, strnlen(a->sun_path, n));
  }
  return "?";
}

struct AddrInfo {
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list) ::freeaddrinfo(list);
  }
};

void resolve(const ParsedAddress& a, bool passive, AddrInfo& out, const char* who) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  const int rc = ::getaddrinfo(a.host.empty() ? nullptr : a.host.c_str(), a.port.c_str(), &hints, &out.list);
  if (rc != 0) throw Error(std::string(who) + ": cannot resolve '" + a.host + "': " + ::gai_strerror(rc));
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

ParsedAddress parse_address(const std::string& address) {
  if (address.empty()) throw Error("mproc: an empty address");
  ParsedAddress out;
  const bool path_like = address[0] == '/' || address[0] == '.' || address[0] == '\0' ||
                         address.find('/') != std::string::npos;
  const auto colon = address.rfind(':');
  if (!path_like && colon != std::string::npos && colon + 1 < address.size() &&
      address.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    out.tcp = true;
    out.host = address.substr(0, colon);
    out.port = address.substr(colon + 1);
    if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
      out.host = out.host.substr(1, out.host.size() - 2);
    }
    return out;
  }
  if (address.size() >= sizeof(sockaddr_un::sun_path)) {
    throw Error("mproc: the Unix socket path '" + address + "' is too long (at most " +
                std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)");
  }
  out.path = address;
  return out;
}

ListenerCore::ListenerCore(const std::string& address, std::optional<std::string> authkey, EndpointOptions options)
    : key_(std::move(authkey)), options_(options) {
  if (key_ && !have_crypto()) {
    throw Error("mproc::Listener: mproc was built without OpenSSL; an authkey cannot be used");
  }
  const ParsedAddress a = parse_address(address);
  tcp_ = a.tcp;
  if (a.tcp) {
    AddrInfo ai;
    resolve(a, true, ai, "mproc::Listener");
    int err = 0;
    for (addrinfo* p = ai.list; p != nullptr; p = p->ai_next) {
      UniqueFd s(::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol));
      if (!s) {
        err = errno;
        continue;
      }
      const int one = 1;
      ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(s.get(), p->ai_addr, p->ai_addrlen) != 0) {
        err = errno;
        continue;
      }
      fd_ = std::move(s);
      break;
    }
    if (!fd_) throw_errno("mproc::Listener: cannot bind to " + address, err);
  } else {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw_errno("mproc::Listener: socket");
    socklen_t len = 0;
    sockaddr_un sa = unix_address(a.path, len);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0) {
      throw_errno("mproc::Listener: cannot bind to " + address);
    }
    fd_ = std::move(s);
    if (a.path[0] != '\0') unlink_path_ = a.path;
  }
  if (::listen(fd_.get(), options_.backlog) != 0) throw_errno("mproc::Listener: listen on " + address);
  if (a.tcp) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      throw_errno("mproc::Listener: getsockname");
    }
    address_ = describe(ss, len);
  } else {
    address_ = a.path;
  }
}

ListenerCore::~ListenerCore() { close(); }

void ListenerCore::close() noexcept {
  if (!fd_) return;
  fd_.reset();
  if (!unlink_path_.empty()) {
    ::unlink(unlink_path_.c_str());
    unlink_path_.clear();
  }
}

int ListenerCore::fileno() const {
  if (!fd_) throw Error("Listener::fileno: the listener is closed");
  return fd_.get();
}

std::shared_ptr<ConnectionCore> ListenerCore::accept() {
  if (!fd_) throw Error("Listener::accept: the listener is closed");
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int c = -1;
  for (;;) {
    len = sizeof ss;
    c = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (c >= 0) break;
    // A peer that gave up before we took it is not our error.
    if (errno == EINTR || errno == ECONNABORTED) continue;
    throw_errno("Listener::accept");
  }
  UniqueFd conn(c);
  if (tcp_) set_nodelay(conn.get());
  last_accepted_ = describe(ss, len);
  if (key_) {
    const auto deadline = std::chrono::steady_clock::now() + options_.handshake_timeout;
    server_handshake(conn.get(), key_bytes(*key_), deadline);
  }
  const std::uint8_t flags = ConnectionCore::kReadable | ConnectionCore::kWritable |
                             (tcp_ ? 0 : ConnectionCore::kCarriesFds);
  return std::make_shared<ConnectionCore>(std::move(conn), flags, options_.max_message_size);
}

std::shared_ptr<ConnectionCore> client_connect(const std::string& address, const std::optional<std::string>& authkey,
                                               EndpointOptions options) {
  if (authkey && !have_crypto()) {
    throw Error("mproc::Client: mproc was built without OpenSSL; an authkey cannot be used");
  }
  const ParsedAddress a = parse_address(address);
  UniqueFd s;
  if (a.tcp) {
    AddrInfo ai;
    resolve(a, false, ai, "mproc::Client");
    int err = 0;
    for (addrinfo* p = ai.list; p != nullptr; p = p->ai_next) {
      UniqueFd t(::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol));
      if (!t) {
        err = errno;
        continue;
      }
      if (::connect(t.get(), p->ai_addr, p->ai_addrlen) != 0) {
        err = errno;
        continue;
      }
      s = std::move(t);
      break;
    }
    if (!s) throw_errno("mproc::Client: cannot connect to " + address, err);
    set_nodelay(s.get());
  } else {
    s = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw_errno("mproc::Client: socket");
    socklen_t len = 0;
    sockaddr_un sa = unix_address(a.path, len);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0) {
      throw_errno("mproc::Client: cannot connect to " + address);
    }
  }
  if (authkey) {
    const auto deadline = std::chrono::steady_clock::now() + options.handshake_timeout;
    client_handshake(s.get(), key_bytes(*authkey), deadline);
  }
  const std::uint8_t flags = ConnectionCore::kReadable | ConnectionCore::kWritable |
                             (a.tcp ? 0 : ConnectionCore::kCarriesFds);
  return std::make_shared<ConnectionCore>(std::move(s), flags, options.max_message_size);
}

}  // namespace mproc::detail
