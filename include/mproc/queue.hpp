// queue.hpp: mproc::Queue<T>, a FIFO shared by any number of producer and
// consumer processes (Python's multiprocessing.Queue).
//
//   void worker(mproc::Queue<std::string> q) { q.put("Data"); }
//
//   mproc::Queue<std::string> q;          // unbounded; Queue<T> q(maxsize) is bounded
//   mproc::Process p(worker, q);
//   p.start();
//   std::string s = q.get();              // "Data"
//   p.join();
//
// Values travel through shared memory, not through a pipe and a feeder
// thread as in Python: put() encodes the value and copies it into the
// queue's memory before it returns, get() copies it out (large items are
// decoded straight from shared memory). Sleeping getters and putters are
// woken through futexes, and only when someone sleeps; a getter spins for a
// few microseconds before it sleeps, so a stream of items flows without
// system calls. See docs/design/queue.md.
//
// Handles: copyable, with shared-reference semantics; passed to a Process
// or a pool task under any start method, the receiver's handle is the same
// queue. T may be any serializable type (serialize.hpp) except one holding
// mproc handles (descriptors cannot be stored in shared memory; put()
// throws mproc::Error): pass handles as Process arguments or over a Pipe.
//
// Guarantees: any number of producers and consumers in any processes;
// every item put is got exactly once, in put order for any one producer
// thread. A consumer killed between two gets loses nothing. A producer
// killed in the middle of a put leaves no trace: the item appears only when
// complete, so a half-written item is discarded (its memory is reclaimed
// once the dying process is gone). A consumer killed in the middle of
// taking a large item (> 8 KiB encoded) loses that one item; the others are
// unaffected. No death leaves the queue locked or corrupted.
//
// Size: an unbounded queue never blocks put() and reserves nothing up
// front; memory grows with what is queued (a 256 MiB item takes a 256 MiB
// block, given back once it is got).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "mproc/detail/scratch.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/queue_core.hpp"
#include "mproc/detail/wait_item.hpp"
#include "mproc/errors.hpp"
#include "mproc/serialize.hpp"

namespace mproc {

namespace detail {

// "2s", "150ms", "0.5ms": for timeout messages.
template <class Rep, class Period>
std::string timeout_text(std::chrono::duration<Rep, Period> d) {
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  std::string s;
  if (ms >= 1000.0) {
    s = std::to_string(ms / 1000.0);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s + "s";
  }
  s = std::to_string(ms);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s + "ms";
}

// Encodes `value` and puts it; false when a bounded queue stayed full.
template <class T>
bool queue_put(QueueCore& core, const T& value, WaitLimit limit, bool block, const char* who) {
  if (core.closed()) throw Error(std::string(who) + ": the queue is closed (this handle puts no more)");
  Writer& w = scratch_writer();
  mproc::encode(w, value);
  if (!w.fds().empty()) {
    throw Error(std::string(who) +
                ": values holding mproc handles cannot go through a queue (descriptors cannot live in "
                "shared memory); pass the handle as a Process argument or send it over a Pipe");
  }
  const bool ok = core.put(w.bytes(), limit, block);
  release_scratch(w);
  return ok;
}

// Takes and decodes one item; throws Empty, with the message that
// `empty_message()` returns, when none came. (The message is only built
// then: formatting it costs more than taking an item.)
template <class T, class Message>
T queue_get(QueueCore& core, WaitLimit limit, bool block, Message&& empty_message) {
  QueueCore::Item item;
  if (!core.get(item, limit, block)) throw Empty(std::string(empty_message()));
  Reader r(item.bytes());
  T out = mproc::decode<T>(r);
  if (!r.at_end()) {
    throw SerializationError("Queue::get: " + std::to_string(r.remaining()) +
                             " bytes left over after the value: the item is not a T");
  }
  return out;
}

// Reaches a queue handle's core, for tests and diagnostics (in_flight,
// heap_bytes). Not part of the public API.
struct QueueAccess {
  template <class Q>
  static QueueCore& core(const Q& q) {
    return q.core();
  }
};

}  // namespace detail

template <class T>
class Queue {
 public:
  // A new, unbounded queue.
  Queue() : Queue(0) {}
  // A new queue holding at most `maxsize` items (maxsize <= 0: unbounded).
  explicit Queue(std::int64_t maxsize) : core_(detail::QueueCore::create(maxsize, false)) {
    static_assert(detail::serializable_check<T>::ok);
  }

