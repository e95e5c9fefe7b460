// wait.cpp: mproc::wait over descriptors and queues (wait.hpp).
//
// Descriptors are polled as they are. A queue is "ready" when it is not
// empty, which no descriptor says by itself; while this call runs it is
// registered as a poller of each queue, and a queue with pollers keeps its
// eventfd readable whenever it holds an item (see QueueCore::begin_wait and
// docs/design/queue.md). A readable eventfd is confirmed against the item
// count before the queue is reported, so a stale signal never makes wait
// return early with nothing ready.

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "mproc/detail/fd.hpp"
#include "mproc/detail/queue_core.hpp"
#include "mproc/errors.hpp"
#include "mproc/wait.hpp"

namespace mproc::detail {
namespace {

// Unregisters from every queue it registered with, whatever way wait ends.
struct Registrations {
  std::vector<QueueCore*> queues;
  ~Registrations() {
    for (QueueCore* q : queues) q->end_wait();
  }
};

}  // namespace

std::vector<std::size_t> wait_ready(std::span<const WaitItem> items, Deadline deadline) {
  // Nothing to wait for is never going to be ready: answer at once.
  if (items.empty()) return {};
  std::vector<char> ready(items.size(), 0);
  bool any = false;
  Registrations reg;
  reg.queues.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (QueueCore* q = items[i].queue) {
      const bool now = q->begin_wait();
      reg.queues.push_back(q);
      if (now) ready[i] = 1, any = true;
    }
  }
  std::vector<pollfd> pfds(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) pfds[i] = {items[i].fd, POLLIN, 0};

  for (;;) {
    // Once something is ready, only collect what else is ready right now.
    timespec ts{};
    const timespec* tsp = nullptr;
    if (any || deadline) {
      long long ns = 0;
      if (!any) {
        ns = std::max<long long>(
            0, std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - std::chrono::steady_clock::now()).count());
      }
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      tsp = &ts;
    }
    const int n = ::ppoll(pfds.data(), pfds.size(), tsp, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("mproc::wait: poll");
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
      const short re = pfds[i].revents;
      if (re == 0 || ready[i]) continue;
      if (re & POLLNVAL) throw Error("mproc::wait: descriptor " + std::to_string(items[i].fd) + " is not open");
      if (QueueCore* q = items[i].queue) {
        if (q->confirm_ready()) ready[i] = 1, any = true;
      } else {
        ready[i] = 1;
        any = true;
      }
    }
    if (any) break;
    if (n == 0 && deadline && std::chrono::steady_clock::now() >= *deadline) break;
  }
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (ready[i]) out.push_back(i);
  }
  return out;
}

}  // namespace mproc::detail
