// test_serialize.cpp: tests of serialize.hpp, what crosses a process
// boundary (API.md section 2).
//
// Two halves: every kind of value listed in serialize.hpp's file comment
// survives a round trip unchanged; and bytes that did not come from
// encode() (truncated, forged, hostile) are refused with
// mproc::SerializationError, never a crash, a hang or a huge allocation.
// (Under the ASan build the second half also proves that nothing is read
// out of bounds on the way to the error.)
//
// The claim that contiguous plain data is copied with one memcpy is about
// speed and is not timed here.

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "mproc/detail/registry.hpp"
#include "mproc/serialize.hpp"

// A function with external linkage, to travel as a function pointer.
int serialize_test_twice(int x);
int serialize_test_twice(int x) { return 2 * x; }

namespace {

using Bytes = std::vector<std::byte>;

// ------------------------------------------------------------ test types ---

enum class Color : std::uint8_t { red = 1, green = 2, blue = 200 };
enum Plain { kPlainA, kPlainB = 100000 };

// Trivially copyable: crosses bitwise.
struct Point {
  int x;
  double y;
  char tag;
  friend bool operator==(const Point&, const Point&) = default;
};
static_assert(std::is_trivially_copyable_v<Point>);

// cereal, member serialize.
struct MemberSerialize {
  std::string name;
  std::vector<int> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, values);
  }
  friend bool operator==(const MemberSerialize&, const MemberSerialize&) = default;
};

// cereal, private member serialize reached through cereal::access.
class PrivateSerialize {
 public:
  PrivateSerialize() = default;
  explicit PrivateSerialize(std::string s) : secret_(std::move(s)) {}
  const std::string& secret() const { return secret_; }

 private:
  friend class cereal::access;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(secret_);
  }
  std::string secret_;
};

// cereal, free serialize found by argument-dependent lookup.
struct FreeSerialize {
  std::string s;
  int n = 0;
  friend bool operator==(const FreeSerialize&, const FreeSerialize&) = default;
};
template <class Archive>
void serialize(Archive& ar, FreeSerialize& v) {
  ar(v.s, v.n);
}

// cereal, separate member save and load.
struct SaveLoad {
  std::map<std::string, int> m;
  template <class Archive>
  void save(Archive& ar) const {
    ar(m);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(m);
  }
  friend bool operator==(const SaveLoad&, const SaveLoad&) = default;
};

// cereal, free save and load.
struct FreeSaveLoad {
  std::vector<std::string> words;
  friend bool operator==(const FreeSaveLoad&, const FreeSaveLoad&) = default;
};
template <class Archive>
void save(Archive& ar, const FreeSaveLoad& v) {
  ar(v.words);
}
template <class Archive>
void load(Archive& ar, FreeSaveLoad& v) {
  ar(v.words);
}

// Not serializable: a std::string member and no serialize.
struct NotSerializable {
  std::string s;
};

template <class T>
T round_trip(const T& value) {
  const Bytes bytes = mproc::to_bytes(value);
  return mproc::from_bytes<T>(bytes);
}

template <class T>
void expect_round_trip(const T& value) {
  EXPECT_EQ(round_trip(value), value);
}

// ------------------------------------------------- compile-time contract ---

static_assert(mproc::serializable<int>);
static_assert(mproc::serializable<Color>);
static_assert(mproc::serializable<std::string>);
static_assert(mproc::serializable<Point>);
static_assert(mproc::serializable<MemberSerialize>);
static_assert(mproc::serializable<PrivateSerialize>);
static_assert(mproc::serializable<FreeSerialize>);
static_assert(mproc::serializable<SaveLoad>);
static_assert(mproc::serializable<FreeSaveLoad>);
static_assert(mproc::serializable<int (*)(int)>);
static_assert(mproc::serializable<std::map<std::string, std::vector<std::optional<Point>>>>);
static_assert(!mproc::serializable<int*>);
static_assert(!mproc::serializable<const char*>);
static_assert(!mproc::serializable<int&>);
static_assert(!mproc::serializable<std::function<void()>>);
static_assert(!mproc::serializable<NotSerializable>);
static_assert(!mproc::serializable<std::vector<int*>>);
static_assert(!mproc::serializable<std::tuple<int, std::function<int()>>>);
static_assert(!mproc::serializable<std::optional<NotSerializable>>);

