// fuzz_decode.cpp: libFuzzer target for mproc's value decoder
// (mproc::from_bytes, serialize.hpp).
//
// Every value a worker receives goes through decode<T>; its promise is that
// hostile bytes give mproc::SerializationError and nothing else: no crash,
// no read past the input, no allocation driven by an unchecked length, no
// other exception. The first input byte picks one of a few value types that
// together cover every decoder branch (strings, sequences, sets, maps,
// optional, variant, arrays, durations, trivially copyable structs and their
// vectors, and a cereal user type with nested containers and smart
// pointers); the rest is decoded as that type. A value that does decode
// must then be a fixed point of encode/decode: encoding it and decoding the
// result gives the same bytes again.
//
// Seeds: fuzz/corpus/fuzz_decode/ (regenerate with
// MPROC_FUZZ_WRITE_SEEDS=<dir> ./fuzz_decode).

#include <mproc/serialize.hpp>

#include <cereal/types/memory.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

namespace {

// Trivially copyable, no padding (so its bytes round-trip exactly), no bool
// or unfixed enum member (any bit pattern is a valid value).
struct Point {
  std::int32_t x;
  std::int32_t y;
  double weight;
};
static_assert(std::is_trivially_copyable_v<Point> && sizeof(Point) == 16);

enum class Color : std::uint8_t { red, green, blue };

// A user type that crosses through cereal.
struct Person {
  std::string name;
  std::vector<int> scores;
  std::map<std::string, std::vector<double>> tags;
  std::optional<std::string> nickname;
  std::variant<int, std::string, std::vector<std::uint16_t>> extra;
  std::shared_ptr<std::string> note;
  std::unique_ptr<std::int64_t> id;
  std::set<std::string> groups;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, scores, tags, nickname, extra, note, id, groups);
  }
};

using Big = std::tuple<std::string,                                      //
                       std::vector<std::string>,                         //
                       std::map<int, std::vector<double>>,               //
                       std::optional<std::string>,                       //
                       std::variant<int, std::string, Point, std::monostate>,  //
                       Person,                                           //
                       Point,                                            //
                       std::vector<Point>,                               //
                       std::set<std::string>,                            //
                       std::array<std::string, 2>,                       //
                       std::pair<std::uint8_t, std::list<std::int16_t>>,  //
                       std::deque<std::optional<int>>,                   //
                       std::vector<bool>,                                //
                       std::chrono::milliseconds,                        //
                       Color,                                            //
                       bool>;

using Nested = std::vector<std::map<std::string, std::vector<std::optional<std::tuple<int, std::string>>>>>;
using Variants = std::vector<std::variant<std::monostate, std::string, std::vector<Point>, Person>>;
using Unordered = std::unordered_map<std::string, std::set<std::int64_t>>;

Big sample_big() {
  Person p;
  p.name = "Ada";
  p.scores = {1, 2, 3};
  p.tags = {{"x", {1.5, 2.5}}, {"y", {}}};
  p.nickname = "countess";
  p.extra = std::vector<std::uint16_t>{7, 8};
  p.note = std::make_shared<std::string>("note");
  p.id = std::make_unique<std::int64_t>(42);
  p.groups = {"a", "b"};
  Big b;
  std::get<0>(b) = "hello";
  std::get<1>(b) = {"a", "bc", ""};
  std::get<2>(b) = {{1, {0.5}}, {2, {}}};
  std::get<3>(b) = "opt";
  std::get<4>(b) = Point{1, 2, 3.0};
  std::get<5>(b) = std::move(p);
  std::get<6>(b) = Point{-1, -2, 0.25};
  std::get<7>(b) = {Point{0, 0, 0}, Point{5, 6, 7}};
  std::get<8>(b) = {"s1", "s2"};
  std::get<9>(b) = {"first", "second"};
  std::get<10>(b) = {std::uint8_t{9}, {1, -1}};
  std::get<11>(b) = {std::nullopt, 4};
  std::get<12>(b) = {true, false, true};
  std::get<13>(b) = std::chrono::milliseconds(1500);
  std::get<14>(b) = Color::green;
  std::get<15>(b) = true;
  return b;
}

template <class T>
void check_fixed_point(const T& v) {
  const std::vector<std::byte> once = mproc::to_bytes(v);
  const std::vector<std::byte> twice = mproc::to_bytes(mproc::from_bytes<T>(once));
  if (once != twice) {
    std::fprintf(stderr, "fuzz_decode: encode(decode(encode(v))) != encode(v)\n");
    std::abort();
  }
}

template <class T>
void decode_as(std::span<const std::byte> bytes, bool fixed_point) {
  try {
    const T v = mproc::from_bytes<T>(bytes);
    if (fixed_point) check_fixed_point(v);
  } catch (const mproc::SerializationError&) {
    // The one allowed outcome for bad input.
  }
  // Anything else propagates out of LLVMFuzzerTestOneInput: libFuzzer
  // reports an uncaught exception as a crash.
}

template <class T>
void write_seed(const char* dir, const char* name, std::uint8_t selector, const T& v) {
  const std::vector<std::byte> bytes = mproc::to_bytes(v);
  std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
  out.put(static_cast<char>(selector));
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_seeds(const char* dir) {
  write_seed(dir, "big", 0, sample_big());
  write_seed(dir, "big_empty", 0, Big{});
  Nested n{{{"k", {std::nullopt, std::make_tuple(1, std::string("one"))}}}, {}};
  write_seed(dir, "nested", 1, n);
  Variants vs;
  vs.emplace_back(std::monostate{});
  vs.emplace_back(std::string("str"));
  vs.emplace_back(std::vector<Point>{Point{1, 1, 1}});
  vs.emplace_back(std::get<Person>(sample_big()));
  write_seed(dir, "variants", 2, vs);
  write_seed(dir, "unordered", 3, Unordered{{"a", {1, 2}}, {"b", {}}});
  write_seed(dir, "person", 4, std::get<Person>(sample_big()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("MPROC_FUZZ_WRITE_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      decode_as<Big>(bytes, true);
      break;
    case 1:
      decode_as<Nested>(bytes, true);
      break;
    case 2:
      decode_as<Variants>(bytes, true);
      break;
    case 3:
      // Iteration order of a rebuilt unordered_map may differ: no fixed point.
      decode_as<Unordered>(bytes, false);
      break;
    case 4:
      decode_as<Person>(bytes, true);
      break;
  }
  return 0;
}
