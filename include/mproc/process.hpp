// process.hpp: mproc::Process, one child process running a callable.
//
//   void worker(int i) { std::printf("Worker %d starting\n", i); }
//
//   std::vector<mproc::Process> ps;
//   for (int i = 0; i < 5; ++i) ps.emplace_back(worker, i);
//   for (auto& p : ps) p.start();
//   for (auto& p : ps) p.join();
//
// The target and its arguments must be serializable (serialize.hpp); this is
// checked at compile time whatever the start method, so a program that builds
// works under fork, spawn and forkserver alike. Arguments are converted to
// the target's parameter types when the Process is made.
//
// Lifetime: a Process that was started and not joined is joined by its
// destructor (a daemon one is terminated first). If the parent dies, even by
// SIGKILL, its children are killed by the kernel (PR_SET_PDEATHSIG): no
// orphans. A target that throws makes the child print the exception's type,
// message and stack to stderr and exit with code 1.
//
// Thread safety: one Process object is not meant to be used from several
// threads at once; distinct Process objects are independent.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mproc/detail/callable.hpp"
#include "mproc/detail/launch.hpp"
#include "mproc/detail/registry.hpp"
#include "mproc/serialize.hpp"
#include "mproc/start_method.hpp"

namespace mproc {

struct ProcessOptions {
  std::string name;                         // default "Process-N"
  bool daemon = false;                      // terminated when the parent exits
  std::optional<StartMethod> start_method;  // default get_start_method()
};

// What current_process(), parent_process() and active_children() return.
class ProcessInfo {
 public:
  ProcessInfo(int pid, std::string name) : pid_(pid), name_(std::move(name)) {}
  int pid() const noexcept { return pid_; }
  const std::string& name() const noexcept { return name_; }
  // Whether the process still runs (Python's parent_process().is_alive()):
  // false once it has ended, even before it is reaped. Read from /proc.
  bool is_alive() const;
  friend bool operator==(const ProcessInfo&, const ProcessInfo&) = default;

 private:
  int pid_;
  std::string name_;
};

namespace detail {

// The invoker a spawned/forkserver child runs for Process(f, args...).
template <class F, class Args>
struct ProcessEntry {
  static void invoke(Reader& in, Writer&) {
    F f = decode_value<F>(in);
    Args args = decode_value<Args>(in);
    std::apply([&f](auto&... a) { std::invoke(f, a...); }, args);
  }
};

class ProcessImpl;

}  // namespace detail

class Process {
 public:
  // An empty Process: start() throws. Assign a real one to it.
  Process() noexcept;

  template <class F, class... Args>
    requires(!std::is_same_v<std::decay_t<F>, ProcessOptions>)
  explicit Process(F&& target, Args&&... args)
      : Process(ProcessOptions{}, std::forward<F>(target), std::forward<Args>(args)...) {}

  template <class F, class... Args>
  Process(ProcessOptions options, F&& target, Args&&... args)
      : Process(std::move(options), make_job(std::forward<F>(target), std::forward<Args>(args)...)) {}

  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // Joins a started, unjoined process (terminating it first if daemon).
  ~Process();

  // Starts the child. Throws mproc::Error if already started, or if the
  // start method needs mproc::init() and it has not run.
  void start();
  // Waits for the child to end. Returns immediately if it already has.
  void join();
  // Waits at most `timeout`; returns true if the child has ended. A zero
  // or negative timeout only looks (as in Python); one beyond 10^9 s waits
  // for ever.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    using namespace std::chrono;
    if (timeout <= duration<Rep, Period>::zero()) return join_ms(0);
    if (duration_cast<duration<double>>(timeout).count() > 1e9) return join_ms(-1);
    return join_ms(ceil<milliseconds>(timeout).count());
  }
  bool is_alive();
  // 0 before start().
  int pid() const noexcept;
  const std::string& name() const noexcept;
  void set_name(std::string name);
  bool daemon() const noexcept;
  // Only before start().
  void set_daemon(bool daemon);
  // nullopt while running (or not started); 0 on success; 1 after an
  // uncaught exception; the exit status; -N when killed by signal N.
  std::optional<int> exitcode();
  // SIGTERM / SIGKILL. No effect on a process that has ended.
  void terminate();
  void kill();
  // A descriptor that becomes readable when the child ends (for poll() or
  // mproc::wait). Throws mproc::Error before start().
  int sentinel() const;

 private:
  template <class F, class... Args>
  static detail::Job make_job(F&& target, Args&&... args);
  Process(ProcessOptions options, detail::Job job);
  bool join_ms(long long ms);

  std::unique_ptr<detail::ProcessImpl> impl_;
};

template <class F, class... Args>
detail::Job Process::make_job(F&& target, Args&&... args) {
  using Fn = std::decay_t<F>;
  // First, before anything copies or moves a target object (see
  // serializable_check).
  static_assert(detail::serializable_check<Fn>::ok);
  using Stored = detail::stored_args_t<Fn, Args...>;
  if constexpr (detail::signature<Fn>::known) {
    static_assert(std::tuple_size_v<Stored> == sizeof...(Args),
                  "mproc::Process: the number of arguments does not match the target's parameters");
  }
  static_assert(detail::serializable_check<Stored>::ok);
  static_assert(detail::invocable_with_v<Fn, Stored>,
                "mproc::Process: the target cannot be called with these arguments");
  auto state = std::make_shared<std::pair<Fn, Stored>>(std::forward<F>(target),
                                                      Stored(std::forward<Args>(args)...));
  detail::Job job;
  job.run_here = [state] {
    std::apply([&](auto&... a) { std::invoke(state->first, a...); }, state->second);
  };
  job.encode = [state](detail::Writer& w) {
    w.write_pod(detail::Registered<detail::ProcessEntry<Fn, Stored>>::key);
    detail::encode_value(w, state->first);
    detail::encode_value(w, state->second);
  };
  return job;
}

// This process: pid and name ("MainProcess" in the main program).
ProcessInfo current_process();
// The process that started this one; empty in the main program.
std::optional<ProcessInfo> parent_process();
// Children started by this process that are still running (finished ones
// are reaped as a side effect, as in Python).
std::vector<ProcessInfo> active_children();
// CPUs this process may use: the affinity mask, further limited by a cgroup
// v2 (cpu.max) or v1 (cfs quota) CPU quota, rounded up; at least 1.
unsigned cpu_count();

}  // namespace mproc
