// wait.hpp: mproc::wait, block until one of several objects is ready
// (Python's multiprocessing.connection.wait).
//
//   std::vector<mproc::Connection<int>> conns = ...;
//   for (auto& c : mproc::wait(conns, std::chrono::seconds(1))) handle(c.recv());
//
//   // Any mix: connections, queues, process sentinels.
//   auto ready = mproc::wait({mproc::Waitable(conn), mproc::Waitable(queue),
//                             mproc::Waitable(process.sentinel())});
//   if (std::ranges::count(ready, mproc::Waitable(queue))) ...
//
// Ready means:
//  - a Connection: recv() would not block (a message, or end of stream);
//  - a Queue / SimpleQueue / JoinableQueue: it is not empty (another
//    consumer may still take the item first, as with any poll);
//  - an int: the descriptor is readable or hung up (Process::sentinel()
//    becomes readable when the process ends).
//
// wait(objects) blocks until at least one is ready; wait(objects, timeout)
// returns an empty vector when none became ready in time. The result holds
// the ready objects, in the order given. Objects of one type come back as
// that type; a mix goes through mproc::Waitable, a small type-erased
// reference that any of them converts to and that compares equal to another
// Waitable made from the same object.
#pragma once

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "mproc/detail/futex.hpp"
#include "mproc/detail/wait_item.hpp"

namespace mproc {

namespace detail {

// Types mproc::wait accepts besides int: they tell what to poll.
template <class W>
concept has_wait_item = requires(const W& w) {
  { w.mproc_wait_item() } -> std::same_as<WaitItem>;
};

// The indices (ascending) of the ready items; empty at the deadline.
std::vector<std::size_t> wait_ready(std::span<const WaitItem> items, Deadline deadline);

}  // namespace detail

// A reference to anything mproc::wait accepts. It keeps the object's shared
// state alive (the queue's mapping, the connection's socket), so a vector
// of Waitables is safe to hold. Two Waitables compare equal when they refer
// to the same object (for ints: the same descriptor).
class Waitable {
 public:
  // A descriptor, e.g. Process::sentinel().
  Waitable(int fd) noexcept : item_{fd, nullptr, nullptr} {}  // NOLINT: implicit on purpose
  // A Connection, Queue, SimpleQueue or JoinableQueue (a copy of the
  // handle is kept).
  template <class H>
    requires detail::has_wait_item<H>
  Waitable(const H& handle)  // NOLINT: implicit on purpose
      : item_(handle.mproc_wait_item()), keep_(std::make_shared<H>(handle)) {}

  int fileno() const noexcept { return item_.fd; }
  const detail::WaitItem& wait_item() const noexcept { return item_; }
  friend bool operator==(const Waitable& a, const Waitable& b) noexcept {
    return a.item_.identity || b.item_.identity ? a.item_.identity == b.item_.identity
                                                : a.item_.fd == b.item_.fd;
  }

 private:
  detail::WaitItem item_;
  std::shared_ptr<const void> keep_;
};

namespace detail {
inline WaitItem to_wait_item(int fd) noexcept { return {fd, nullptr, nullptr}; }
inline WaitItem to_wait_item(const Waitable& w) noexcept { return w.wait_item(); }
template <class H>
  requires has_wait_item<H>
WaitItem to_wait_item(const H& h) {
  return h.mproc_wait_item();
}

template <class W>
std::vector<W> wait_impl(const std::vector<W>& objects, Deadline deadline) {
  std::vector<WaitItem> items;
  items.reserve(objects.size());
  for (const auto& o : objects) items.push_back(to_wait_item(o));
  std::vector<W> out;
  for (std::size_t i : wait_ready(items, deadline)) out.push_back(objects[i]);
  return out;
}
}  // namespace detail

// Waits until at least one of `objects` is ready; returns the ready ones.
// W: int, Connection<T>, Queue<T>, SimpleQueue<T>, JoinableQueue<T>, or
// Waitable for a mix. Throws mproc::Error for a closed connection.
template <class W>
std::vector<W> wait(const std::vector<W>& objects) {
  return detail::wait_impl(objects, std::nullopt);
}
// Waits at most `timeout`; an empty result means none became ready.
template <class W, class Rep, class Period>
std::vector<W> wait(const std::vector<W>& objects, std::chrono::duration<Rep, Period> timeout) {
  return detail::wait_impl(objects, detail::deadline_after(timeout));
}
// A braced mix: mproc::wait({Waitable(conn), Waitable(queue), sentinel}).
inline std::vector<Waitable> wait(std::initializer_list<Waitable> objects) {
  return detail::wait_impl(std::vector<Waitable>(objects), std::nullopt);
}
template <class Rep, class Period>
std::vector<Waitable> wait(std::initializer_list<Waitable> objects, std::chrono::duration<Rep, Period> timeout) {
  return detail::wait_impl(std::vector<Waitable>(objects), detail::deadline_after(timeout));
}

}  // namespace mproc
