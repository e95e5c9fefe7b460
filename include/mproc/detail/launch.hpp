// detail/launch.hpp: the one small interface behind which the start methods
// live (one file each under src/posix/: launch_fork.cpp, launch_spawn.cpp,
// forkserver.cpp), like CPython's popen_fork / popen_spawn_posix /
// popen_forkserver.
//
// A Job says what the new process runs, in two forms: `run_here` for fork
// (the child already has the callable in memory) and `encode` for the
// methods that start a fresh program (the child receives a message naming a
// registered invoker plus the encoded callable and arguments). A launcher
// returns a Child: the parent's view of one started process.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>
#include <string>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/registry.hpp"
#include "mproc/start_method.hpp"

namespace mproc::detail {

struct Job {
  std::string name;
  bool daemon = false;
  // The child's place among processes, as Python's _identity: its
  // parent's chain and then its own number (see Identity).
  std::vector<std::uint32_t> id_chain;
  // fork: runs in the child; its return is ignored, an exception is printed.
  std::function<void()> run_here;
  // spawn/forkserver: writes the invoker key and payload (see child_main).
  std::function<void(Writer&)> encode;
};

class Child {
 public:
  virtual ~Child() = default;
  virtual int pid() const noexcept = 0;
  // Readable once the process has ended.
  virtual int sentinel() const noexcept = 0;
  // Non-blocking: the exit code once the process has ended (-N if killed by
  // signal N), nullopt while it runs. Reaps the process.
  virtual std::optional<int> poll() = 0;
  // Sends `sig` unless the process has already been reaped.
  virtual void send_signal(int sig) = 0;
};

std::unique_ptr<Child> launch_fork(const Job& job);
std::unique_ptr<Child> launch_spawn(const Job& job);
std::unique_ptr<Child> launch_forkserver(const Job& job);
std::unique_ptr<Child> launch(StartMethod method, const Job& job);

// Who this process is (for current_process / parent_process).
struct Identity {
  std::string name = "MainProcess";
  int parent_pid = 0;  // 0 in the main process
  std::string parent_name;
  bool daemon = false;
  // As Python's _identity: empty in the main process; a child's is its
  // parent's and then the number its parent gave it. Every Process made
  // here takes the next number of child_counter, named or not, and a
  // default name is "Process-" and the chain joined by ':' (Process-3,
  // Process-3:1).
  std::vector<std::uint32_t> id_chain;
  std::atomic<std::uint32_t> child_counter{0};
};
Identity& identity();

// "<prefix>-" and `chain` joined by ':' ("Process-3:1").
std::string chain_name(const char* prefix, const std::vector<std::uint32_t>& chain);

// Runs `body` the way a child runs its target: returns 0 if it returns, or
// prints the exception (type, what, stack) to stderr under a
// "Process <name>:" line and returns 1.
int run_target(const std::function<void()>& body) noexcept;

// Writes the frame every fresh (spawn/forkserver) child receives: who it is,
// the start method it was started with (its own default from then on),
// then the job's own bytes.
void encode_child_frame(Writer& w, const Job& job, StartMethod method);

// The header of a child frame: everything encode_child_frame writes before
// the job's payload, with the invoker already looked up in the registry.
struct ChildFrameHeader {
  std::string name;
  int parent_pid = 0;
  std::string parent_name;
  std::vector<std::uint32_t> id_chain;  // never empty
  bool daemon = false;
  StartMethod method = StartMethod::fork;
  Invoker invoker = nullptr;
};

// Reads a child frame's header from `r` into `out` (fields in wire order, so
// on failure the fields read so far are kept: `name` first), leaving `r` at
// the invoker's payload. Pure: it changes nothing in this process and runs
// nothing. Throws SerializationError on a malformed, truncated or foreign
// frame, or one naming an unknown invoker.
void decode_child_frame_header(Reader& r, ChildFrameHeader& out);

// In a child started by spawn/forkserver: decodes a frame made by
// encode_child_frame, adopts the identity, runs the invoker; returns the
// exit code. `direct` says the sender is our parent process (spawn): if it
// is no longer our parent, it died, and we exit at once.
int run_child_frame(std::span<const std::byte> bytes, std::span<const int> fds, bool direct) noexcept;

// Called in the child right after fork/exec: ends this process if the
// parent `parent_pid` is already gone, and asks the kernel to SIGKILL it
// when the parent dies.
void die_with_parent(int parent_pid) noexcept;

// In a freshly forked child: forget the parent's children (they are not
// ours) and take on the identity of a child named `name`, numbered
// `id_chain` (Identity).
void become_child(const std::string& name, bool daemon, int parent_pid, const std::string& parent_name,
                  const std::vector<std::uint32_t>& id_chain) noexcept;

// In a freshly forked child: the parent's forkserver is not this process's
// (its socket would carry two processes' requests at once); the child starts
// its own when it first needs one.
void forget_parent_forkserver() noexcept;

// What mproc keeps open for the life of the process, on purpose (for leak
// checks in tests): the forkserver's pid (0 if none) and its descriptors.
int forkserver_pid() noexcept;
std::vector<int> forkserver_fds();

// init() state.
void require_init(const char* what);
const std::vector<std::string>& saved_argv();

// Runs `fn` on a long-lived thread when called from a thread that is not the
// main thread, so that PR_SET_PDEATHSIG (which fires when the *thread* that
// created a child exits) means "when the process exits".
void on_launcher_thread(const std::function<void()>& fn);

// Declares that the calling thread outlives every child it starts (a pool's
// supervisor, which ends only once its workers are gone): on_launcher_thread
// then runs right here, saving a hand-off to the launcher thread per child.
void launch_from_this_thread() noexcept;

// Flushes C and C++ standard streams so that a forked child does not write
// out the parent's buffered output a second time.
void flush_std_streams() noexcept;

}  // namespace mproc::detail