// ------------------------------------------------------------ round trips ---

TEST(Serialize, ArithmeticTypesRoundTrip) {
  expect_round_trip(true);
  expect_round_trip(false);
  expect_round_trip('x');
  expect_round_trip(static_cast<signed char>(-5));
  expect_round_trip(static_cast<unsigned char>(250));
  expect_round_trip(std::int16_t{-12345});
  expect_round_trip(std::uint16_t{65000});
  expect_round_trip(std::numeric_limits<std::int32_t>::min());
  expect_round_trip(std::numeric_limits<std::uint32_t>::max());
  expect_round_trip(std::numeric_limits<std::int64_t>::min());
  expect_round_trip(std::numeric_limits<std::uint64_t>::max());
  expect_round_trip(3.5f);
  expect_round_trip(-0.1);
  expect_round_trip(std::numeric_limits<double>::infinity());
  expect_round_trip(1.25L);
  EXPECT_TRUE(std::isnan(round_trip(std::numeric_limits<double>::quiet_NaN())));
}

TEST(Serialize, EnumsRoundTrip) {
  expect_round_trip(Color::blue);
  expect_round_trip(Color::red);
  expect_round_trip(kPlainB);
}

TEST(Serialize, StringsRoundTrip) {
  expect_round_trip(std::string());
  expect_round_trip(std::string("hello"));
  expect_round_trip(std::string("with\0nul\0bytes", 14));
  expect_round_trip(std::string("\xc3\xa9\xe2\x82\xac non-ASCII"));
  expect_round_trip(std::string(1 << 20, 'z'));
}

TEST(Serialize, SequenceContainersRoundTrip) {
  expect_round_trip(std::vector<int>{});
  expect_round_trip(std::vector<int>{1, 2, 3, -4});
  expect_round_trip(std::vector<double>(1000, 0.5));
  expect_round_trip(std::vector<std::string>{"a", "", "ccc"});
  expect_round_trip(std::vector<std::vector<int>>{{}, {1}, {2, 3}});
  expect_round_trip(std::vector<Point>{{1, 2.0, 'a'}, {3, 4.5, 'b'}});
  expect_round_trip(std::deque<int>{5, 6, 7});
  expect_round_trip(std::deque<std::string>{});
  expect_round_trip(std::list<std::string>{"x", "y"});
  expect_round_trip(std::list<int>{});
}

TEST(Serialize, VectorOfBoolRoundTrips) {
  expect_round_trip(std::vector<bool>{});
  expect_round_trip(std::vector<bool>{true});
  expect_round_trip(std::vector<bool>{true, false, true, true, false, false, false, true, true});
  std::vector<bool> big(1001);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = (i % 3) == 0;
  expect_round_trip(big);
}

TEST(Serialize, AssociativeContainersRoundTrip) {
  expect_round_trip(std::map<std::string, int>{});
  expect_round_trip(std::map<std::string, int>{{"one", 1}, {"two", 2}});
  expect_round_trip(std::multimap<int, std::string>{{1, "a"}, {1, "b"}, {2, "c"}});
  expect_round_trip(std::unordered_map<int, std::vector<int>>{{1, {1}}, {2, {}}, {3, {3, 3}}});
  expect_round_trip(std::unordered_multimap<int, int>{{1, 1}, {1, 2}});
  expect_round_trip(std::set<std::string>{"b", "a", "c"});
  expect_round_trip(std::multiset<int>{3, 3, 1});
  expect_round_trip(std::unordered_set<std::string>{"p", "q"});
  expect_round_trip(std::unordered_multiset<int>{});
}

TEST(Serialize, ArraysRoundTrip) {
  expect_round_trip(std::array<int, 4>{1, 2, 3, 4});
  expect_round_trip(std::array<Point, 3>{{{1, 1.5, 'a'}, {2, 2.5, 'b'}, {3, 3.5, 'c'}}});
  expect_round_trip(std::array<std::string, 2>{"left", "right"});
  expect_round_trip(std::array<MemberSerialize, 2>{{{"a", {1}}, {"b", {2, 3}}}});
}

TEST(Serialize, EmptyStdArrayRoundTrips) {
  expect_round_trip(std::array<int, 0>{});
  expect_round_trip(std::array<std::string, 0>{});
}

