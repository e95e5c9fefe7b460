// detail/scratch.hpp: the per-thread scratch buffers of the IPC layer.
//
// The scratch writer is the Writer every send/put on this thread encodes
// into: reusing it keeps the hot path free of allocations. Buffers that grew
// large are given back after use, so one huge message does not pin its
// memory for the life of the thread.
#pragma once

#include <cstddef>

#include "mproc/detail/buffer.hpp"

namespace mproc::detail {

// Buffers above this size are released after use instead of being kept
// for the next message of the thread.
inline constexpr std::size_t kScratchKeep = std::size_t{1} << 20;

// This thread's Writer for encoding one outgoing message, emptied.
inline Writer& scratch_writer() {
  thread_local Writer w;
  w.clear();
  return w;
}
// Gives the writer's memory back if one message made it large.
inline void release_scratch(Writer& w) noexcept {
  if (w.capacity() > kScratchKeep) w.release();
}

// This thread's buffer for receiving one small message.
inline ByteBuffer& scratch_buffer() {
  thread_local ByteBuffer b;
  return b;
}

}  // namespace mproc::detail
