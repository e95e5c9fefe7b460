// serialize.hpp: what can cross a process boundary, and how.
//
// mproc's answer to pickling. A value crosses as bytes (plus descriptors for
// handles); which types may cross is decided at compile time by the concept
// mproc::serializable, so a type that cannot cross is a compile error with a
// message that says what to do, never a run-time surprise.
//
// What crosses (API.md section 2):
//  - arithmetic types and enums; std::string; std::vector, std::deque,
//    std::list, std::array, std::map, std::multimap, std::unordered_map,
//    std::set, std::multiset, std::unordered_set, std::pair, std::tuple,
//    std::optional, std::variant, std::monostate, std::chrono::duration, of
//    serializable types;
//  - function pointers, as the identity of the function (never as an address:
//    see detail/function_id.hpp), and callables that are trivially copyable,
//    which covers lambdas without captures and lambdas whose captures are all
//    trivially copyable;
//  - trivially copyable structs, bitwise. A raw pointer inside such a struct,
//    or a reference captured by a lambda, is copied as a number: it means
//    nothing in the other process, and keeping that straight is the user's
//    responsibility;
//  - user types with a cereal serialize(Archive&) / save / load, member or
//    free: they go through cereal (see detail/cereal_archive.hpp);
//  - mproc's own handles (Queue, Lock, Value, SharedMemory, ...), which carry
//    descriptors and arrive as working handles to the same object.
// Bare raw pointers and references, std::function, and anything else are
// rejected by a static_assert.
//
// Trivially copyable data, and contiguous containers of it, are copied with
// one memcpy straight into the message and out of it: no per-element work
// and no intermediate buffer.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/cereal_archive.hpp"
#include "mproc/detail/function_id.hpp"
#include "mproc/errors.hpp"

