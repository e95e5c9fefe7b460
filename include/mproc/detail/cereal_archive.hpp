// detail/cereal_archive.hpp: cereal archives over mproc's own buffers.
//
// User types cross a process boundary through cereal: a type with a member or
// free serialize(Archive&) (or save/load) works with mproc exactly as it does
// with cereal's own archives. These two archives differ from
// cereal::BinaryOutputArchive/BinaryInputArchive in two ways that matter
// between processes:
//  - they write straight into the message buffer and read straight out of the
//    received bytes (no std::stringstream in between, so no extra copy);
//  - the input side is hardened: every read is bounds-checked, and every
//    length (cereal's SizeTag) is checked against the bytes that are left
//    before cereal allocates for it, so a forged length cannot make a worker
//    allocate more than the message it received.
#pragma once

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/bitset.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <type_traits>

#include "mproc/detail/buffer.hpp"

namespace mproc::detail {

class CerealOut : public cereal::OutputArchive<CerealOut, cereal::AllowEmptyClassElision> {
 public:
  explicit CerealOut(Writer& w) : OutputArchive(this), w_(&w) {}
  void saveBinary(const void* data, std::size_t n) { w_->write(data, n); }
  Writer& writer() noexcept { return *w_; }

 private:
  Writer* w_;
};

class CerealIn : public cereal::InputArchive<CerealIn, cereal::AllowEmptyClassElision> {
 public:
  explicit CerealIn(Reader& r) : InputArchive(this), r_(&r) {}
  void loadBinary(void* data, std::size_t n) { r_->read(data, n); }
  Reader& reader() noexcept { return *r_; }

 private:
  Reader* r_;
};

template <class T>
  requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(CerealOut& ar, const T& t) {
  ar.saveBinary(std::addressof(t), sizeof t);
}
template <class T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
void CEREAL_LOAD_FUNCTION_NAME(CerealIn& ar, T& t) {
  ar.loadBinary(std::addressof(t), sizeof t);
}
// A bool is one byte on the wire, and only 0 and 1 are bools: any other byte
// would make a bool object with an invalid value (undefined behaviour when
// read; cereal's own std::optional flag goes through here).
inline void CEREAL_LOAD_FUNCTION_NAME(CerealIn& ar, bool& t) {
  static_assert(sizeof(bool) == 1);
  unsigned char b = 0;
  ar.loadBinary(&b, 1);
  if (b > 1) throw SerializationError("mproc: malformed message: bad bool");
  t = b != 0;
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(CerealOut& ar, const cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(CerealIn& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(CerealOut& ar, const cereal::SizeTag<T>& t) {
  ar.writer().write_size(static_cast<std::uint64_t>(t.size));
}
// Every element cereal loads after a size takes at least one byte, so a size
// larger than the bytes left is a lie; refuse it before cereal resizes.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(CerealIn& ar, cereal::SizeTag<T>& t) {
  const std::size_t n = ar.reader().read_count(1);
  using Size = std::remove_reference_t<decltype(t.size)>;
  t.size = static_cast<Size>(n);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(CerealOut& ar, const cereal::BinaryData<T>& bd) {
  ar.saveBinary(bd.data, static_cast<std::size_t>(bd.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(CerealIn& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

}  // namespace mproc::detail

CEREAL_REGISTER_ARCHIVE(mproc::detail::CerealOut)
CEREAL_REGISTER_ARCHIVE(mproc::detail::CerealIn)
CEREAL_SETUP_ARCHIVE_TRAITS(mproc::detail::CerealIn, mproc::detail::CerealOut)
