// simple_queue.hpp: mproc::SimpleQueue<T>, the small queue (Python's
// multiprocessing.SimpleQueue): put, get, empty, close.
//
//   mproc::SimpleQueue<int> q;
//   q.put(1);
//   int v = q.get();
//
// It is the same shared-memory queue as mproc::Queue (unbounded, any number
// of producers and consumers in any processes, the same guarantees when a
// process dies; see queue.hpp), with Python's smaller interface. Copyable
// handle with shared-reference semantics; crosses into Process and pool
// tasks under every start method.
#pragma once

#include <memory>

#include "mproc/queue.hpp"

namespace mproc {

template <class T>
class SimpleQueue {
 public:
  SimpleQueue() : core_(detail::QueueCore::create(0, false)) { static_assert(detail::serializable_check<T>::ok); }

  // Puts one value (never blocks). mproc::Error after close().
  void put(const T& value) {
    static_assert(detail::serializable_check<T>::ok);
    detail::queue_put(core(), value, std::nullopt, true, "SimpleQueue::put");
  }
  // Takes the oldest item, blocking while the queue is empty.
  T get() {
    static_assert(detail::serializable_check<T>::ok);
    return detail::queue_get<T>(core(), std::nullopt, true, [] { return "SimpleQueue::get: empty"; });
  }
  bool empty() const { return core().qsize() == 0; }
  // This handle puts no more (see Queue::close).
  void close() noexcept {
    if (core_) core_->close();
  }
  bool closed() const noexcept { return core_ && core_->closed(); }

  friend bool operator==(const SimpleQueue& a, const SimpleQueue& b) noexcept { return a.core_ == b.core_; }

  void mproc_encode(detail::Writer& w) const { core().encode(w); }
  static SimpleQueue mproc_decode(detail::Reader& r) {
    auto c = detail::QueueCore::decode(r);
    if (c->joinable()) throw SerializationError("mproc: a JoinableQueue handle arrived where a SimpleQueue was expected");
    return SimpleQueue(std::move(c));
  }
  detail::WaitItem mproc_wait_item() const { return {core().event_fd(), core_.get(), core_.get()}; }

 private:
  friend struct detail::QueueAccess;
  explicit SimpleQueue(std::shared_ptr<detail::QueueCore> core) noexcept : core_(std::move(core)) {}
  detail::QueueCore& core() const {
    if (!core_) throw Error("SimpleQueue: empty handle (moved-from)");
    return *core_;
  }
  std::shared_ptr<detail::QueueCore> core_;
};

}  // namespace mproc