namespace mproc {

namespace detail {

template <class T, template <class...> class Tmpl>
inline constexpr bool is_spec_v = false;
template <template <class...> class Tmpl, class... A>
inline constexpr bool is_spec_v<Tmpl<A...>, Tmpl> = true;

template <class T>
inline constexpr bool is_std_array_v = false;
template <class T, std::size_t N>
inline constexpr bool is_std_array_v<std::array<T, N>> = true;

template <class T>
inline constexpr bool is_duration_v = false;
template <class R, class P>
inline constexpr bool is_duration_v<std::chrono::duration<R, P>> = true;

// Sequence containers that are encoded as a count and their elements.
template <class T>
inline constexpr bool is_sequence_v =
    is_spec_v<T, std::vector> || is_spec_v<T, std::deque> || is_spec_v<T, std::list>;
template <class T>
inline constexpr bool is_map_v = is_spec_v<T, std::map> || is_spec_v<T, std::multimap> ||
                                 is_spec_v<T, std::unordered_map> ||
                                 is_spec_v<T, std::unordered_multimap>;
template <class T>
inline constexpr bool is_set_v = is_spec_v<T, std::set> || is_spec_v<T, std::multiset> ||
                                 is_spec_v<T, std::unordered_set> ||
                                 is_spec_v<T, std::unordered_multiset>;

template <class T>
constexpr bool is_bitwise_v_fwd();
// std::vector of plain data (not vector<bool>): one memcpy each way.
template <class T>
inline constexpr bool is_bitwise_vector_v = false;
template <class E, class A>
inline constexpr bool is_bitwise_vector_v<std::vector<E, A>> =
    !std::is_same_v<E, bool> && is_bitwise_v_fwd<E>();

// Non-owning views: trivially copyable, but only a pointer into this
// process's memory. Sent bitwise they would dangle in the receiver.
template <class T>
inline constexpr bool is_view_v = false;
template <class C, class Tr>
inline constexpr bool is_view_v<std::basic_string_view<C, Tr>> = true;
template <class E, std::size_t N>
inline constexpr bool is_view_v<std::span<E, N>> = true;

template <class T>
inline constexpr bool is_function_pointer_v =
    std::is_pointer_v<T> && std::is_function_v<std::remove_pointer_t<T>>;

// mproc's handles implement this pair: they write their state (and their
// descriptors) themselves.
template <class T>
concept has_mproc_hook = requires(const T& v, Writer& w, Reader& r) {
  v.mproc_encode(w);
  { T::mproc_decode(r) } -> std::same_as<T>;
};

// Does T declare cereal serialization of its own (member or free
// serialize/save/load, versioned or not, private members via
// cereal::access included)? Asked before cereal's own traits, which are
// then only instantiated for types that may need them.
template <class T>
concept declares_cereal = requires(T& t, const T& ct, CerealOut& o, CerealIn& i, std::uint32_t v) {
  cereal::access::member_serialize(o, t);
} || requires(T& t, CerealOut& o, std::uint32_t v) {
  cereal::access::member_serialize(o, t, v);
} || requires(const T& t, CerealOut& o) {
  cereal::access::member_save(o, t);
} || requires(const T& t, CerealOut& o, std::uint32_t v) {
  cereal::access::member_save(o, t, v);
} || requires(const T& t, const CerealOut& o) {
  cereal::access::member_save_minimal(o, t);
} || requires(T& t, CerealOut& o) {
  serialize(o, t);
} || requires(T& t, CerealOut& o, std::uint32_t v) {
  serialize(o, t, v);
} || requires(const T& t, CerealOut& o) {
  save(o, t);
} || requires(const T& t, CerealOut& o, std::uint32_t v) {
  save(o, t, v);
} || requires(const T& t, const CerealOut& o) {
  save_minimal(o, t);
};

// A user type that cereal knows how to save and load with mproc's archives.
// std::conjunction stops at the first false, so cereal's traits are never
// instantiated for plain types (which also sidesteps a g++ 12 problem with
// closure types seen through them).
template <class T>
inline constexpr bool cereal_knows_v =
    std::conjunction_v<std::is_class<T>, std::bool_constant<declares_cereal<T>>,
                       cereal::traits::is_output_serializable<T, CerealOut>,
                       cereal::traits::is_input_serializable<T, CerealIn>>;

// Plain data copied as its bytes: arithmetic, enums and trivially copyable
// classes that have no serialization of their own.
template <class T>
inline constexpr bool is_bitwise_v =
    std::is_arithmetic_v<T> || std::is_enum_v<T> ||
    (std::is_class_v<T> && std::is_trivially_copyable_v<T> && !has_mproc_hook<T> && !is_view_v<T> &&
     !cereal_knows_v<T> && !is_spec_v<T, std::pair> && !is_spec_v<T, std::tuple> &&
     !is_spec_v<T, std::optional> && !is_spec_v<T, std::variant> && !is_std_array_v<T> &&
     !is_duration_v<T>);

template <class T>
constexpr bool is_bitwise_v_fwd() {
  return is_bitwise_v<T>;
}

template <class T>
constexpr bool serializable_impl();

template <class Tuple, std::size_t... I>
constexpr bool all_serializable(std::index_sequence<I...>) {
  return (serializable_impl<std::tuple_element_t<I, Tuple>>() && ...);
}
template <class Variant, std::size_t... I>
constexpr bool variant_serializable(std::index_sequence<I...>) {
  return (serializable_impl<std::variant_alternative_t<I, Variant>>() && ...);
}

template <class T>
constexpr bool serializable_impl() {
  if constexpr (!std::is_same_v<T, std::remove_cv_t<T>>) {
    return serializable_impl<std::remove_cv_t<T>>();
  } else if constexpr (std::is_reference_v<T> || std::is_array_v<T>) {
    return false;
  } else if constexpr (has_mproc_hook<T>) {
    return true;
  } else if constexpr (is_function_pointer_v<T>) {
    return true;
  } else if constexpr (std::is_pointer_v<T> || std::is_member_pointer_v<T> || is_view_v<T>) {
    return false;
  } else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::monostate>) {
    return true;
  } else if constexpr (is_sequence_v<T> || is_set_v<T>) {
    return serializable_impl<typename T::value_type>();
  } else if constexpr (is_map_v<T>) {
    return serializable_impl<typename T::key_type>() && serializable_impl<typename T::mapped_type>();
  } else if constexpr (is_std_array_v<T>) {
    return serializable_impl<typename T::value_type>();
  } else if constexpr (is_spec_v<T, std::pair> || is_spec_v<T, std::tuple>) {
    return all_serializable<T>(std::make_index_sequence<std::tuple_size_v<T>>{});
  } else if constexpr (is_spec_v<T, std::optional>) {
    return serializable_impl<typename T::value_type>();
  } else if constexpr (is_spec_v<T, std::variant>) {
    return variant_serializable<T>(std::make_index_sequence<std::variant_size_v<T>>{});
  } else if constexpr (is_duration_v<T>) {
    return std::is_arithmetic_v<typename T::rep>;
  } else if constexpr (cereal_knows_v<T>) {
    return true;
  } else {
    return is_bitwise_v<T>;
  }
}

}  // namespace detail