TEST(Serialize, PairsAndTuplesRoundTrip) {
  expect_round_trip(std::pair<std::string, int>{"k", 7});
  expect_round_trip(std::tuple<>{});
  expect_round_trip(std::tuple<int, std::string, double, Color>{1, "two", 3.0, Color::green});
  expect_round_trip(std::tuple<std::vector<int>, std::pair<int, int>>{{1, 2}, {3, 4}});
}

TEST(Serialize, OptionalRoundTrips) {
  expect_round_trip(std::optional<int>{});
  expect_round_trip(std::optional<int>{0});
  expect_round_trip(std::optional<std::string>{"there"});
  expect_round_trip(std::optional<std::vector<std::optional<int>>>{{std::nullopt, 1, std::nullopt}});
}

TEST(Serialize, VariantRoundTripsEveryAlternative) {
  using V = std::variant<std::monostate, int, std::string, std::vector<double>, Point>;
  expect_round_trip(V{});
  expect_round_trip(V{42});
  expect_round_trip(V{std::string("text")});
  expect_round_trip(V{std::vector<double>{1.0, 2.0}});
  expect_round_trip(V{Point{7, 8.0, 'p'}});
  // Same type twice: the index, not the type, is what travels.
  using Twice = std::variant<int, int>;
  const Twice second(std::in_place_index<1>, 5);
  const Twice back = round_trip(second);
  EXPECT_EQ(back.index(), 1u);
  EXPECT_EQ(std::get<1>(back), 5);
}

TEST(Serialize, DurationsRoundTrip) {
  using namespace std::chrono_literals;
  expect_round_trip(1500ms);
  expect_round_trip(std::chrono::nanoseconds(-7));
  expect_round_trip(std::chrono::hours(3));
  expect_round_trip(std::chrono::duration<double>(0.25));
  expect_round_trip(std::chrono::duration<float, std::milli>(2.5f));
}

TEST(Serialize, TriviallyCopyableStructsRoundTrip) {
  expect_round_trip(Point{-1, 1e300, '\n'});
  struct Nested {
    Point p[2];
    std::uint8_t flags;
  };
  const Nested n{{{1, 2.0, 'a'}, {3, 4.0, 'b'}}, 0x5a};
  const Nested back = round_trip(n);
  EXPECT_EQ(back.p[0], n.p[0]);
  EXPECT_EQ(back.p[1], n.p[1]);
  EXPECT_EQ(back.flags, n.flags);
}

TEST(Serialize, CerealUserTypesRoundTrip) {
  expect_round_trip(MemberSerialize{"member", {1, 2, 3}});
  expect_round_trip(MemberSerialize{});
  EXPECT_EQ(round_trip(PrivateSerialize("hidden")).secret(), "hidden");
  expect_round_trip(FreeSerialize{"free", -9});
  expect_round_trip(SaveLoad{{{"a", 1}, {"b", 2}}});
  expect_round_trip(FreeSaveLoad{{"x", "", "yz"}});
  // User types nested in standard containers, and the other way round.
  expect_round_trip(std::vector<FreeSerialize>{{"a", 1}, {"b", 2}});
  expect_round_trip(std::map<int, std::optional<SaveLoad>>{{1, SaveLoad{{{"k", 3}}}}, {2, std::nullopt}});
}

TEST(Serialize, NestedContainersRoundTrip) {
  using Deep = std::map<std::string, std::vector<std::optional<std::variant<int, std::string>>>>;
  Deep d;
  d["a"] = {1, std::nullopt, std::string("s")};
  d["empty"] = {};
  d[""] = {std::nullopt};
  expect_round_trip(d);
  expect_round_trip(std::vector<std::map<int, std::set<std::string>>>{{{1, {"a", "b"}}}, {}, {{2, {}}}});
  expect_round_trip(std::tuple<std::list<std::deque<int>>, std::array<std::vector<bool>, 2>>{
      {{1, 2}, {}}, {std::vector<bool>{true}, std::vector<bool>{}}});
}

