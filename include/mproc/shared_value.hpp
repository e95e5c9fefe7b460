// shared_value.hpp: mproc::Value, Array, RawValue and RawArray, typed data
// in memory shared between processes (Python's multiprocessing.Value,
// Array, RawValue, RawArray).
//
//   void add(mproc::Value<int> counter) {
//     for (int i = 0; i < 10000; ++i) {
//       std::lock_guard guard(counter.get_lock());
//       counter.value() += 1;                  // or counter.fetch_add(1), lock-free
//     }
//   }
//   mproc::Value<int> counter(0);
//   mproc::Array<double> samples(1000);         // 1000 zeros; or samples({1.0, 2.0})
//
// The data lives in a memfd mapping (nothing in /dev/shm) that every
// process holding a handle maps; handles are copyable and every copy, here
// or in another process, refers to the same data. Pass them to a Process or
// a pool task as ordinary arguments, under any start method.
//
// T must be trivially copyable: the bytes are shared as they are. A pointer
// inside T points into one process's memory and means nothing in another;
// keeping that straight is the user's responsibility.
//
// Value and Array carry an RLock (get_lock(), as in Python) that guards
// compound updates; they are themselves Lockable (lock/unlock/try_lock,
// acquire/release), so `std::lock_guard g(v)` works too. load() and store()
// take the lock. value() and operator[] give a plain reference into shared
// memory: use it under the lock. For types that std::atomic_ref handles
// without a lock (integers, pointers, floating point, small trivially
// copyable structs) the atomic members (atomic(), fetch_add, ...) are
// lock-free and need no lock. Don't mix them with concurrent plain writes
// through value() or operator[] (even under the lock): a plain write races
// with a concurrent atomic one. load() and store() are safe with both.
//
// The lock survives its holder's death like any mproc lock (lock.hpp):
// get_lock().previous_owner_died() then says the data may be half-updated.
// RawValue and RawArray have no lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/shared_block.hpp"
#include "mproc/lock.hpp"

namespace mproc {

namespace detail {

// The compile-time check of the element type, with a message saying what to
// do (one place for the four class templates).
template <class T>
struct shared_type_check {
  static_assert(!std::is_reference_v<T>, "mproc::Value/Array/RawValue/RawArray<T>: T cannot be a reference");
  static_assert(std::is_trivially_copyable_v<T>,
                "mproc::Value/Array/RawValue/RawArray<T>: T must be trivially copyable, because its bytes "
                "live in shared memory that other processes map as they are (no constructors, destructors "
                "or pointers into one process's heap). Use a plain struct of numbers and fixed-size "
                "arrays, or send the data through a mproc::Queue instead.");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T>,
                "mproc::Value/Array/RawValue/RawArray<T>: T must not be const or volatile");
  static_assert(alignof(T) <= 4096, "mproc::Value/Array/RawValue/RawArray<T>: T's alignment exceeds a page");
  static constexpr bool ok = true;
};

// Types that std::atomic_ref handles without a lock in every process.
template <class T>
inline constexpr bool lock_free_atomic_v = std::atomic_ref<T>::is_always_lock_free;

template <class T>
inline constexpr bool arithmetic_atomic_v =
    lock_free_atomic_v<T> && (std::is_integral_v<T> || std::is_floating_point_v<T>) && !std::is_same_v<T, bool>;

template <class T>
inline constexpr bool bitwise_atomic_v = lock_free_atomic_v<T> && std::is_integral_v<T> && !std::is_same_v<T, bool>;

// The one-element part shared by Value and RawValue.
template <class T, SyncKind Kind>
class ValueBase {
  static_assert(shared_type_check<T>::ok);

 public:
  // A reference to the shared value. Use it under the lock (Value), or
  // coordinate otherwise (RawValue): it is a plain, non-atomic reference.
  T& value() const { return *ptr("value"); }

  // An atomic view of the value, for types atomic_ref handles lock-free.
  std::atomic_ref<T> atomic() const
    requires lock_free_atomic_v<T>
  {
    return std::atomic_ref<T>(*ptr("atomic"));
  }
  // Lock-free read-modify-write operations (no lock taken); each returns
  // the previous value, like std::atomic.
  T fetch_add(T arg, std::memory_order order = std::memory_order_seq_cst) const
    requires arithmetic_atomic_v<T>
  {
    return atomic().fetch_add(arg, order);
  }
  T fetch_sub(T arg, std::memory_order order = std::memory_order_seq_cst) const
    requires arithmetic_atomic_v<T>
  {
    return atomic().fetch_sub(arg, order);
  }
  T fetch_and(T arg, std::memory_order order = std::memory_order_seq_cst) const
    requires bitwise_atomic_v<T>
  {
    return atomic().fetch_and(arg, order);
  }
  T fetch_or(T arg, std::memory_order order = std::memory_order_seq_cst) const
    requires bitwise_atomic_v<T>
  {
    return atomic().fetch_or(arg, order);
  }
  T fetch_xor(T arg, std::memory_order order = std::memory_order_seq_cst) const
    requires bitwise_atomic_v<T>
  {
    return atomic().fetch_xor(arg, order);
  }
  T exchange(T desired, std::memory_order order = std::memory_order_seq_cst) const
    requires lock_free_atomic_v<T>
  {
    return atomic().exchange(desired, order);
  }
  bool compare_exchange(T& expected, T desired, std::memory_order order = std::memory_order_seq_cst) const
    requires lock_free_atomic_v<T>
  {
    return atomic().compare_exchange_strong(expected, desired, order);
  }