// True when values of T can cross a process boundary (see the file comment).
template <class T>
concept serializable = detail::serializable_impl<T>();

namespace detail {

// Smallest number of bytes one encoded T can take; used to bound element
// counts read from the wire before anything is allocated for them.
template <class T>
constexpr std::size_t min_encoded_size() {
  if constexpr (is_bitwise_v<T>) {
    return sizeof(T);
  } else if constexpr (std::is_same_v<T, std::string> || is_sequence_v<T> || is_set_v<T> ||
                       is_map_v<T>) {
    return sizeof(std::uint64_t);
  } else if constexpr (is_spec_v<T, std::pair>) {
    return min_encoded_size<typename T::first_type>() + min_encoded_size<typename T::second_type>();
  } else {
    return 1;
  }
}

template <class T>
void encode_value(Writer& w, const T& v);
template <class T>
T decode_value(Reader& r);

template <class Tuple, std::size_t... I>
Tuple decode_tuple(Reader& r, std::index_sequence<I...>) {
  // A braced list evaluates its elements left to right, in wire order.
  return Tuple{decode_value<std::tuple_element_t<I, Tuple>>(r)...};
}

template <class Variant, std::size_t I = 0>
Variant decode_variant(Reader& r, std::size_t index) {
  if constexpr (I < std::variant_size_v<Variant>) {
    if (index == I) {
      return Variant(std::in_place_index<I>, decode_value<std::variant_alternative_t<I, Variant>>(r));
    }
    return decode_variant<Variant, I + 1>(r, index);
  } else {
    throw SerializationError("mproc: malformed message: variant index " + std::to_string(index) +
                             " out of range");
  }
}

template <class T>
void encode_value(Writer& w, const T& v) {
  if constexpr (has_mproc_hook<T>) {
    v.mproc_encode(w);
  } else if constexpr (is_function_pointer_v<T>) {
    encode_function(w, reinterpret_cast<void (*)()>(v));
  } else if constexpr (is_bitwise_v<T>) {
    w.write(std::addressof(v), sizeof v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    w.write_size(v.size());
    w.write(v.data(), v.size());
  } else if constexpr (std::is_same_v<T, std::monostate>) {
    // Nothing to say.
  } else if constexpr (is_bitwise_vector_v<T>) {
    w.write_size(v.size());
    w.write(v.data(), v.size() * sizeof(typename T::value_type));
  } else if constexpr (is_sequence_v<T> || is_set_v<T>) {
    w.write_size(v.size());
    for (const auto& e : v) encode_value(w, static_cast<const typename T::value_type&>(e));
  } else if constexpr (is_map_v<T>) {
    w.write_size(v.size());
    for (const auto& [k, m] : v) {
      encode_value(w, k);
      encode_value(w, m);
    }
  } else if constexpr (is_std_array_v<T>) {
    if constexpr (std::tuple_size_v<T> == 0) {
      // Nothing to say (and data() may be null).
    } else if constexpr (is_bitwise_v<typename T::value_type>) {
      w.write(v.data(), std::tuple_size_v<T> * sizeof(typename T::value_type));
    } else {
      for (const auto& e : v) encode_value(w, e);
    }
  } else if constexpr (is_spec_v<T, std::pair> || is_spec_v<T, std::tuple>) {
    std::apply([&w](const auto&... e) { (encode_value(w, e), ...); }, v);
  } else if constexpr (is_spec_v<T, std::optional>) {
    w.write_pod(static_cast<std::uint8_t>(v.has_value()));
    if (v) encode_value(w, *v);
  } else if constexpr (is_spec_v<T, std::variant>) {
    if (v.valueless_by_exception()) {
      throw SerializationError("mproc: cannot send a valueless std::variant");
    }
    w.write_pod(static_cast<std::uint32_t>(v.index()));
    std::visit([&w](const auto& e) { encode_value(w, e); }, v);
  } else if constexpr (is_duration_v<T>) {
    w.write_pod(v.count());
  } else if constexpr (cereal_knows_v<T>) {
    CerealOut ar(w);
    ar(v);
  } else {
    static_assert(serializable<T>, "mproc: unreachable: unserializable type reached encode");
  }
}

template <class T>
T decode_value(Reader& r) {
  if constexpr (has_mproc_hook<T>) {
    return T::mproc_decode(r);
  } else if constexpr (is_function_pointer_v<T>) {
    return reinterpret_cast<T>(decode_function(r));
  } else if constexpr (is_bitwise_v<T>) {
    // Trivially copyable types are implicit-lifetime: copying their bytes
    // into suitably aligned storage creates the object (C++20 [intro.object]).
    alignas(T) unsigned char raw[sizeof(T)];
    r.read(raw, sizeof(T));
    // Checked before the bytes are read as a bool: loading a bool whose
    // byte is not 0 or 1 is already undefined behaviour.
    if constexpr (std::is_same_v<T, bool>) {
      if (raw[0] > 1) throw SerializationError("mproc: malformed message: bad bool");
    }
    return *std::launder(reinterpret_cast<T*>(raw));
  } else if constexpr (std::is_same_v<T, std::string>) {
    const std::size_t n = r.read_count(1);
    auto bytes = r.take(n);
    return std::string(reinterpret_cast<const char*>(bytes.data()), n);
  } else if constexpr (std::is_same_v<T, std::monostate>) {
    return {};
  } else if constexpr (is_bitwise_vector_v<T>) {
    using E = typename T::value_type;
    const std::size_t n = r.read_count(sizeof(E));
    T out(n);
    r.read(out.data(), n * sizeof(E));
    return out;
  } else if constexpr (is_sequence_v<T>) {
    const std::size_t n = r.read_count(min_encoded_size<typename T::value_type>());
    T out;
    if constexpr (is_spec_v<T, std::vector>) out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.push_back(decode_value<typename T::value_type>(r));
    return out;
  } else if constexpr (is_set_v<T>) {
    const std::size_t n = r.read_count(min_encoded_size<typename T::value_type>());
    T out;
    for (std::size_t i = 0; i < n; ++i) out.insert(decode_value<typename T::value_type>(r));
    return out;
  } else if constexpr (is_map_v<T>) {
    using K = typename T::key_type;
    using M = typename T::mapped_type;
    const std::size_t n = r.read_count(min_encoded_size<K>() + min_encoded_size<M>());
    T out;
    for (std::size_t i = 0; i < n; ++i) {
      K k = decode_value<K>(r);
      M m = decode_value<M>(r);
      out.emplace(std::move(k), std::move(m));
    }
    return out;
  } else if constexpr (is_std_array_v<T>) {
    using E = typename T::value_type;
    if constexpr (std::tuple_size_v<T> == 0) {
      return T{};
    } else if constexpr (is_bitwise_v<E>) {
      T out;
      r.read(out.data(), std::tuple_size_v<T> * sizeof(E));
      return out;
    } else {
      return [&r]<std::size_t... I>(std::index_sequence<I...>) {
        return T{((void)I, decode_value<E>(r))...};
      }(std::make_index_sequence<std::tuple_size_v<T>>{});
    }
  } else if constexpr (is_spec_v<T, std::pair> || is_spec_v<T, std::tuple>) {
    return decode_tuple<T>(r, std::make_index_sequence<std::tuple_size_v<T>>{});
  } else if constexpr (is_spec_v<T, std::optional>) {
    const auto has = r.read_pod<std::uint8_t>();
    if (has > 1) throw SerializationError("mproc: malformed message: bad optional flag");
    if (!has) return T{};
    return T(decode_value<typename T::value_type>(r));
  } else if constexpr (is_spec_v<T, std::variant>) {
    return decode_variant<T>(r, r.read_pod<std::uint32_t>());
  } else if constexpr (is_duration_v<T>) {
    return T(r.read_pod<typename T::rep>());
  } else if constexpr (cereal_knows_v<T>) {
    static_assert(std::is_default_constructible_v<T>,
                  "mproc: a type loaded through cereal must be default constructible "
                  "(or use cereal's load_and_construct)");
    T out;
    try {
      CerealIn ar(r);
      ar(out);
    } catch (const cereal::Exception& e) {
      throw SerializationError(std::string("mproc: malformed message: ") + e.what());
    }
    return out;
  } else {
    static_assert(serializable<T>, "mproc: unreachable: unserializable type reached decode");
  }
}

// The one place that says why a type was rejected. Every public entry point
// that sends values (Process, Pool, Queue, Pipe, ...) asserts through it, so
// the compiler's instantiation trace below the message names the type.
//
// It is a class template on purpose: `static_assert(serializable_check<T>::ok)`
// in a function body is evaluated right there, when that body is
// instantiated. (A helper *function* would be instantiated at the end of the
// translation unit, and g++ 12 can answer is_trivially_copyable differently
// for a closure type once its move constructor has been used in between.)
template <class T>
struct serializable_check {
  static_assert(serializable<T>,
                "mproc: this type cannot cross a process boundary. Use values mproc can send: "
                "arithmetic types, enums, std::string, standard containers, pair/tuple/optional/"
                "variant of those, trivially copyable structs, function pointers, lambdas whose "
                "captures are all trivially copyable (capture by value; no std::string or "
                "std::vector captures: pass those as arguments instead), or give your type a "
                "cereal serialize(Archive&) function. Raw pointers, references and "
                "std::function, std::string_view and std::span cannot be sent (send std::string "
                "or std::vector). The offending type is in the instantiation "
                "trace below.");
  static constexpr bool ok = true;
};

}  // namespace detail

// Encodes `value` at the end of `w` (bytes, and descriptors for handles).
template <class T>
void encode(detail::Writer& w, const T& value) {
  static_assert(detail::serializable_check<T>::ok);
  detail::encode_value(w, value);
}

// Decodes one T from `r`. Throws SerializationError on malformed, truncated
// or hostile input; never reads past the message, never allocates more than
// a small multiple of the bytes that are left.
template <class T>
T decode(detail::Reader& r) {
  static_assert(detail::serializable_check<T>::ok);
  return detail::decode_value<T>(r);
}

// Convenience: one value to a fresh byte vector, and back. `from_bytes`
// requires the whole input to be consumed.
template <class T>
std::vector<std::byte> to_bytes(const T& value) {
  detail::Writer w;
  encode(w, value);
  return w.to_vector();
}
template <class T>
T from_bytes(std::span<const std::byte> bytes) {
  detail::Reader r(bytes);
  T out = decode<T>(r);
  if (!r.at_end()) {
    throw SerializationError("mproc: malformed message: " + std::to_string(r.remaining()) +
                             " trailing bytes after the value");
  }
  return out;
}

}  // namespace mproc
