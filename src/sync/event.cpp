// event.cpp: the shared Event (event.hpp).
//
// One futex word: bit 0 is the flag, bit 1 says someone may be asleep, and
// the bits above count the clear-to-set transitions. set() bumps that
// count, so a waiter can tell that a set() happened while it slept even if a
// clear() came right after, and sleeps are only ever woken by a set() that
// saw bit 1 (no system call when nobody waits).

#include "mproc/event.hpp"

#include <new>

namespace mproc {
namespace detail {

namespace {
constexpr std::uint32_t kFlag = 1u;
constexpr std::uint32_t kSleepers = 2u;
std::uint32_t generation(std::uint32_t w) { return w >> 2; }
}  // namespace

void event_set(EventCore* c) {
  std::uint32_t w = c->word.load(std::memory_order_relaxed);
  for (;;) {
    if ((w & kFlag) != 0) return;
    const std::uint32_t next = ((generation(w) + 1) << 2) | kFlag;  // clears kSleepers
    if (c->word.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
  }
  if ((w & kSleepers) != 0) futex_wake_all(&c->word);
}

void event_clear(EventCore* c) noexcept { c->word.fetch_and(~kFlag, std::memory_order_acq_rel); }

bool event_wait(EventCore* c, Deadline deadline) {
  std::uint32_t w = c->word.load(std::memory_order_acquire);
  const std::uint32_t start = generation(w);
  for (;;) {
    if ((w & kFlag) != 0 || generation(w) != start) return true;
    if ((w & kSleepers) == 0) {
      if (!c->word.compare_exchange_weak(w, w | kSleepers, std::memory_order_acquire, std::memory_order_acquire)) {
        continue;
      }
      w |= kSleepers;
    }
    if (!futex_wait(&c->word, w, deadline)) {
      w = c->word.load(std::memory_order_acquire);
      return (w & kFlag) != 0 || generation(w) != start;
    }
    w = c->word.load(std::memory_order_acquire);
  }
}

}  // namespace detail

Event::Event() {
  region_ = detail::new_sync_region(sizeof(detail::EventCore), "Event");
  core_ = new (region_->data()) detail::EventCore{};
}

void Event::mproc_encode(detail::Writer& w) const {
  detail::encode_sync_ref(w, detail::SyncKind::event, *region_, core("mproc: sending an Event"));
}

Event Event::mproc_decode(detail::Reader& r) {
  std::shared_ptr<detail::SharedRegion> region;
  auto* core = detail::decode_core<detail::EventCore>(r, detail::SyncKind::event, region);
  return Event(std::move(region), core);
}

}  // namespace mproc
