// shared_memory.cpp: anonymous (memfd) and named (shm_open) shared memory
// blocks (shared_memory.hpp).

#include "mproc/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

#include "mproc/detail/fd.hpp"
#include "mproc/detail/sync_core.hpp"
#include "mproc/errors.hpp"

namespace mproc {
namespace detail {

// One mapping in this process, shared by every copy of a handle.
struct ShmState {
  std::mutex mu;  // orders close() against encode and name()
  UniqueFd fd;
  std::atomic<void*> data{nullptr};
  std::atomic<std::size_t> size{0};
  bool is_named = false;
  std::string name;  // with the leading '/' (named blocks only)

  ~ShmState() { unmap(); }
  void unmap() noexcept {
    void* p = data.exchange(nullptr);
    const std::size_t n = size.exchange(0);
    if (p != nullptr && n != 0) ::munmap(p, n);
  }
};

namespace {

// "/name" from "name" or "/name"; rejects what shm_open would reject.
std::string normalize_name(std::string_view name, const char* who) {
  std::string out;
  if (name.empty() || name[0] != '/') out.push_back('/');
  out.append(name);
  if (out.size() < 2) throw Error(std::string(who) + ": the name is empty");
  if (out.find('/', 1) != std::string::npos) {
    throw Error(std::string(who) + ": the name '" + std::string(name) + "' contains '/' after its first character");
  }
  if (out.find('\0') != std::string::npos) throw Error(std::string(who) + ": the name contains a NUL byte");
  if (out.size() > 255) throw Error(std::string(who) + ": the name is longer than 254 characters");
  return out;
}

std::shared_ptr<ShmState> map_fd(UniqueFd fd, bool is_named, std::string name, const char* who) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno(std::string(who) + ": fstat");
  auto state = std::make_shared<ShmState>();
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) throw_errno(std::string(who) + ": mmap of " + std::to_string(size) + " bytes");
    state->data.store(p);
    state->size.store(size);
  }
  state->fd = std::move(fd);
  state->is_named = is_named;
  state->name = std::move(name);
  return state;
}

// An anonymous block's name: "/proc/<pid>/fd/<n>". Other names are POSIX
// shm names, which cannot contain a second '/'.
bool is_proc_fd_path(std::string_view name) { return name.rfind("/proc/", 0) == 0; }

}  // namespace
}  // namespace detail

SharedMemory SharedMemory::create(std::size_t size) {
  constexpr const char* who = "mproc::SharedMemory::create";
  if (size == 0) throw Error(std::string(who) + ": the size must be > 0");
  detail::UniqueFd fd(::memfd_create("mproc:SharedMemory", MFD_CLOEXEC));
  if (!fd) detail::throw_errno(std::string(who) + ": memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    detail::throw_errno(std::string(who) + ": ftruncate to " + std::to_string(size) + " bytes");
  }
  return SharedMemory(detail::map_fd(std::move(fd), false, {}, who));
}

SharedMemory SharedMemory::create(std::string_view name, std::size_t size) {
  constexpr const char* who = "mproc::SharedMemory::create";
  const std::string full = detail::normalize_name(name, who);
  if (size == 0) throw Error(std::string(who) + ": the size must be > 0 (name '" + full.substr(1) + "')");
  detail::UniqueFd fd(::shm_open(full.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == EEXIST) throw Error(std::string(who) + ": shared memory named '" + full.substr(1) + "' exists already");
    detail::throw_errno(std::string(who) + ": shm_open('" + full + "')");
  }
  // From here on a failure must not leave the new name behind.
  try {
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      detail::throw_errno(std::string(who) + ": ftruncate of '" + full + "' to " + std::to_string(size) + " bytes");
    }
    return SharedMemory(detail::map_fd(std::move(fd), true, full, who));
  } catch (...) {
    ::shm_unlink(full.c_str());
    throw;
  }
}

