// detail/shared_block.hpp: the memory behind Value, Array, RawValue and
// RawArray: a memfd region holding a header (an RLock and a description of
// the contents) followed by the elements.
//
//   offset 0    LockCore   the RLock of a Value/Array (unused by the Raw ones)
//   offset 64   BlockInfo  kind, element size and alignment, element count
//   offset D    elements   D = 128 rounded up to the element alignment
//
// The description is checked when a handle arrives from another process, so
// a message can never make a Value<double> out of an Array<char> or point
// past the end of the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/shm_region.hpp"
#include "mproc/detail/sync_core.hpp"

namespace mproc::detail {

struct BlockInfo {
  SyncKind kind;
  std::uint32_t elem_size;
  std::uint32_t elem_align;
  std::uint32_t reserved;
  std::uint64_t count;
};

// A handle's view of one block.
// Copying shares; a "moved-from" block stays a copy (handles have no
// separate moved-from state to get wrong).
struct SharedBlock {
  SharedBlock() = default;
  SharedBlock(const SharedBlock&) = default;
  SharedBlock& operator=(const SharedBlock&) = default;

  std::shared_ptr<SharedRegion> region;
  void* data = nullptr;     // the first element
  std::size_t count = 0;    // number of elements
  LockCore* lock = nullptr; // the block's RLock (also set for Raw kinds)
};

// A new zero-filled block for `count` elements (mproc::Error if its size
// overflows). `who` names the caller in errors and /proc listings.
SharedBlock create_shared_block(SyncKind kind, std::size_t elem_size, std::size_t elem_align, std::size_t count,
                                const char* who);

void encode_shared_block(Writer& w, SyncKind kind, const SharedBlock& block);
// Checks everything against the expected kind and element type; a
// mismatch is a SerializationError.
SharedBlock decode_shared_block(Reader& r, SyncKind kind, std::size_t elem_size, std::size_t elem_align);

}  // namespace mproc::detail
