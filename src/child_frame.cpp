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
constexpr std::uint16_t kVersion = 1;
}  // namespace

void encode_child_frame(Writer& w, const Job& job) {
  w.write_pod(kMagic);
  w.write_pod(kVersion);
  encode(w, job.name);
  encode(w, static_cast<std::int32_t>(::getpid()));
  encode(w, identity().name);
  encode(w, static_cast<std::uint8_t>(job.daemon));
  encode(w, static_cast<std::uint8_t>(get_start_method()));
  job.encode(w);
}

int run_child_frame(std::span<const std::byte> bytes, std::span<const int> fds, bool direct) noexcept {
  std::string name = "Process-?";
  try {
    Reader r(bytes, fds);
    if (r.read_pod<std::uint32_t>() != kMagic || r.read_pod<std::uint16_t>() != kVersion) {
      throw SerializationError("mproc: child frame has a wrong magic number or version");
    }
    name = decode<std::string>(r);
    const auto parent_pid = decode<std::int32_t>(r);
    const auto parent_name = decode<std::string>(r);
    const auto daemon = decode<std::uint8_t>(r);
    const auto method = decode<std::uint8_t>(r);
    if (method > 2) throw SerializationError("mproc: child frame has a bad start method");
    if (direct && ::getppid() != parent_pid) ::_exit(1);  // orphaned before PDEATHSIG was set
    become_child(name, daemon != 0, parent_pid, parent_name);
    set_start_method(static_cast<StartMethod>(method), true);
    const Invoker invoke = find_invoker(r.read_pod<std::uint64_t>());
    return run_target([&] {
      Writer unused;
      invoke(r, unused);
    });
  } catch (...) {
    identity().name = name;
    return run_target([] { throw; });
  }
}

}  // namespace mproc::detail