  // Puts one value, blocking while a bounded queue is full. Throws
  // mproc::Error after close() on this handle.
  void put(const T& value) {
    static_assert(detail::serializable_check<T>::ok);
    detail::queue_put(core(), value, std::nullopt, true, "Queue::put");
  }
  // Waits at most `timeout` for room; mproc::Full if none came.
  template <class Rep, class Period>
  void put(const T& value, std::chrono::duration<Rep, Period> timeout) {
    static_assert(detail::serializable_check<T>::ok);
    if (!detail::queue_put(core(), value, detail::WaitLimit::after(timeout), true, "Queue::put")) {
      throw Full("Queue::put: the queue stayed full (maxsize " + std::to_string(maxsize()) + ") for " +
                 detail::timeout_text(timeout));
    }
  }
  // Puts without waiting; mproc::Full if a bounded queue is full.
  void put_nowait(const T& value) {
    static_assert(detail::serializable_check<T>::ok);
    if (!detail::queue_put(core(), value, std::nullopt, false, "Queue::put_nowait")) {
      throw Full("Queue::put_nowait: the queue is full (maxsize " + std::to_string(maxsize()) + ")");
    }
  }

  // Takes the oldest item, blocking while the queue is empty (for ever:
  // use get(timeout) when the producers may die). Throws
  // mproc::SerializationError if the item does not decode as a T (it is
  // consumed).
  T get() {
    static_assert(detail::serializable_check<T>::ok);
    return detail::queue_get<T>(core(), std::nullopt, true, [] { return "Queue::get: empty"; });
  }
  // Waits at most `timeout`; mproc::Empty if nothing came.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    static_assert(detail::serializable_check<T>::ok);
    return detail::queue_get<T>(core(), detail::WaitLimit::after(timeout), true, [&] {
      return "Queue::get: nothing arrived within " + detail::timeout_text(timeout);
    });
  }
  // Takes an item without waiting; mproc::Empty if there is none.
  T get_nowait() {
    static_assert(detail::serializable_check<T>::ok);
    return detail::queue_get<T>(core(), std::nullopt, false, [] { return "Queue::get_nowait: the queue is empty"; });
  }

  // Items in the queue now (a snapshot: others may change it at once).
  std::size_t qsize() const { return core().qsize(); }
  bool empty() const { return qsize() == 0; }
  bool full() const {
    const auto m = core().maxsize();
    return m > 0 && qsize() >= static_cast<std::size_t>(m);
  }
  // The bound given at construction; 0 for an unbounded queue.
  std::int64_t maxsize() const { return core().maxsize(); }

  // This handle (and its copies in this process) puts no more: a later
  // put throws mproc::Error. Everything else is unaffected: items already
  // put stay, get() on this or any handle goes on working, other handles
  // (other processes') may still put, and a getter blocked anywhere keeps
  // waiting for their items (or its timeout). Idempotent.
  void close() noexcept {
    if (core_) core_->close();
  }
  bool closed() const noexcept { return core_ && core_->closed(); }

  // Copies of one handle, and handles received from another process for
  // the same queue, compare equal when they share the process's mapping
  // (copies do; a handle decoded separately does not).
  friend bool operator==(const Queue& a, const Queue& b) noexcept { return a.core_ == b.core_; }

  // The handle-crossing pair (serialize.hpp).
  void mproc_encode(detail::Writer& w) const { core().encode(w); }
  static Queue mproc_decode(detail::Reader& r) { return Queue(decode_core(r, false)); }
  // For mproc::wait: ready when not empty.
  detail::WaitItem mproc_wait_item() const { return {core().event_fd(), core_.get(), core_.get()}; }

 protected:
  friend struct detail::QueueAccess;
  explicit Queue(std::shared_ptr<detail::QueueCore> core) noexcept : core_(std::move(core)) {}
  static std::shared_ptr<detail::QueueCore> decode_core(detail::Reader& r, bool joinable) {
    auto c = detail::QueueCore::decode(r);
    if (c->joinable() != joinable) {
      throw SerializationError(joinable ? "mproc: a Queue handle arrived where a JoinableQueue was expected"
                                        : "mproc: a JoinableQueue handle arrived where a Queue was expected");
    }
    return c;
  }
  struct JoinableTag {};
  Queue(JoinableTag, std::int64_t maxsize) : core_(detail::QueueCore::create(maxsize, true)) {}
  detail::QueueCore& core() const {
    if (!core_) throw Error("Queue: empty handle (moved-from)");
    return *core_;
  }

  std::shared_ptr<detail::QueueCore> core_;
};

}  // namespace mproc
