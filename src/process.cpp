// process.cpp: the parent's side of mproc::Process, and what every child
// does around its target (identity, exception report, exit code).

#include "mproc/process.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <typeinfo>
#if defined(__GLIBCXX__)
#include <ext/stdio_sync_filebuf.h>
#endif

#include "mproc/detail/fd.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/detail/sync_core.hpp"

namespace mproc {
namespace detail {

Identity& identity() {
  static Identity id;
  return id;
}

class ProcessImpl {
 public:
  ProcessImpl(ProcessOptions o, Job j) : options(std::move(o)), job(std::move(j)) {}

  ProcessOptions options;
  Job job;
  std::unique_ptr<Child> child;
  std::optional<int> exit_code;

  std::optional<int> poll() {
    if (!exit_code && child) exit_code = child->poll();
    return exit_code;
  }
};

namespace {

// Started children, for active_children(). Entries are removed when their
// Process is destroyed.
struct Children {
  std::mutex mu;
  std::vector<ProcessImpl*> list;
};
Children& children() {
  static auto* c = new Children;
  return *c;
}

// Made (with identity()) before main, while the program has one thread. A function-local
// static is guarded: were a thread still making it when another forks, the
// child would wait for ever on the guard of a maker that does not exist there.
[[maybe_unused]] const Children& g_children_at_load = children();
[[maybe_unused]] const Identity& g_identity_at_load = identity();

}  // namespace

int run_target(const std::function<void()>& body) noexcept {
  try {
    TracebackScope scope;
    body();
    flush_std_streams();
    return 0;
  } catch (...) {
    flush_std_streams();
    const RemoteFacts facts = describe_current_exception();
    std::string report = "Process " + identity().name + ":\n";
    if (!facts.traceback.empty()) report += "Traceback (most recent call first):\n" + facts.traceback;
    report += facts.type_name + ": " + facts.message + "\n";
    std::fputs(report.c_str(), stderr);
    std::fflush(stderr);
    return 1;
  }
}

namespace {

// Does this C++ standard stream hold output of its own? By default
// (synchronized with stdio) std::cout, std::cerr and std::clog write straight
// into stdio's buffers, which fflush(nullptr) empties; flushing them as well
// is pure cost, and in a freshly forked child a real one: every flush writes
// to libstdc++ and libc pages still shared with the parent, and each such
// page is a copy-on-write fault (about a tenth of a fork-method Process's
// start+join here). Only after std::ios_base::sync_with_stdio(false), or
// with a user-installed streambuf, is there something to flush.
bool has_own_buffer(const std::ostream& s) noexcept {
#if defined(__GLIBCXX__)
  const std::streambuf* b = s.rdbuf();
  return b != nullptr && typeid(*b) != typeid(__gnu_cxx::stdio_sync_filebuf<char>);
#else
  (void)s;
  return true;
#endif
}

}  // namespace

void flush_std_streams() noexcept {
  try {
    if (has_own_buffer(std::cout)) std::cout.flush();
    if (has_own_buffer(std::cerr)) std::cerr.flush();
    if (has_own_buffer(std::clog)) std::clog.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

std::string chain_name(const char* prefix, const std::vector<std::uint32_t>& chain) {
  std::string name = std::string(prefix) + "-";
  for (std::size_t i = 0; i < chain.size(); ++i) {
    if (i > 0) name += ':';
    name += std::to_string(chain[i]);
  }
  return name;
}

void become_child(const std::string& name, bool daemon, int parent_pid, const std::string& parent_name,
                  const std::vector<std::uint32_t>& id_chain) noexcept {
  // The list belongs to the parent; its lock may have been held by another
  // parent thread at the fork, so replace it instead of locking it.
  Children& c = children();
  new (&c.mu) std::mutex;
  c.list.clear();
  Identity& id = identity();
  id.name = name;
  id.daemon = daemon;
  id.parent_pid = parent_pid;
  id.parent_name = parent_name;
  id.id_chain = id_chain;
  id.child_counter.store(0, std::memory_order_relaxed);
}

void die_with_parent(int parent_pid) noexcept {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent may have died before the line above: then nobody would send
  // the signal, so check by hand.
  if (::getppid() != parent_pid) ::_exit(1);
}

std::unique_ptr<Child> launch(StartMethod method, const Job& job) {
  switch (method) {
    case StartMethod::fork:
      return launch_fork(job);
    case StartMethod::spawn:
      return launch_spawn(job);
    case StartMethod::forkserver:
      return launch_forkserver(job);
  }
  throw Error("mproc: unknown start method");
}

}  // namespace detail

Process::Process() noexcept = default;
Process::Process(Process&&) noexcept = default;

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Process dying(std::move(*this));  // joins/terminates what this held
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Process::Process(ProcessOptions options, detail::Job job)
    : impl_(std::make_unique<detail::ProcessImpl>(std::move(options), std::move(job))) {
  // Every Process takes a number, named or not (as in Python).
  detail::Identity& id = detail::identity();
  impl_->job.id_chain = id.id_chain;
  impl_->job.id_chain.push_back(id.child_counter.fetch_add(1, std::memory_order_relaxed) + 1);
  if (impl_->options.name.empty()) impl_->options.name = detail::chain_name("Process", impl_->job.id_chain);
}

Process::~Process() {
  if (!impl_) return;
  if (impl_->child) {
    try {
      if (!impl_->poll()) {
        if (impl_->options.daemon) impl_->child->send_signal(SIGTERM);
        join();
      }
    } catch (...) {
      // Destructors never throw; a child we cannot wait for is killed.
      impl_->child->send_signal(SIGKILL);
    }
    auto& c = detail::children();
    std::lock_guard lock(c.mu);
    c.list.erase(std::remove(c.list.begin(), c.list.end(), impl_.get()), c.list.end());
  }
}

void Process::start() {
  if (!impl_) throw Error("mproc::Process::start: empty Process (default-constructed or moved from)");
  if (impl_->child) throw Error("mproc::Process::start: process '" + impl_->options.name + "' already started");
  const StartMethod method = impl_->options.start_method.value_or(get_start_method());
  impl_->job.name = impl_->options.name;
  impl_->job.daemon = impl_->options.daemon;
  impl_->child = detail::launch(method, impl_->job);
  // The target and its arguments now live in the child, as in Python (which
  // deletes them at start): release the parent's copies, and with them
  // whatever they hold, e.g. the descriptors meant for the child.
  impl_->job.run_here = nullptr;
  impl_->job.encode = nullptr;
  auto& c = detail::children();
  std::lock_guard lock(c.mu);
  c.list.push_back(impl_.get());
}

void Process::join() { join_ms(-1); }

bool Process::join_ms(long long ms) {
  if (!impl_ || !impl_->child) throw Error("mproc::Process::join: process not started");
  if (impl_->poll()) return true;
  if (ms < 0) {
    while (!impl_->poll()) detail::wait_readable(impl_->child->sentinel(), -1);
    return true;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return impl_->poll().has_value();
    detail::wait_readable(impl_->child->sentinel(), static_cast<int>(std::min<long long>(left, 1 << 30)));
    if (impl_->poll()) return true;
  }
}

bool Process::is_alive() { return impl_ && impl_->child && !impl_->poll(); }

int Process::pid() const noexcept { return impl_ && impl_->child ? impl_->child->pid() : 0; }

const std::string& Process::name() const noexcept {
  static const std::string empty;
  return impl_ ? impl_->options.name : empty;
}

void Process::set_name(std::string name) {
  if (!impl_) throw Error("mproc::Process::set_name: empty Process");
  impl_->options.name = std::move(name);
}

bool Process::daemon() const noexcept { return impl_ && impl_->options.daemon; }

void Process::set_daemon(bool daemon) {
  if (!impl_) throw Error("mproc::Process::set_daemon: empty Process");
  if (impl_->child) throw Error("mproc::Process::set_daemon: process already started");
  impl_->options.daemon = daemon;
}

std::optional<int> Process::exitcode() { return impl_ ? impl_->poll() : std::nullopt; }

void Process::terminate() {
  if (impl_ && impl_->child && !impl_->poll()) impl_->child->send_signal(SIGTERM);
}

void Process::kill() {
  if (impl_ && impl_->child && !impl_->poll()) impl_->child->send_signal(SIGKILL);
}

int Process::sentinel() const {
  if (!impl_ || !impl_->child) throw Error("mproc::Process::sentinel: process not started");
  return impl_->child->sentinel();
}

bool ProcessInfo::is_alive() const {
  return pid_ == ::getpid() || detail::process_running(static_cast<std::uint32_t>(pid_));
}

ProcessInfo current_process() { return ProcessInfo(::getpid(), detail::identity().name); }

std::optional<ProcessInfo> parent_process() {
  const auto& id = detail::identity();
  if (id.parent_pid == 0) return std::nullopt;
  return ProcessInfo(id.parent_pid, id.parent_name);
}

std::vector<ProcessInfo> active_children() {
  auto& c = detail::children();
  std::lock_guard lock(c.mu);
  std::vector<ProcessInfo> out;
  for (auto* p : c.list) {
    if (!p->poll()) out.emplace_back(p->child->pid(), p->options.name);
  }
  return out;
}

}  // namespace mproc