  // False only for a moved-from handle.
  explicit operator bool() const noexcept { return block_.region != nullptr; }

  void mproc_encode(Writer& w) const { encode_shared_block(w, Kind, block_); }

 protected:
  ValueBase(const T& init, const char* who) : block_(create_shared_block(Kind, sizeof(T), alignof(T), 1, who)) {
    ::new (block_.data) T(init);
  }
  explicit ValueBase(SharedBlock block) noexcept : block_(std::move(block)) {}
  static SharedBlock decode_block(Reader& r) { return decode_shared_block(r, Kind, sizeof(T), alignof(T)); }

  T* ptr(const char* what) const {
    if (block_.data == nullptr) throw_empty_handle(what);
    return std::launder(static_cast<T*>(block_.data));
  }
  // Reads or writes the whole value; atomically where the type allows, so
  // that a reader never sees half of a concurrent lock-free update.
  T read() const {
    if constexpr (lock_free_atomic_v<T>) {
      return std::atomic_ref<T>(*ptr("load")).load();
    } else {
      return *ptr("load");
    }
  }
  void write(const T& v) const {
    if constexpr (lock_free_atomic_v<T>) {
      std::atomic_ref<T>(*ptr("store")).store(v);
    } else {
      *ptr("store") = v;
    }
  }

  SharedBlock block_;
};

// The many-element part shared by Array and RawArray.
template <class T, SyncKind Kind>
class ArrayBase {
  static_assert(shared_type_check<T>::ok);

 public:
  using value_type = T;
  using size_type = std::size_t;
  using iterator = T*;
  using const_iterator = T*;

  std::size_t size() const noexcept { return block_.count; }
  bool empty() const noexcept { return block_.count == 0; }
  // Plain references into shared memory: use them under the lock (Array)
  // or coordinate otherwise (RawArray).
  T& operator[](std::size_t i) const noexcept { return data()[i]; }
  // Bounds-checked: std::out_of_range past the end.
  T& at(std::size_t i) const {
    if (i >= block_.count) {
      throw std::out_of_range("mproc::Array::at: index " + std::to_string(i) + " >= size " +
                              std::to_string(block_.count));
    }
    return data()[i];
  }
  T* data() const noexcept { return std::launder(static_cast<T*>(block_.data)); }
  T* begin() const noexcept { return data(); }
  T* end() const noexcept { return data() + block_.count; }
  std::span<T> span() const noexcept { return {data(), block_.count}; }

  // An atomic view of element i, for types atomic_ref handles lock-free.
  std::atomic_ref<T> atomic(std::size_t i) const
    requires lock_free_atomic_v<T>
  {
    return std::atomic_ref<T>(at(i));
  }

  void mproc_encode(Writer& w) const { encode_shared_block(w, Kind, block_); }

 protected:
  ArrayBase() noexcept = default;
  ArrayBase(std::size_t n, const char* who) : block_(create_shared_block(Kind, sizeof(T), alignof(T), n, who)) {
    // The memfd starts zero-filled; a type with a non-trivial default
    // constructor gets it run instead (so `struct P { int x = 5; }` holds 5).
    if constexpr (!std::is_trivially_default_constructible_v<T> && std::is_default_constructible_v<T>) {
      for (std::size_t i = 0; i < n; ++i) ::new (data() + i) T();
    }
  }
  ArrayBase(std::size_t n, const T& fill, const char* who)
      : block_(create_shared_block(Kind, sizeof(T), alignof(T), n, who)) {
    for (std::size_t i = 0; i < n; ++i) ::new (static_cast<T*>(block_.data) + i) T(fill);
  }
  ArrayBase(std::span<const T> values, const char* who)
      : block_(create_shared_block(Kind, sizeof(T), alignof(T), values.size(), who)) {
    if (!values.empty()) std::memcpy(block_.data, values.data(), values.size_bytes());
  }
  explicit ArrayBase(SharedBlock block) noexcept : block_(std::move(block)) {}
  static SharedBlock decode_block(Reader& r) { return decode_shared_block(r, Kind, sizeof(T), alignof(T)); }

  SharedBlock block_;
};

}  // namespace detail

// A T in shared memory with an RLock (Python's Value(typecode, x)).
template <class T>
class Value : public detail::ValueBase<T, detail::SyncKind::value> {
  using Base = detail::ValueBase<T, detail::SyncKind::value>;

 public:
  // A value-initialised T (0 for numbers).
  Value()
    requires std::is_default_constructible_v<T>
      : Value(T{}) {}
  explicit Value(const T& init) : Base(init, "Value"), lock_(adopt_lock(this->block_)) {}

