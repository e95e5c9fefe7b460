// mail_ring.cpp: small messages through shared memory
// (detail/mail_ring.hpp).

#include "mproc/detail/mail_ring.hpp"

#include <cstring>
#include <string>

#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

[[noreturn]] void malformed(const std::string& what) {
  throw SerializationError("mproc: malformed message: " + what);
}

}  // namespace

void MailRing::write_header(std::uint64_t at, Kind kind, std::uint32_t length) noexcept {
  const std::uint32_t words[2] = {length, static_cast<std::uint32_t>(kind)};
  std::memcpy(data_ + at % capacity_, words, sizeof words);
}

bool MailRing::find_room(std::uint64_t need, std::uint64_t reserve, std::uint64_t& at) noexcept {
  if (!usable() || need > capacity_ / 2) return false;
  const std::uint64_t offset = head_ % capacity_;
  // Next lap when the frame would straddle the end, and when the reader has
  // taken everything and we are far into the lap (warm lines again).
  bool skip = offset + need > capacity_;
  if (!skip && offset >= kRestart) {
    tail_seen_ = shared_->tail.load(std::memory_order_acquire);
    // (The skipped bytes count until the reader passes them: the frame must
    // fit in what lies before us.)
    skip = tail_seen_ == head_ && offset >= need + reserve;
  }
  at = skip ? head_ + (capacity_ - offset) : head_;
  if (at + need + reserve - tail_seen_ > capacity_) {
    tail_seen_ = shared_->tail.load(std::memory_order_acquire);
    if (at + need + reserve - tail_seen_ > capacity_) return false;
  }
  return true;
}

bool MailRing::room_for(std::size_t n) noexcept {
  std::uint64_t at;
  return find_room(kFrameHeader + pad(n), kReserve, at);
}

bool MailRing::put(Kind kind, std::span<const std::byte> body) noexcept {
  const std::uint64_t need = kFrameHeader + pad(body.size());
  std::uint64_t at;
  if (!find_room(need, kind == Kind::socket ? 0 : kReserve, at)) return false;
  if (at != head_) write_header(head_, Kind::wrap, 0);  // head_ is 8-aligned: the header fits
  write_header(at, kind, static_cast<std::uint32_t>(body.size()));
  if (!body.empty()) std::memcpy(data_ + at % capacity_ + kFrameHeader, body.data(), body.size());
  head_ = at + need;
  shared_->head.store(head_, std::memory_order_release);
  return true;
}

bool MailRing::peek(Frame& out) {
  for (;;) {
    const std::uint64_t head = shared_->head.load(std::memory_order_acquire);
    if (head == next_) return false;
    // Unsigned: a head behind us is a huge distance.
    if (head - next_ > capacity_ || head - next_ < kFrameHeader) {
      malformed("a mail ring published " + std::to_string(head) + " bytes, read " + std::to_string(next_));
    }
    const std::uint64_t offset = next_ % capacity_;
    std::uint32_t words[2];
    std::memcpy(words, data_ + offset, sizeof words);
    const std::uint32_t length = words[0];
    const auto kind = static_cast<Kind>(words[1]);
    if (kind == Kind::wrap) {
      const std::uint64_t lap = next_ + (capacity_ - offset);
      if (length != 0 || lap > head) malformed("a mail ring's wrap frame");
      next_ = lap;
      shared_->tail.store(next_, std::memory_order_release);
      continue;
    }
    const std::uint64_t need = kFrameHeader + pad(length);
    const bool known = kind == Kind::inline_body || kind == Kind::bulk || kind == Kind::socket;
    if (!known || offset + need > capacity_ || next_ + need > head || length > kMaxInline) {
      malformed("a mail ring frame of kind " + std::to_string(words[1]) + " and " + std::to_string(length) +
                " bytes");
    }
    out.kind = kind;
    out.body = {data_ + offset + kFrameHeader, length};
    after_ = next_ + need;
    return true;
  }
}

void MailRing::pop() noexcept {
  next_ = after_;
  shared_->tail.store(next_, std::memory_order_release);
}

void MailRing::reset() noexcept {
  head_ = tail_seen_ = next_ = after_ = 0;
  if (shared_ == nullptr) return;
  shared_->head.store(0, std::memory_order_relaxed);
  shared_->tail.store(0, std::memory_order_relaxed);
  shared_->sleeping.store(0, std::memory_order_relaxed);
}

}  // namespace mproc::detail
