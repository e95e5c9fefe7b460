// joinable_queue.hpp: mproc::JoinableQueue<T>, a Queue that counts
// unfinished tasks (Python's multiprocessing.JoinableQueue).
//
//   void worker(mproc::JoinableQueue<int> q) {
//     for (;;) { int job = q.get(); handle(job); q.task_done(); }
//   }
//   mproc::JoinableQueue<int> q;
//   for (int i = 0; i < 100; ++i) q.put(i);
//   q.join();                    // returns once every item had its task_done()
//
// Every put() adds one unfinished task (counted when the item becomes
// visible); every task_done() removes one; join() waits until none is left.
// The count is shared by all handles in all processes.
//
// A consumer that dies between get() and task_done() leaves its task
// unfinished for ever, as in Python: join() would then wait for ever, so
// use join(timeout) where consumers may die.
#pragma once

#include <chrono>
#include <cstdint>

#include "mproc/queue.hpp"

namespace mproc {

template <class T>
class JoinableQueue : public Queue<T> {
 public:
  // A new, unbounded joinable queue; or one of at most `maxsize` items.
  JoinableQueue() : JoinableQueue(0) {}
  explicit JoinableQueue(std::int64_t maxsize) : Queue<T>(typename Queue<T>::JoinableTag{}, maxsize) {}

  // Marks one task finished. Throws mproc::Error if called more times than
  // items were put.
  void task_done() { this->core().task_done(); }

  // Waits until every item put has had its task_done().
  void join() { this->core().join(std::nullopt); }
  // Waits at most `timeout`; true if every task was done by then.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return this->core().join(detail::deadline_after(timeout));
  }

  // The handle-crossing pair: the receiver gets a JoinableQueue (a plain
  // Queue handle arriving here is a SerializationError).
  static JoinableQueue mproc_decode(detail::Reader& r) {
    return JoinableQueue(Queue<T>::decode_core(r, true));
  }

 private:
  explicit JoinableQueue(std::shared_ptr<detail::QueueCore> core) noexcept : Queue<T>(std::move(core)) {}
};

}  // namespace mproc
