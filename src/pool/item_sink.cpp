// item_sink.cpp: the out-of-line part of a worker's ItemSink
// (detail/item_sink.hpp): batches going out, failures.

#include "mproc/detail/item_sink.hpp"

#include <time.h>

#include <cstring>

#include "mproc/detail/wire.hpp"

namespace mproc::detail {

ItemSink*& current_item_sink() noexcept {
  thread_local ItemSink* sink = nullptr;
  return sink;
}

std::uint64_t ItemSink::now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {
// When the first batch was deferred (CLOCK_MONOTONIC ns; 0 = none waiting).
std::uint64_t g_deferred_since = 0;
}  // namespace

ItemSink::ItemSink(int sock, BulkRing& ring, WorkerProgress* progress, std::uint64_t chunk_id, bool flush_each,
                   Writer& out, Writer& deferred)
    : sock_(sock), ring_(ring), progress_(progress), chunk_id_(chunk_id), flush_each_(flush_each), out_(out), deferred_(deferred) {
  // The chunk id is written once; `running` (release, per item) publishes it.
  progress_->chunk_id.store(chunk_id_, std::memory_order_relaxed);
  start_batch(0);
}

void ItemSink::fail(const RemoteFacts& facts) {
  out_.truncate(mark_bytes_, mark_fds_);
  out_.write_pod(std::uint8_t{0});
  encode_facts(out_, facts);
}

void ItemSink::start_batch(std::uint32_t first) {
  out_.clear();
  out_.write_pod(PoolMsg::results);
  out_.write_pod(chunk_id_);
  out_.write_pod(first);
  count_at_ = out_.size();
  out_.write_pod(std::uint32_t{0});
  count_ = 0;
  last_flush_ = now_ns();
  last_clock_ = last_flush_;
}

void ItemSink::flush() {
  std::memcpy(out_.data() + count_at_, &count_, sizeof count_);
  send_deferred(sock_, deferred_);
  send_message(sock_, out_.bytes(), out_.fds(), ring_);
  count_ = 0;
}

void ItemSink::finish(bool more_input) {
  if (count_ == 0) return;
  // Deferred only for chunks of several items, without descriptors (those
  // need their own send), without task timeouts (results then leave item by
  // item) and within the bounds.
  const bool defer = more_input && several_ && !flush_each_ && out_.fds().empty() &&
                     deferred_.size() + out_.size() <= kFlushBytes &&
                     (g_deferred_since == 0 || now_ns() - g_deferred_since <= kFlushNs);
  if (!defer) {
    flush();
    return;
  }
  std::memcpy(out_.data() + count_at_, &count_, sizeof count_);
  if (deferred_.size() == 0) g_deferred_since = now_ns();
  frame_message(deferred_, out_.bytes());
  count_ = 0;
}

void ItemSink::send_deferred(int sock, Writer& deferred) {
  if (deferred.size() == 0) return;
  g_deferred_since = 0;
  const auto bytes = deferred.bytes();
  deferred.clear();  // cleared first: a send that throws must not resend
  send_framed(sock, bytes);
}

}  // namespace mproc::detail