TEST(Serialize, FunctionPointersRoundTrip) {
  int (*f)(int) = &serialize_test_twice;
  const auto back = round_trip(f);
  EXPECT_EQ(back, f);
  EXPECT_EQ(back(21), 42);
  int (*none)(int) = nullptr;
  EXPECT_EQ(round_trip(none), nullptr);
}

TEST(Serialize, LambdasRoundTrip) {
  auto captureless = [](int x) { return x + 1; };
  EXPECT_EQ(round_trip(captureless)(1), 2);

  const int k = 5;
  const double d = 0.5;
  const Point p{10, 0.25, 'q'};
  auto capturing = [k, d, p](int x) { return x * k + d + p.x + p.y; };
  const auto back = round_trip(capturing);
  EXPECT_DOUBLE_EQ(back(2), capturing(2));
  EXPECT_DOUBLE_EQ(back(2), 2 * 5 + 0.5 + 10 + 0.25);
}

TEST(Serialize, SeveralValuesInOneMessageComeOutInOrder) {
  mproc::detail::Writer w;
  mproc::encode(w, 7);
  mproc::encode(w, std::string("middle"));
  mproc::encode(w, std::vector<int>{1, 2});
  mproc::detail::Reader r(w.bytes());
  EXPECT_EQ(mproc::decode<int>(r), 7);
  EXPECT_EQ(mproc::decode<std::string>(r), "middle");
  EXPECT_EQ(mproc::decode<std::vector<int>>(r), (std::vector<int>{1, 2}));
  EXPECT_TRUE(r.at_end());
}

// ------------------------------------------------------- malformed input ---

using Complex = std::tuple<std::map<std::string, std::vector<std::optional<std::variant<int, std::string>>>>,
                           std::vector<bool>, std::array<Point, 2>, MemberSerialize,
                           std::chrono::milliseconds, std::list<std::string>, Color, FreeSerialize,
                           SaveLoad, PrivateSerialize, int (*)(int), std::optional<double>, bool>;

Complex make_complex() {
  std::map<std::string, std::vector<std::optional<std::variant<int, std::string>>>> m;
  m["first"] = {1, std::nullopt, std::string("two")};
  m["second"] = {};
  return Complex{m,
                 std::vector<bool>{true, false, true},
                 std::array<Point, 2>{{{1, 2.0, 'a'}, {3, 4.0, 'b'}}},
                 MemberSerialize{"member", {4, 5, 6}},
                 std::chrono::milliseconds(1234),
                 std::list<std::string>{"l1", "l2"},
                 Color::blue,
                 FreeSerialize{"free", 8},
                 SaveLoad{{{"k", 9}}},
                 PrivateSerialize("secret"),
                 &serialize_test_twice,
                 2.5,
                 true};
}

TEST(Serialize, ComplexValueRoundTrips) {
  const Complex c = make_complex();
  const Complex back = round_trip(c);
  EXPECT_EQ(std::get<0>(back), std::get<0>(c));
  EXPECT_EQ(std::get<1>(back), std::get<1>(c));
  EXPECT_EQ(std::get<2>(back), std::get<2>(c));
  EXPECT_EQ(std::get<3>(back), std::get<3>(c));
  EXPECT_EQ(std::get<4>(back), std::get<4>(c));
  EXPECT_EQ(std::get<5>(back), std::get<5>(c));
  EXPECT_EQ(std::get<6>(back), std::get<6>(c));
  EXPECT_EQ(std::get<7>(back), std::get<7>(c));
  EXPECT_EQ(std::get<8>(back), std::get<8>(c));
  EXPECT_EQ(std::get<9>(back).secret(), "secret");
  EXPECT_EQ(std::get<10>(back), &serialize_test_twice);
  EXPECT_EQ(std::get<11>(back), 2.5);
  EXPECT_EQ(std::get<12>(back), true);
}

TEST(Serialize, EveryStrictPrefixIsASerializationError) {
  const Bytes bytes = mproc::to_bytes(make_complex());
  ASSERT_GT(bytes.size(), 100u);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    // A copy of exactly n bytes, so that ASan would catch a read past it.
    const Bytes prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    mproc::detail::Reader r(prefix);
    EXPECT_THROW((void)mproc::decode<Complex>(r), mproc::SerializationError) << "prefix of " << n << " bytes";
    EXPECT_THROW((void)mproc::from_bytes<Complex>(prefix), mproc::SerializationError)
        << "prefix of " << n << " bytes";
  }
}