  // The value, read under the lock.
  T load() const {
    std::lock_guard guard(lock_);
    return this->read();
  }
  // Replaces the value under the lock.
  void store(const T& v) const {
    std::lock_guard guard(lock_);
    this->write(v);
  }

  // The RLock that guards the value (Python's get_lock()).
  RLock& get_lock() const noexcept { return lock_; }
  // The lock's operations, so the Value itself works with std::lock_guard.
  void acquire() const { lock_.acquire(); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) const {
    return lock_.acquire(timeout);
  }
  void release() const { lock_.release(); }
  void lock() const { lock_.lock(); }
  bool try_lock() const { return lock_.try_lock(); }
  void unlock() const { lock_.unlock(); }

  static Value mproc_decode(detail::Reader& r) { return Value(Base::decode_block(r)); }

 private:
  explicit Value(detail::SharedBlock block) : Base(std::move(block)), lock_(adopt_lock(this->block_)) {}
  static RLock adopt_lock(const detail::SharedBlock& b) { return RLock(detail::AdoptCore{}, b.region, b.lock); }

  mutable RLock lock_;
};

// A T in shared memory without a lock (Python's RawValue).
template <class T>
class RawValue : public detail::ValueBase<T, detail::SyncKind::raw_value> {
  using Base = detail::ValueBase<T, detail::SyncKind::raw_value>;

 public:
  RawValue()
    requires std::is_default_constructible_v<T>
      : RawValue(T{}) {}
  explicit RawValue(const T& init) : Base(init, "RawValue") {}

  // Plain (or, where the type allows, atomic) whole-value read and write.
  T load() const { return this->read(); }
  void store(const T& v) const { this->write(v); }

  static RawValue mproc_decode(detail::Reader& r) { return RawValue(Base::decode_block(r)); }

 private:
  explicit RawValue(detail::SharedBlock block) noexcept : Base(std::move(block)) {}
};

// n Ts in shared memory with an RLock (Python's Array(typecode, n) or
// Array(typecode, sequence)).
template <class T>
class Array : public detail::ArrayBase<T, detail::SyncKind::array> {
  using Base = detail::ArrayBase<T, detail::SyncKind::array>;

 public:
  // An empty handle: size() is 0 and the lock operations throw. Assign a
  // real array to it.
  Array() noexcept = default;
  // n value-initialised elements (zeros for numbers).
  explicit Array(std::size_t n)
    requires std::is_default_constructible_v<T>
      : Base(n, "Array"), lock_(adopt_lock(this->block_)) {}
  // n copies of `fill`.
  Array(std::size_t n, const T& fill) : Base(n, fill, "Array"), lock_(adopt_lock(this->block_)) {}
  // A copy of the given elements: Array<double> a({1.0, 2.0}).
  Array(std::initializer_list<T> values)
      : Base(std::span<const T>(values.begin(), values.size()), "Array"), lock_(adopt_lock(this->block_)) {}
  explicit Array(std::span<const T> values) : Base(values, "Array"), lock_(adopt_lock(this->block_)) {}

  // The RLock that guards the elements (Python's get_lock()).
  RLock& get_lock() const { return lock_; }
  void acquire() const { lock_.acquire(); }
  template <class Rep, class Period>
  bool acquire(std::chrono::duration<Rep, Period> timeout) const {
    return lock_.acquire(timeout);
  }
  void release() const { lock_.release(); }
  void lock() const { lock_.lock(); }
  bool try_lock() const { return lock_.try_lock(); }
  void unlock() const { lock_.unlock(); }

  explicit operator bool() const noexcept { return this->block_.region != nullptr; }

  static Array mproc_decode(detail::Reader& r) { return Array(Base::decode_block(r)); }

 private:
  explicit Array(detail::SharedBlock block) : Base(std::move(block)), lock_(adopt_lock(this->block_)) {}
  static RLock adopt_lock(const detail::SharedBlock& b) { return RLock(detail::AdoptCore{}, b.region, b.lock); }

  mutable RLock lock_{detail::AdoptCore{}, nullptr, nullptr};
};

// n Ts in shared memory without a lock (Python's RawArray).
template <class T>
class RawArray : public detail::ArrayBase<T, detail::SyncKind::raw_array> {
  using Base = detail::ArrayBase<T, detail::SyncKind::raw_array>;

 public:
  RawArray() noexcept = default;
  explicit RawArray(std::size_t n)
    requires std::is_default_constructible_v<T>
      : Base(n, "RawArray") {}
  RawArray(std::size_t n, const T& fill) : Base(n, fill, "RawArray") {}
  RawArray(std::initializer_list<T> values) : Base(std::span<const T>(values.begin(), values.size()), "RawArray") {}
  explicit RawArray(std::span<const T> values) : Base(values, "RawArray") {}

  explicit operator bool() const noexcept { return this->block_.region != nullptr; }

  static RawArray mproc_decode(detail::Reader& r) { return RawArray(Base::decode_block(r)); }

 private:
  explicit RawArray(detail::SharedBlock block) noexcept : Base(std::move(block)) {}
};

}  // namespace mproc
