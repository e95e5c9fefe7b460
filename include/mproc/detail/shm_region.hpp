// detail/shm_region.hpp: anonymous shared memory that cannot leak.
//
// A SharedRegion is a mapping of a memfd (memfd_create): it has no name in
// /dev/shm, and the kernel frees it when the last descriptor and the last
// mapping are gone, whatever way the processes end. A forked child shares
// the parent's mapping as it is; any other process gets the descriptor with
// a message (Writer::write_fd, sent with SCM_RIGHTS) and maps it again with
// attach(). Handles (Queue, Lock, Value, ...) hold a shared_ptr to one.
#pragma once

#include <cstddef>
#include <memory>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/fd.hpp"

namespace mproc::detail {

class SharedRegion {
 public:
  // A new zero-filled region of at least `size` bytes. `tag` names the
  // memfd for /proc/PID/fd listings ("mproc:<tag>").
  static std::shared_ptr<SharedRegion> create(std::size_t size, const char* tag);
  // Maps the region behind `fd` (which is duplicated, not taken).
  static std::shared_ptr<SharedRegion> attach(int fd);

  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  ~SharedRegion();

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  int fd() const noexcept { return fd_.get(); }

  template <class T>
  T* as(std::size_t offset = 0) const noexcept {
    return reinterpret_cast<T*>(static_cast<char*>(data_) + offset);
  }

  // The handle-crossing pair: write the descriptor; map it on the other side.
  void encode(Writer& w) const { w.write_fd(fd_.get()); }
  static std::shared_ptr<SharedRegion> decode(Reader& r) { return attach(r.read_fd()); }

 private:
  SharedRegion(UniqueFd fd, void* data, std::size_t size) : fd_(std::move(fd)), data_(data), size_(size) {}
  UniqueFd fd_;
  void* data_;
  std::size_t size_;
};

}  // namespace mproc::detail
