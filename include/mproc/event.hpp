// event.hpp: mproc::Event, a flag that processes wait for (Python's
// multiprocessing.Event).
//
//   mproc::Event ready;
//   void worker(mproc::Event ready) { ...; ready.set(); }
//   ...
//   if (!ready.wait(std::chrono::seconds(5))) { /* the worker never got there */ }
//
// set() raises the flag and wakes every waiter; clear() lowers it; wait()
// returns at once while the flag is up and otherwise sleeps until a set().
// A waiter woken by a set() returns true even if a clear() followed at once
// (as Python's threading.Event does). Handles are copyable and refer to the
// same event in every process (a memfd, nothing in /dev/shm).
//
// If the process that should set the event dies first, a wait() without a
// timeout waits for ever (nobody else can know that it would have set it);
// give a timeout wherever that can happen.
#pragma once

#include <chrono>
#include <memory>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/shm_region.hpp"
#include "mproc/detail/sync_core.hpp"

namespace mproc {

class Event {
 public:
  // A new event, not set.
  Event();

  // Raises the flag and wakes every waiter.
  void set() { detail::event_set(core("mproc::Event::set")); }
  // Lowers the flag.
  void clear() { detail::event_clear(core("mproc::Event::clear")); }
  // Whether the flag is up now.
  bool is_set() const { return (core("mproc::Event::is_set")->word.load(std::memory_order_acquire) & 1u) != 0; }
  // Blocks until the flag is up (returns at once if it is).
  void wait() { detail::event_wait(core("mproc::Event::wait"), std::nullopt); }
  // Waits at most `timeout`; true if the flag was set (before or during the
  // wait), false on timeout.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return detail::event_wait(core("mproc::Event::wait"), detail::deadline_after(timeout));
  }

  explicit operator bool() const noexcept { return core_ != nullptr; }

  // Copies share the object; a moved-from handle stays a working copy.
  Event(const Event&) = default;
  Event& operator=(const Event&) = default;

  void mproc_encode(detail::Writer& w) const;
  static Event mproc_decode(detail::Reader& r);

 private:
  Event(std::shared_ptr<detail::SharedRegion> region, detail::EventCore* core) noexcept
      : region_(std::move(region)), core_(core) {}
  detail::EventCore* core(const char* who) const {
    if (core_ == nullptr) detail::throw_empty_handle(who);
    return core_;
  }

  std::shared_ptr<detail::SharedRegion> region_;
  detail::EventCore* core_ = nullptr;
};

}  // namespace mproc