SharedMemory SharedMemory::attach(std::string_view name) {
  constexpr const char* who = "mproc::SharedMemory::attach";
  if (detail::is_proc_fd_path(name)) {
    const std::string path(name);
    detail::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) throw Error(std::string(who) + ": no shared memory at '" + path + "' (closed, or its process ended)");
      detail::throw_errno(std::string(who) + ": open('" + path + "')");
    }
    return SharedMemory(detail::map_fd(std::move(fd), false, {}, who));
  }
  const std::string full = detail::normalize_name(name, who);
  detail::UniqueFd fd(::shm_open(full.c_str(), O_RDWR | O_CLOEXEC, 0));
  if (!fd) {
    if (errno == ENOENT) throw Error(std::string(who) + ": no shared memory named '" + full.substr(1) + "'");
    detail::throw_errno(std::string(who) + ": shm_open('" + full + "')");
  }
  return SharedMemory(detail::map_fd(std::move(fd), true, full, who));
}

void* SharedMemory::data() const noexcept { return state_ ? state_->data.load() : nullptr; }

std::span<std::byte> SharedMemory::buf() const noexcept {
  if (!state_) return {};
  return {static_cast<std::byte*>(state_->data.load()), state_->size.load()};
}

std::size_t SharedMemory::size() const noexcept { return state_ ? state_->size.load() : 0; }

bool SharedMemory::named() const noexcept { return state_ && state_->is_named; }

std::string SharedMemory::name() const {
  if (!state_) return {};
  std::lock_guard lock(state_->mu);
  if (state_->is_named) return state_->name.substr(1);
  if (!state_->fd) return {};
  return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(state_->fd.get());
}

void SharedMemory::close() noexcept {
  if (!state_) return;
  std::lock_guard lock(state_->mu);
  state_->unmap();
  state_->fd.reset();
}

void SharedMemory::unlink() {
  if (!state_ || !state_->is_named) return;
  if (::shm_unlink(state_->name.c_str()) != 0) {
    if (errno == ENOENT) {
      throw Error("mproc::SharedMemory::unlink: shared memory named '" + state_->name.substr(1) +
                  "' does not exist (any more)");
    }
    detail::throw_errno("mproc::SharedMemory::unlink('" + state_->name + "')");
  }
}

// Wire form: named flag, the name (named blocks), then the descriptor. The
// receiver maps the descriptor, so it gets the same memory even if the name
// was unlinked in between.
void SharedMemory::mproc_encode(detail::Writer& w) const {
  if (!state_) detail::throw_empty_handle("mproc: sending a SharedMemory");
  std::lock_guard lock(state_->mu);
  if (!state_->fd) throw Error("mproc: sending a SharedMemory handle that was closed");
  w.write_pod(static_cast<std::uint8_t>(state_->is_named ? 1 : 0));
  if (state_->is_named) {
    w.write_size(state_->name.size());
    w.write(state_->name.data(), state_->name.size());
  }
  w.write_fd(state_->fd.get());
}

SharedMemory SharedMemory::mproc_decode(detail::Reader& r) {
  const auto flag = r.read_pod<std::uint8_t>();
  if (flag > 1) throw SerializationError("mproc: malformed message: bad SharedMemory flag");
  std::string name;
  if (flag == 1) {
    const std::size_t n = r.read_count(1);
    if (n < 2 || n > 255) throw SerializationError("mproc: malformed message: bad SharedMemory name length");
    const auto bytes = r.take(n);
    name.assign(reinterpret_cast<const char*>(bytes.data()), n);
    if (name[0] != '/' || name.find('/', 1) != std::string::npos || name.find('\0') != std::string::npos) {
      throw SerializationError("mproc: malformed message: bad SharedMemory name");
    }
  }
  detail::UniqueFd fd = detail::dup_cloexec(r.read_fd());
  return SharedMemory(detail::map_fd(std::move(fd), flag == 1, std::move(name), "mproc: receiving a SharedMemory"));
}

}  // namespace mproc
