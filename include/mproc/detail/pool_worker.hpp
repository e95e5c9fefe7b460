// detail/pool_worker.hpp: the worker process of a Pool (src/pool/worker_main.cpp).
#pragma once

#include <cstdint>
#include <memory>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/fd.hpp"
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

struct WorkerConfig {
  std::uint32_t slot = 0;
  std::uint32_t maxtasks = 0;  // 0 = unlimited
  bool flush_each_item = false;
  // The worker's two BulkRings (bulk_ring.hpp) in the progress region:
  // tasks in at `rings_offset`, results out right after; each is a header
  // and `ring_bytes` of data. 0 = none.
  std::uint64_t rings_offset = 0;
  std::uint64_t ring_bytes = 0;
};

// Runs a pool worker until told to exit (or the pool's end of the socket
// closes). Returns normally; exceptions from tasks never escape.
void pool_worker_main(FdHandle sock, RegionHandle progress, WorkerConfig config);

}  // namespace mproc::detail
