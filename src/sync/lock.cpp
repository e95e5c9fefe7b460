// lock.cpp: making, sending and receiving Lock and RLock handles
// (lock.hpp). The lock operations themselves are in lock_core.cpp.

#include "mproc/lock.hpp"

#include <new>

namespace mproc {
namespace detail {

LockHandle::LockHandle(SyncKind kind, const char* tag) {
  region_ = new_sync_region(sizeof(LockCore), tag);
  core_ = new (region_->data()) LockCore{};
  core_->kind = kind;
}

void LockHandle::encode(Writer& w, SyncKind kind) const {
  if (core_ == nullptr) throw_empty_handle("mproc: sending a lock");
  encode_sync_ref(w, kind, *region_, core_);
}

}  // namespace detail

Lock Lock::mproc_decode(detail::Reader& r) {
  std::shared_ptr<detail::SharedRegion> region;
  auto* core = detail::decode_core<detail::LockCore>(r, detail::SyncKind::lock, region);
  return Lock(detail::AdoptCore{}, std::move(region), core);
}

RLock RLock::mproc_decode(detail::Reader& r) {
  std::shared_ptr<detail::SharedRegion> region;
  auto* core = detail::decode_core<detail::LockCore>(r, detail::SyncKind::rlock, region);
  return RLock(detail::AdoptCore{}, std::move(region), core);
}

}  // namespace mproc
