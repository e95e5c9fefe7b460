// detail/handshake.hpp: the mutual authentication of Listener and Client.
//
// Both sides know a secret authkey; each proves it to the other without
// sending it, by answering a fresh random challenge with an HMAC-SHA256
// (OpenSSL's libcrypto; RAND_bytes for the challenges, CRYPTO_memcmp for a
// constant-time comparison). Four frames, each at most
// kHandshakeMaxMessage bytes (detail/frame.hpp), all before any user data:
//
//   listener -> client   CHALLENGE  "mproc-auth-1" | nonce_L (32 random bytes)
//   client -> listener   RESPONSE   HMAC(key, "mproc-auth-1 client" | nonce_L | nonce_C) | nonce_C
//   listener -> client   WELCOME    HMAC(key, "mproc-auth-1 server" | nonce_L | nonce_C)
//                        or FAILURE (wrong key: the listener stops here)
//   client -> listener   ACCEPT     or FAILURE (the listener's proof was wrong)
//
// Both MACs cover both nonces and a label for their direction, so neither
// can be replayed or reflected from another session. Anything else (a
// malformed or oversized frame, a wrong type byte, the end of the stream,
// the deadline passing) ends the handshake with AuthenticationError; an
// unauthenticated peer can make the listener do nothing but this exchange.
#pragma once

#include <cstddef>
#include <span>

#include "mproc/detail/futex.hpp"

namespace mproc::detail {

inline constexpr std::size_t kHandshakeMaxMessage = 256;

// The listener's side. Throws AuthenticationError on any failure.
void server_handshake(int fd, std::span<const std::byte> key, Deadline deadline);
// The client's side. Throws AuthenticationError on any failure.
void client_handshake(int fd, std::span<const std::byte> key, Deadline deadline);

// False when mproc was built without OpenSSL (an authkey then throws).
bool have_crypto() noexcept;

}  // namespace mproc::detail
