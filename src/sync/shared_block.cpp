// shared_block.cpp: the memory behind Value, Array, RawValue and RawArray
// (detail/shared_block.hpp).

#include "mproc/detail/shared_block.hpp"

#include <limits>
#include <new>
#include <string>

#include "mproc/errors.hpp"

namespace mproc::detail {

namespace {

constexpr std::size_t kInfoOffset = 64;
constexpr std::size_t kHeaderSize = 128;
static_assert(sizeof(LockCore) <= kInfoOffset && kInfoOffset + sizeof(BlockInfo) <= kHeaderSize);

std::size_t data_offset(std::size_t elem_align) {
  const std::size_t a = elem_align < 64 ? 64 : elem_align;
  return (kHeaderSize + a - 1) / a * a;
}

}  // namespace

SharedBlock create_shared_block(SyncKind kind, std::size_t elem_size, std::size_t elem_align, std::size_t count,
                                const char* who) {
  if (elem_align == 0 || (elem_align & (elem_align - 1)) != 0 || elem_align > 4096) {
    throw Error(std::string(who) + ": unsupported element alignment " + std::to_string(elem_align));
  }
  const std::size_t offset = data_offset(elem_align);
  if (elem_size != 0 && count > (std::numeric_limits<std::size_t>::max() / 2 - offset) / elem_size) {
    throw Error(std::string(who) + ": " + std::to_string(count) + " elements of " + std::to_string(elem_size) +
                " bytes do not fit in memory");
  }
  SharedBlock b;
  b.region = SharedRegion::create(offset + elem_size * count, who);
  b.lock = new (b.region->data()) LockCore{};
  b.lock->kind = SyncKind::rlock;
  auto* info = new (b.region->as<char>(kInfoOffset)) BlockInfo{};
  info->kind = kind;
  info->elem_size = static_cast<std::uint32_t>(elem_size);
  info->elem_align = static_cast<std::uint32_t>(elem_align);
  info->count = count;
  b.data = b.region->as<char>(offset);
  b.count = count;
  return b;
}

void encode_shared_block(Writer& w, SyncKind kind, const SharedBlock& block) {
  if (!block.region) throw_empty_handle("mproc: sending a shared Value or Array");
  w.write_pod(static_cast<std::uint32_t>(kind));
  block.region->encode(w);
}

SharedBlock decode_shared_block(Reader& r, SyncKind kind, std::size_t elem_size, std::size_t elem_align) {
  const auto got = r.read_pod<std::uint32_t>();
  if (got != static_cast<std::uint32_t>(kind)) {
    throw SerializationError("mproc: malformed message: a shared value of another kind (" + std::to_string(got) +
                             ") where kind " + std::to_string(static_cast<std::uint32_t>(kind)) + " was expected");
  }
  SharedBlock b;
  b.region = SharedRegion::decode(r);
  if (b.region->size() < kHeaderSize) {
    throw SerializationError("mproc: malformed message: a shared value's memory is too small for its header");
  }
  const auto* info = b.region->as<BlockInfo>(kInfoOffset);
  if (info->kind != kind || info->elem_size != elem_size || info->elem_align != elem_align) {
    throw SerializationError("mproc: malformed message: a shared value holds another type than the receiver "
                             "expects (element size " +
                             std::to_string(info->elem_size) + ", expected " + std::to_string(elem_size) + ")");
  }
  const std::size_t offset = data_offset(elem_align);
  const std::uint64_t count = info->count;
  if (offset > b.region->size() || (elem_size != 0 && count > (b.region->size() - offset) / elem_size)) {
    throw SerializationError("mproc: malformed message: a shared array's length exceeds its memory");
  }
  b.lock = b.region->as<LockCore>(0);
  if (b.lock->kind != SyncKind::rlock) {
    throw SerializationError("mproc: malformed message: a shared value's lock is damaged");
  }
  b.data = b.region->as<char>(offset);
  b.count = static_cast<std::size_t>(count);
  return b;
}

}  // namespace mproc::detail