// An 8-byte length followed by a little payload.
Bytes length_then(std::uint64_t length, std::size_t payload = 16) {
  mproc::detail::Writer w;
  w.write_size(length);
  for (std::size_t i = 0; i < payload; ++i) w.write_pod(static_cast<std::uint8_t>(i));
  return w.to_vector();
}

template <class T>
void expect_refused(const Bytes& bytes, const char* what) {
  EXPECT_THROW((void)mproc::from_bytes<T>(bytes), mproc::SerializationError) << what;
}

TEST(Serialize, HugeLengthPrefixesAreRefusedBeforeAllocating) {
  for (const std::uint64_t n : {std::uint64_t{17}, std::uint64_t{1} << 31, std::uint64_t{1} << 62,
                                std::numeric_limits<std::uint64_t>::max()}) {
    SCOPED_TRACE(n);
    const Bytes b = length_then(n);
    expect_refused<std::string>(b, "string");
    expect_refused<std::vector<int>>(b, "vector<int>");
    expect_refused<std::vector<std::string>>(b, "vector<string>");
    expect_refused<std::vector<bool>>(b, "vector<bool>");
    expect_refused<std::list<int>>(b, "list<int>");
    expect_refused<std::deque<std::vector<int>>>(b, "deque<vector<int>>");
    expect_refused<std::map<int, int>>(b, "map<int,int>");
    expect_refused<std::set<std::string>>(b, "set<string>");
    expect_refused<std::unordered_map<std::string, std::string>>(b, "unordered_map");
    // cereal's own length (its SizeTag) is bounded too: MemberSerialize
    // starts with its string's length.
    expect_refused<MemberSerialize>(b, "cereal string length");
  }
}

TEST(Serialize, ForgedCerealVectorLengthIsRefused) {
  Bytes b = mproc::to_bytes(MemberSerialize{"ab", {1, 2}});
  // Layout: u64 name length, name, u64 values length, values.
  const std::uint64_t huge = std::uint64_t{1} << 60;
  std::memcpy(b.data() + 8 + 2, &huge, sizeof huge);
  expect_refused<MemberSerialize>(b, "cereal vector length");
}

TEST(Serialize, BadVariantIndexIsRefused) {
  using V = std::variant<int, std::string>;
  Bytes b = mproc::to_bytes(V{5});
  ASSERT_EQ(mproc::from_bytes<V>(b), V{5});
  for (const std::uint32_t index : {2u, 7u, 0xffffffffu}) {
    std::memcpy(b.data(), &index, sizeof index);
    expect_refused<V>(b, "variant index");
  }
}

TEST(Serialize, BadOptionalFlagIsRefused) {
  Bytes b = mproc::to_bytes(std::optional<int>{3});
  for (const std::uint8_t flag : {2, 0x80, 0xff}) {
    b[0] = static_cast<std::byte>(flag);
    expect_refused<std::optional<int>>(b, "optional flag");
  }
}

TEST(Serialize, BadBoolByteIsRefused) {
  expect_refused<bool>(Bytes{std::byte{2}}, "bool 2");
  expect_refused<bool>(Bytes{std::byte{0xff}}, "bool 255");
  Bytes v = mproc::to_bytes(std::vector<bool>{true, false});
  v.back() = std::byte{3};
  expect_refused<std::vector<bool>>(v, "bool inside vector<bool>");
  Bytes o = mproc::to_bytes(std::optional<bool>{false});
  o.back() = std::byte{9};
  expect_refused<std::optional<bool>>(o, "bool inside optional");
}

TEST(Serialize, TrailingBytesAreRefusedByFromBytes) {
  Bytes b = mproc::to_bytes(5);
  b.push_back(std::byte{0});
  expect_refused<int>(b, "int + 1 byte");
  Bytes s = mproc::to_bytes(std::string("abc"));
  s.push_back(std::byte{'d'});
  expect_refused<std::string>(s, "string + 1 byte");
  // decode() itself reads one value and leaves the rest to the caller.
  mproc::detail::Reader r(s);
  EXPECT_EQ(mproc::decode<std::string>(r), "abc");
  EXPECT_EQ(r.remaining(), 1u);
}

