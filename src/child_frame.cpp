// child_frame.cpp: the first message a fresh (spawn or forkserver) child
// receives, saying who it is and what to run.

#include <unistd.h>

#include <cstdio>

#include "mproc/detail/launch.hpp"
#include "mproc/detail/registry.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/serialize.hpp"

namespace mproc::detail {
namespace {
constexpr std::uint32_t kMagic = 0x4350524d;  // "MPRC"
constexpr std::uint16_t kVersion = 2;  // 2: the identity chain
}  // namespace

void encode_child_frame(Writer& w, const Job& job, StartMethod method) {
  w.write_pod(kMagic);
  w.write_pod(kVersion);
  encode(w, job.name);
  encode(w, static_cast<std::int32_t>(::getpid()));
  encode(w, identity().name);
  encode(w, job.id_chain);
  encode(w, static_cast<std::uint8_t>(job.daemon));
  // The method this child was started with: its own default from then on
  // (as Python's _force_start_method), whatever this process's default is.
  encode(w, static_cast<std::uint8_t>(method));
  job.encode(w);
}

void decode_child_frame_header(Reader& r, ChildFrameHeader& out) {
  if (r.read_pod<std::uint32_t>() != kMagic || r.read_pod<std::uint16_t>() != kVersion) {
    throw SerializationError("mproc: child frame has a wrong magic number or version");
  }
  out.name = decode<std::string>(r);
  out.parent_pid = decode<std::int32_t>(r);
  out.parent_name = decode<std::string>(r);
  out.id_chain = decode<std::vector<std::uint32_t>>(r);
  if (out.id_chain.empty()) throw SerializationError("mproc: child frame has an empty identity chain");
  const auto daemon = decode<std::uint8_t>(r);
  if (daemon > 1) throw SerializationError("mproc: child frame has a bad daemon flag");
  out.daemon = daemon != 0;
  const auto method = decode<std::uint8_t>(r);
  if (method > 2) throw SerializationError("mproc: child frame has a bad start method");
  out.method = static_cast<StartMethod>(method);
  out.invoker = find_invoker(r.read_pod<std::uint64_t>());
}

int run_child_frame(std::span<const std::byte> bytes, std::span<const int> fds, bool direct) noexcept {
  ChildFrameHeader h;
  h.name = "Process-?";
  try {
    Reader r(bytes, fds);
    decode_child_frame_header(r, h);
    if (direct && ::getppid() != h.parent_pid) ::_exit(1);  // orphaned before PDEATHSIG was set
    become_child(h.name, h.daemon, h.parent_pid, h.parent_name, h.id_chain);
    set_start_method(h.method, true);
    return run_target([&] {
      Writer unused;
      h.invoker(r, unused);
    });
  } catch (...) {
    identity().name = h.name;
    return run_target([] { throw; });
  }
}

}  // namespace mproc::detail
