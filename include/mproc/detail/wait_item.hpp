// detail/wait_item.hpp: what mproc::wait needs to know about one object.
//
// Anything mproc::wait accepts (a Connection, a queue, a process sentinel,
// a type-erased Waitable) reduces to a WaitItem: a descriptor to poll and,
// for queues, the queue's core, whose readiness ("not empty") is not a
// property of a descriptor alone (see wait.hpp and docs/design/queue.md).
// Types opt in with a member `detail::WaitItem mproc_wait_item() const`.
#pragma once

namespace mproc::detail {

class QueueCore;

struct WaitItem {
  int fd = -1;                    // polled for readability (or hang-up)
  QueueCore* queue = nullptr;     // set for queues: ready means "not empty"
  const void* identity = nullptr; // the shared object behind the handle
};

}  // namespace mproc::detail