TEST(Serialize, ForgedFunctionOffsetIsRefused) {
  int (*f)(int) = &serialize_test_twice;
  const Bytes good = mproc::to_bytes(f);
  ASSERT_EQ(mproc::from_bytes<int (*)(int)>(good), f);
  // Layout: u8 tag, u64 module-name length, name, u64 offset (last).
  std::uint64_t offset = 0;
  std::memcpy(&offset, good.data() + good.size() - 8, 8);
  // +1 and +2 land inside the function (it is longer than 2 bytes at any
  // optimisation level); 0 is the ELF header.
  for (const std::uint64_t forged : {offset + 1, offset + 2, std::uint64_t{0},
                                     std::uint64_t{1} << 40, std::numeric_limits<std::uint64_t>::max()}) {
    Bytes b = good;
    std::memcpy(b.data() + b.size() - 8, &forged, 8);
    EXPECT_THROW((void)mproc::from_bytes<int (*)(int)>(b), mproc::SerializationError)
        << "offset " << forged << " (the function is at " << offset << ")";
  }
  Bytes bad_tag = good;
  bad_tag[0] = std::byte{2};
  expect_refused<int (*)(int)>(bad_tag, "function tag");
}

TEST(Serialize, FunctionInAModuleThatIsNotLoadedIsRefused) {
  mproc::detail::Writer w;
  w.write_pod(std::uint8_t{1});
  const std::string module = "/nonexistent/libnothing.so";
  w.write_size(module.size());
  w.write(module.data(), module.size());
  w.write_pod(std::uint64_t{0x1000});
  expect_refused<int (*)(int)>(w.to_vector(), "unknown module");
}

TEST(Serialize, DescriptorThatDidNotArriveIsRefused) {
  mproc::detail::Writer w;
  w.write_fd(0);  // index 0
  w.write_fd(1);  // index 1
  ASSERT_EQ(w.fds().size(), 2u);
  {
    mproc::detail::Reader r(w.bytes());  // no descriptors came with it
    EXPECT_THROW((void)r.read_fd(), mproc::SerializationError);
  }
  {
    const int only_one[] = {7};
    mproc::detail::Reader r(w.bytes(), only_one);
    EXPECT_EQ(r.read_fd(), 7);
    EXPECT_THROW((void)r.read_fd(), mproc::SerializationError);
  }
  {
    const int lost[] = {-1, 9};  // the transport marks one it could not take as -1
    mproc::detail::Reader r(w.bytes(), lost);
    EXPECT_THROW((void)r.read_fd(), mproc::SerializationError);
  }
  {
    mproc::detail::Writer forged;
    forged.write_pod(std::uint32_t{0xffffffffu});
    const int one[] = {3};
    mproc::detail::Reader r(forged.bytes(), one);
    EXPECT_THROW((void)r.read_fd(), mproc::SerializationError);
  }
}

struct KnownEntry {
  static void invoke(mproc::detail::Reader&, mproc::detail::Writer& out) { out.write_pod(std::uint8_t{42}); }
};

TEST(Serialize, UnknownInvokerKeyIsRefused) {
  const std::uint64_t key = mproc::detail::Registered<KnownEntry>::key;
  const mproc::detail::Invoker found = mproc::detail::find_invoker(key);
  EXPECT_EQ(found, &KnownEntry::invoke);
  for (const std::uint64_t forged : {key + 1, key ^ (std::uint64_t{1} << 63), std::uint64_t{0}}) {
    EXPECT_THROW((void)mproc::detail::find_invoker(forged), mproc::SerializationError) << forged;
  }
}

TEST(Serialize, ReaderNeverReadsPastTheEnd) {
  const Bytes three{std::byte{1}, std::byte{2}, std::byte{3}};
  mproc::detail::Reader r(three);
  EXPECT_THROW((void)r.read_pod<std::uint32_t>(), mproc::SerializationError);
  EXPECT_EQ(r.position(), 0u) << "a failed read must not move the position";
  EXPECT_THROW((void)r.take(4), mproc::SerializationError);
  EXPECT_EQ(r.take(3).size(), 3u);
  EXPECT_TRUE(r.at_end());
  EXPECT_THROW((void)r.read_pod<std::uint8_t>(), mproc::SerializationError);
}

}  // namespace
