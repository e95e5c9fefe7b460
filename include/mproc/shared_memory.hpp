// shared_memory.hpp: mproc::SharedMemory, a block of raw bytes shared
// between processes (Python's multiprocessing.shared_memory.SharedMemory).
//
//   auto shm = mproc::SharedMemory::create(1 << 20);       // anonymous
//   std::memcpy(shm.data(), src, n);
//   mproc::Process p(worker, shm);                         // the child maps the same bytes
//
//   auto named = mproc::SharedMemory::create("results", 4096);   // for unrelated programs
//   auto other = mproc::SharedMemory::attach("results");         // in any process
//   named.unlink();                                              // when nobody needs the name
//
// Two kinds of block:
//  - Anonymous, create(size): a memfd. It has no name in /dev/shm, and the
//    kernel frees it when the last process that maps it ends, however it
//    ends: nothing can be left behind by a crash. It crosses to other
//    processes as a handle (an argument of a Process or a pool task, a
//    Queue item). Its name() is "/proc/<pid>/fd/<n>", this process's
//    descriptor for it, and attach() of that name works while this handle
//    is open (within the same user; meant for convenience inside one
//    program, pass the handle where you can).
//  - Named, create(name, size): a POSIX shared memory object (shm_open). It
//    persists until unlink(), also after every process that used it has
//    ended, so that unrelated programs can meet on it by name; whoever
//    creates a name is responsible for unlinking it. Names work with or
//    without the leading '/'; name() returns it without.
//
// Handles are copyable and share one mapping per process; the mapping is
// removed when the last handle in this process goes, or by close() (which
// closes it for every handle of this process). Neither unmaps it in other
// processes, and neither unlinks a name. The bytes are not synchronized:
// coordinate access with a Lock, a Semaphore, an Event, ... as usual.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "mproc/detail/buffer.hpp"

namespace mproc {

namespace detail {
struct ShmState;
}

class SharedMemory {
 public:
  // An empty handle (data() is null, size() is 0). Assign a real block.
  SharedMemory() noexcept = default;

  // A new anonymous block of `size` bytes (> 0), zero-filled. Throws
  // mproc::Error on size 0 or when the system refuses.
  static SharedMemory create(std::size_t size);
  // A new named block of `size` bytes (> 0), zero-filled. Throws
  // mproc::Error if the name exists already, is empty or contains '/'
  // after the first character.
  static SharedMemory create(std::string_view name, std::size_t size);
  // Maps an existing named block (or an anonymous one by its name(), see
  // above). Throws mproc::Error if there is none by that name.
  static SharedMemory attach(std::string_view name);

  // The first byte (writable), or nullptr for an empty or closed handle.
  void* data() const noexcept;
  // The bytes as a span (empty for an empty or closed handle).
  std::span<std::byte> buf() const noexcept;
  // The size in bytes (as created; 0 for an empty or closed handle).
  std::size_t size() const noexcept;
  // The name to attach() to: without the leading '/' for a named block,
  // "/proc/<pid>/fd/<n>" for an anonymous one (empty if closed or empty).
  std::string name() const;
  // True for a block made by create(name, size) or attach(name).
  bool named() const noexcept;

  // Unmaps the block in this process, for every handle that shares this
  // mapping. Idempotent. The block lives on for other processes (and, if
  // named, until unlink()).
  void close() noexcept;
  // Removes the name (a named block): later attach() calls fail, and the
  // memory is freed once no process maps it. Does nothing for an anonymous
  // block. Throws mproc::Error if the name no longer exists.
  void unlink();

  explicit operator bool() const noexcept { return state_ != nullptr; }

  // Crossing a process boundary: the block's descriptor (and name).
  void mproc_encode(detail::Writer& w) const;
  static SharedMemory mproc_decode(detail::Reader& r);

 private:
  explicit SharedMemory(std::shared_ptr<detail::ShmState> state) noexcept : state_(std::move(state)) {}
  std::shared_ptr<detail::ShmState> state_;
};

}  // namespace mproc
