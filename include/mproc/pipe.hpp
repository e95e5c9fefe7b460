// pipe.hpp: mproc::Pipe<T>, a pair of connected Connections (Python's
// multiprocessing.Pipe).
//
//   auto [a, b] = mproc::Pipe<int>();        // duplex: both ends send and receive
//   a.send(42);  int v = b.recv();
//   auto [r, w] = mproc::Pipe<int>(false);   // one-way: r receives, w sends
//
// Both ends are Unix stream sockets (a socketpair), so values may contain
// mproc handles, which arrive as working handles. See connection.hpp for
// what send/recv/close do, and for end-of-stream and garbage handling.
//
// As with any pipe, the peer sees end of stream only when *every* process
// holding this end has closed it: a forked child inherits both ends, so
// close the end a process does not use (Python has the same rule).
#pragma once

#include <utility>

#include "mproc/connection.hpp"
#include "mproc/detail/connection_core.hpp"

namespace mproc {

// Returns two connected ends. duplex = true: both send and receive.
// duplex = false: the first receives only, the second sends only (misuse
// throws mproc::Error). Throws mproc::Error if the system is out of
// descriptors.
template <class T>
std::pair<Connection<T>, Connection<T>> Pipe(bool duplex = true) {
  static_assert(detail::serializable_check<T>::ok);
  auto [a, b] = detail::make_pipe(duplex);
  return {Connection<T>(std::move(a)), Connection<T>(std::move(b))};
}

}  // namespace mproc
