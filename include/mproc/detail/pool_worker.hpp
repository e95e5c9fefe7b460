// detail/pool_worker.hpp: the worker process of a Pool (src/pool/worker_main.cpp).
#pragma once

#include <cstdint>
#include <memory>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/bulk_ring.hpp"
#include "mproc/detail/fd.hpp"
#include "mproc/detail/mail_ring.hpp"
#include "mproc/detail/shm_region.hpp"

namespace mproc::detail {

// A descriptor as a Process argument: under fork the number is inherited as
// it is; otherwise it travels with the child frame and is duplicated.
class FdHandle {
 public:
  FdHandle() = default;
  explicit FdHandle(int fd) : fd_(std::make_shared<UniqueFd>(fd)) {}
  int get() const noexcept { return fd_ ? fd_->get() : -1; }
  void reset() { fd_.reset(); }

  void mproc_encode(Writer& w) const { w.write_fd(get()); }
  static FdHandle mproc_decode(Reader& r) { return FdHandle(dup_cloexec(r.read_fd()).release()); }

 private:
  std::shared_ptr<UniqueFd> fd_;
};

// A SharedRegion as a Process argument.
class RegionHandle {
 public:
  RegionHandle() = default;
  explicit RegionHandle(std::shared_ptr<SharedRegion> r) : region_(std::move(r)) {}
  SharedRegion* get() const noexcept { return region_.get(); }

  void mproc_encode(Writer& w) const { region_->encode(w); }
  static RegionHandle mproc_decode(Reader& r) { return RegionHandle(SharedRegion::decode(r)); }

 private:
  std::shared_ptr<SharedRegion> region_;
};

// Where things lie in a pool's one shared region (ProcessTransport makes it,
// each worker maps it): a 64-byte progress slot per worker, the pool's
// sleeping word (detail/mail_link.hpp), then per worker its two MailRings
// (to the worker, from the worker) and its two BulkRings (the same order).
// The rings are sparse: only the pages a pool touches are ever allocated.
struct PoolLayout {
  static constexpr std::size_t kMailBytes = std::size_t{256} << 10;
  static constexpr std::size_t kBulkBytes = std::size_t{32} << 20;
  static constexpr std::size_t kMailSpan = MailRing::kHeaderBytes + kMailBytes;
  static constexpr std::size_t kBulkSpan = BulkRing::kHeaderBytes + kBulkBytes;
  std::size_t processes = 1;

  std::size_t progress(std::size_t slot) const noexcept { return slot * 64; }
  std::size_t pool_sleeping() const noexcept { return processes * 64; }
  std::size_t mail(std::size_t slot) const noexcept { return page(processes * 64 + 64) + slot * 2 * kMailSpan; }
  std::size_t bulk(std::size_t slot) const noexcept { return page(mail(processes)) + slot * 2 * kBulkSpan; }
  std::size_t bytes() const noexcept { return bulk(processes); }

  // The rings of `slot` over the region that starts at `base`.
  MailRing mail_to_worker(std::byte* base, std::size_t slot) const noexcept {
    return MailRing(base + mail(slot), kMailBytes);
  }
  MailRing mail_from_worker(std::byte* base, std::size_t slot) const noexcept {
    return MailRing(base + mail(slot) + kMailSpan, kMailBytes);
  }
  BulkRing bulk_to_worker(std::byte* base, std::size_t slot) const noexcept {
    return BulkRing(base + bulk(slot), kBulkBytes);
  }
  BulkRing bulk_from_worker(std::byte* base, std::size_t slot) const noexcept {
    return BulkRing(base + bulk(slot) + kBulkSpan, kBulkBytes);
  }

 private:
  static constexpr std::size_t page(std::size_t n) noexcept { return (n + 4095) & ~std::size_t{4095}; }
};

struct WorkerConfig {
  std::uint32_t slot = 0;
  std::uint32_t maxtasks = 0;  // 0 = unlimited
  bool flush_each_item = false;
  std::uint32_t processes = 1;  // the pool's size: where things lie (PoolLayout)
  std::uint64_t spin_ns = 0;    // the spin budget (detail/spin.hpp)
};

// Runs a pool worker until told to exit (or the pool's end of the socket
// closes). `bell` is this worker's eventfd, `pool_bell` the pool's
// (detail/mail_link.hpp). Returns normally; exceptions from tasks never
// escape.
void pool_worker_main(FdHandle sock, FdHandle bell, FdHandle pool_bell, RegionHandle region, WorkerConfig config);

}  // namespace mproc::detail
