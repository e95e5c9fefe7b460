// handshake.cpp: the Listener/Client challenge-response (detail/handshake.hpp).

#include "mproc/detail/handshake.hpp"

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "mproc/detail/frame.hpp"
#include "mproc/errors.hpp"

#if defined(MPROC_HAVE_OPENSSL)
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#endif

namespace mproc::detail {

#if defined(MPROC_HAVE_OPENSSL)

namespace {

constexpr char kProtocol[] = "mproc-auth-1";
constexpr std::size_t kProtocolLen = sizeof kProtocol - 1;
constexpr std::size_t kNonce = 32;
constexpr std::size_t kMac = 32;

enum : unsigned char { kChallenge = 1, kResponse = 2, kWelcome = 3, kFailure = 4, kAccept = 5 };

using Nonce = std::array<unsigned char, kNonce>;
using Mac = std::array<unsigned char, kMac>;

Nonce random_nonce() {
  Nonce n;
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) {
    throw AuthenticationError("mproc: authentication: RAND_bytes failed");
  }
  return n;
}

Mac mac(std::span<const std::byte> key, const char* label, const Nonce& listener_nonce, const Nonce& client_nonce) {
  std::vector<unsigned char> data(label, label + std::strlen(label));
  data.insert(data.end(), listener_nonce.begin(), listener_nonce.end());
  data.insert(data.end(), client_nonce.begin(), client_nonce.end());
  static const unsigned char empty_key = 0;
  const void* k = key.empty() ? static_cast<const void*>(&empty_key) : key.data();
  Mac out;
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), k, static_cast<int>(key.size()), data.data(), data.size(), out.data(), &len) == nullptr ||
      len != out.size()) {
    throw AuthenticationError("mproc: authentication: HMAC-SHA256 failed");
  }
  return out;
}

bool same(const unsigned char* a, const unsigned char* b, std::size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

void send_msg(int fd, unsigned char type, std::span<const unsigned char> a = {},
              std::span<const unsigned char> b = {}) {
  std::vector<std::byte> m;
  m.push_back(static_cast<std::byte>(type));
  for (auto c : a) m.push_back(static_cast<std::byte>(c));
  for (auto c : b) m.push_back(static_cast<std::byte>(c));
  send_frame(fd, m);
}

// Tells the peer it failed, if it still listens; the error that follows is
// what matters.
void send_failure(int fd) noexcept {
  try {
    send_msg(fd, kFailure);
  } catch (...) {
  }
}

std::vector<unsigned char> recv_msg(int fd, Deadline deadline) {
  auto head = recv_frame_head(fd, kHandshakeMaxMessage, deadline);
  if (!head) throw EOFError("the peer closed the connection");
  if (!head->fds.empty()) throw AuthenticationError("descriptors sent during the handshake");
  std::vector<unsigned char> m(static_cast<std::size_t>(head->length));
  recv_exact(fd, reinterpret_cast<std::byte*>(m.data()), m.size(), deadline);
  if (m.empty()) throw AuthenticationError("an empty handshake message");
  return m;
}

// Runs one side; any failure becomes an AuthenticationError naming `who`.
template <class F>
void guarded(const char* who, F&& body) {
  try {
    body();
  } catch (const AuthenticationError& e) {
    throw AuthenticationError(std::string(who) + ": " + e.what());
  } catch (const TimeoutError&) {
    throw AuthenticationError(std::string(who) + ": the authentication handshake timed out");
  } catch (const std::exception& e) {
    throw AuthenticationError(std::string(who) + ": the authentication handshake failed: " + e.what());
  }
}

}  // namespace

bool have_crypto() noexcept { return true; }

void server_handshake(int fd, std::span<const std::byte> key, Deadline deadline) {
  guarded("Listener::accept", [&] {
    const Nonce ln = random_nonce();
    send_msg(fd, kChallenge, std::span(reinterpret_cast<const unsigned char*>(kProtocol), kProtocolLen), ln);

    const auto resp = recv_msg(fd, deadline);
    if (resp[0] != kResponse || resp.size() != 1 + kMac + kNonce) {
      send_failure(fd);
      throw AuthenticationError("the peer does not speak mproc's handshake");
    }
    Nonce cn;
    std::memcpy(cn.data(), resp.data() + 1 + kMac, kNonce);
    const Mac expect = mac(key, "mproc-auth-1 client", ln, cn);
    if (!same(expect.data(), resp.data() + 1, kMac)) {
      send_failure(fd);
      throw AuthenticationError("the client does not know the authkey (digest mismatch)");
    }
    send_msg(fd, kWelcome, mac(key, "mproc-auth-1 server", ln, cn));

    const auto verdict = recv_msg(fd, deadline);
    if (verdict.size() == 1 && verdict[0] == kAccept) return;
    if (verdict.size() == 1 && verdict[0] == kFailure) {
      throw AuthenticationError("the client rejected this listener's proof of the authkey (digest mismatch)");
    }
    throw AuthenticationError("the peer does not speak mproc's handshake");
  });
}

void client_handshake(int fd, std::span<const std::byte> key, Deadline deadline) {
  guarded("mproc::Client", [&] {
    const auto challenge = recv_msg(fd, deadline);
    if (challenge[0] != kChallenge || challenge.size() != 1 + kProtocolLen + kNonce ||
        std::memcmp(challenge.data() + 1, kProtocol, kProtocolLen) != 0) {
      throw AuthenticationError("the listener does not speak mproc's handshake");
    }
    Nonce ln;
    std::memcpy(ln.data(), challenge.data() + 1 + kProtocolLen, kNonce);
    const Nonce cn = random_nonce();
    send_msg(fd, kResponse, mac(key, "mproc-auth-1 client", ln, cn), cn);

    const auto answer = recv_msg(fd, deadline);
    if (answer.size() == 1 && answer[0] == kFailure) {
      throw AuthenticationError("the listener rejected the authkey (digest mismatch)");
    }
    if (answer[0] != kWelcome || answer.size() != 1 + kMac) {
      throw AuthenticationError("the listener does not speak mproc's handshake");
    }
    const Mac expect = mac(key, "mproc-auth-1 server", ln, cn);
    if (!same(expect.data(), answer.data() + 1, kMac)) {
      send_failure(fd);
      throw AuthenticationError("the listener does not know the authkey (digest mismatch)");
    }
    send_msg(fd, kAccept);
  });
}

#else  // !MPROC_HAVE_OPENSSL

bool have_crypto() noexcept { return false; }

void server_handshake(int, std::span<const std::byte>, Deadline) {
  throw AuthenticationError("Listener::accept: mproc was built without OpenSSL; an authkey cannot be used");
}
void client_handshake(int, std::span<const std::byte>, Deadline) {
  throw AuthenticationError("mproc::Client: mproc was built without OpenSSL; an authkey cannot be used");
}

#endif

}  // namespace mproc::detail
