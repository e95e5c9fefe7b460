// bulk_ring.cpp: big message bodies through shared memory
// (detail/bulk_ring.hpp).

#include "mproc/detail/bulk_ring.hpp"

#include <cstring>
#include <string>

#include "mproc/errors.hpp"

namespace mproc::detail {

std::optional<BulkRef> BulkRing::put(std::span<const std::byte> body) noexcept {
  if (!suits(body.size())) return std::nullopt;
  const std::uint64_t tail = tail_->load(std::memory_order_acquire);
  std::uint64_t at = head_;
  const std::uint64_t offset = at % capacity_;
  // Next lap when the body does not fit before the end, and also when the
  // reader has taken everything: then the same pages, warm from the last
  // bodies, are used again instead of fresh ones further on.
  const bool empty = tail == head_;
  if (offset != 0 && (offset + body.size() > capacity_ || empty)) at += capacity_ - offset;
  // Room: anywhere when the reader has taken everything, else up to the
  // reader's position plus one lap.
  if (!empty && at + body.size() - tail > capacity_) return std::nullopt;
  std::memcpy(data_ + at % capacity_, body.data(), body.size());
  head_ = align(at + body.size());
  return BulkRef{at, body.size()};
}

std::span<const std::byte> BulkRing::view(const BulkRef& ref) {
  release();
  check(ref);
  next_ = align(ref.position + ref.length);
  viewed_ = true;
  return {data_ + ref.position % capacity_, static_cast<std::size_t>(ref.length)};
}

void BulkRing::release() noexcept {
  if (!viewed_) return;
  viewed_ = false;
  tail_->store(next_, std::memory_order_release);
}

void BulkRing::take(const BulkRef& ref, ByteBuffer& out) {
  release();
  check(ref);
  out.resize(static_cast<std::size_t>(ref.length));
  std::memcpy(out.data(), data_ + ref.position % capacity_, static_cast<std::size_t>(ref.length));
  next_ = align(ref.position + ref.length);
  tail_->store(next_, std::memory_order_release);
}

void BulkRing::check(const BulkRef& ref) const {
  // The body starts at our position or, after a skip to the next lap, at
  // the start of the ring; it lies within one lap and does not straddle.
  const bool here = ref.position == next_;
  const bool next_lap = ref.position > next_ && ref.position % capacity_ == 0 && ref.position - next_ < capacity_;
  if (!usable() || ref.length == 0 || ref.length > capacity_ / 2 || !(here || next_lap) ||
      ref.position % capacity_ + ref.length > capacity_) {
    throw SerializationError("mproc: malformed message: a shared-memory body at " + std::to_string(ref.position) +
                             " of " + std::to_string(ref.length) + " bytes (expected at " + std::to_string(next_) +
                             ")");
  }
}

void BulkRing::reset() noexcept {
  head_ = 0;
  next_ = 0;
  viewed_ = false;
  if (tail_ != nullptr) tail_->store(0, std::memory_order_relaxed);
}

}  // namespace mproc::detail
