// shm_region.cpp: memfd-backed shared mappings (detail/shm_region.hpp).

#include "mproc/detail/shm_region.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace mproc::detail {

std::shared_ptr<SharedRegion> SharedRegion::create(std::size_t size, const char* tag) {
  if (size == 0) size = 1;
  const std::string name = std::string("mproc:") + tag;
  UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC));
  if (!fd) throw_errno("mproc: memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw_errno("mproc: ftruncate of shared memory");
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) throw_errno("mproc: mmap of shared memory");
  return std::shared_ptr<SharedRegion>(new SharedRegion(std::move(fd), p, size));
}

std::shared_ptr<SharedRegion> SharedRegion::attach(int fd) {
  UniqueFd mine = dup_cloexec(fd);
  struct stat st {};
  if (::fstat(mine.get(), &st) != 0) throw_errno("mproc: fstat of shared memory");
  if (st.st_size <= 0) throw SerializationError("mproc: received an empty shared memory descriptor");
  const auto size = static_cast<std::size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, mine.get(), 0);
  if (p == MAP_FAILED) throw_errno("mproc: mmap of received shared memory");
  return std::shared_ptr<SharedRegion>(new SharedRegion(std::move(mine), p, size));
}

SharedRegion::~SharedRegion() { ::munmap(data_, size_); }

}  // namespace mproc::detail
