// fuzz_child_frame.cpp: libFuzzer target for the child frame header
// (detail::decode_child_frame_header, detail/launch.hpp).
//
// A process started with spawn or forkserver learns who it is from the first
// message it reads: magic, version, its name, the parent's pid and name, its
// identity chain (Process-3:1), the daemon flag, the start method, and the key of the registered invoker to
// run (looked up with detail::find_invoker). Here arbitrary bytes are
// decoded as such a header, without adopting the identity or running
// anything. The promise under test: only SerializationError may come out
// (no crash, no other exception), and a decoded header has sane fields and
// an invoker (find_invoker only returns registered ones).
//
// Seeds: fuzz/corpus/fuzz_child_frame/ (regenerate with
// MPROC_FUZZ_WRITE_SEEDS=<dir> ./fuzz_child_frame): frames that
// Process would send for a few targets, made with encode_child_frame.

#include <mproc/detail/launch.hpp>
#include <mproc/process.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <tuple>

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_child_frame: %s\n", what);
  std::abort();
}

void target_int(int) {}
void target_text(std::string) {}

// The invokers a Process(target_int, 1) and a Process(target_text, "x")
// would name; taking their keys registers them in this binary.
using IntEntry = mproc::detail::ProcessEntry<void (*)(int), std::tuple<int>>;
using TextEntry = mproc::detail::ProcessEntry<void (*)(std::string), std::tuple<std::string>>;

template <class Entry, class F, class Args>
void write_seed(const char* dir, const char* name, bool daemon, F f, Args args) {
  mproc::detail::Job job;
  job.name = name;
  job.daemon = daemon;
  job.id_chain = {3, 1};
  job.encode = [&](mproc::detail::Writer& w) {
    w.write_pod(mproc::detail::Registered<Entry>::key);
    mproc::detail::encode_value(w, f);
    mproc::detail::encode_value(w, args);
  };
  mproc::detail::Writer frame;
  mproc::detail::encode_child_frame(frame, job, mproc::StartMethod::spawn);
  std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(frame.bytes().data()),
            static_cast<std::streamsize>(frame.size()));
}

void write_seeds(const char* dir) {
  write_seed<IntEntry>(dir, "Process-1", false, &target_int, std::tuple<int>(7));
  write_seed<TextEntry>(dir, "worker-daemon", true, &target_text,
                        std::tuple<std::string>("hello"));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Make sure both invokers are registered whether or not seeds are written.
  (void)mproc::detail::Registered<IntEntry>::key;
  (void)mproc::detail::Registered<TextEntry>::key;
  if (const char* dir = std::getenv("MPROC_FUZZ_WRITE_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  mproc::detail::Reader r(bytes);
  mproc::detail::ChildFrameHeader h;
  try {
    mproc::detail::decode_child_frame_header(r, h);
  } catch (const mproc::SerializationError&) {
    return 0;  // the one allowed failure
  }
  if (h.invoker == nullptr) bug("decoded a header without an invoker");
  const auto method = static_cast<int>(h.method);
  if (method < 0 || method > 2) bug("decoded an impossible start method");
  if (h.name.size() > size || h.parent_name.size() > size) bug("a name longer than the frame");
  if (h.id_chain.empty() || h.id_chain.size() * sizeof(std::uint32_t) > size) bug("an impossible identity chain");
  if (r.position() > size) bug("the reader went past the frame");
  return 0;
}
