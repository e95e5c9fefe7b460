// item_sink.cpp: the out-of-line part of a worker's ItemSink
// (detail/item_sink.hpp): batches going out, failures.

#include "mproc/detail/item_sink.hpp"

#include <time.h>

#include <cstring>

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

ItemSink::ItemSink(MailLink& link, WorkerProgress* progress, std::uint64_t chunk_id, bool flush_each, Writer& out)
    : link_(link), progress_(progress), chunk_id_(chunk_id), flush_each_(flush_each), out_(out) {
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
  link_.send(out_.bytes(), out_.fds());
  count_ = 0;
}

}  // namespace mproc::detail
