// bench/process_start/mproc.cpp: what it costs to start a Process and join
// it, per start method, next to the same work done with raw system calls.
//
// Benchmarks (Google Benchmark, real time, microseconds per start+join):
//   raw/fork_waitpid        fork(); the child calls _exit(0); waitpid()
//   raw/posix_spawn_exec    posix_spawn() of this binary with --exit-now
//                           (it runs main up to the flag and exits); waitpid()
//   Process/fork            mproc::Process(noop) under each start method:
//   Process/spawn             construct, start(), join(), check exitcode 0
//   Process/forkserver
//   paired/Process_fork_vs_raw_fork     the raw reference and the Process
//   paired/Process_spawn_vs_raw_spawn   start alternating in every iteration;
//                                       counters raw_p50_us, mproc_p50_us, ratio
// With --with-parent-memory, also fork/spawn/forkserver start+join while
// the parent has 0, 1 and 2 GiB of touched memory in 4 KiB pages
// (parent_memory/...), to show how fork's cost grows with the parent and the
// others' does not; fork_hugepages is fork with that memory in transparent
// huge pages (madvise(MADV_HUGEPAGE)).
//
// Every timed benchmark also reports p50_us, the median of its iterations'
// times (robust against the few iterations that wait for a busy CPU on a
// shared machine). Issue 2's targets, printed at the end as ratios of
// medians from the same run: Process/fork within 1.5x of raw/fork_waitpid,
// Process/spawn within 1.5x of raw/posix_spawn_exec; the paired/ lines are
// the same comparison with the two alternating iteration by iteration.
//
// Defaults (each can be overridden on the command line): 5 repetitions in
// random interleaved order (so that the implementations alternate and a
// noisy minute hits all of them alike), aggregates only (median, mean, min,
// max, stddev).
//
//   build/bench/bench/bench_process_start
//   build/bench/bench/bench_process_start --with-parent-memory
//   build/bench/bench/bench_process_start --benchmark_repetitions=9

#include <mproc/mproc.hpp>

#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace {

constexpr const char* kExitNow = "--exit-now";

void noop() {}

bool exited_cleanly(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// One start+join each; false if the child did not start or exit with 0.
bool raw_fork_once() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  return pid > 0 && exited_cleanly(pid);
}

bool raw_spawn_once() {
  static std::string self = "bench_process_start";
  static std::string flag = kExitNow;
  static char* argv[] = {self.data(), flag.data(), nullptr};
  pid_t pid = 0;
  return ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ) == 0 &&
         exited_cleanly(pid);
}

bool process_once(mproc::StartMethod method) {
  mproc::ProcessOptions options;
  options.start_method = method;
  mproc::Process p(options, noop);
  p.start();
  p.join();
  return p.exitcode() == 0;
}

template <class F>
double time_us(F&& once, bool& ok) {
  const auto t0 = std::chrono::steady_clock::now();
  ok = once();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

double median_of(std::vector<double>& v) {
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

constexpr const char* kChildFailed = "a child did not start or did not exit with 0";

// Runs `once` per benchmark iteration. Besides Google Benchmark's own
// figure (total real time / iterations, i.e. the mean), records each
// iteration's time and reports their median as the counter p50_us: on a
// shared 2-core machine a few iterations wait for a CPU for milliseconds,
// which moves the mean a lot and the median hardly at all.
template <class F>
void timed_loop(benchmark::State& state, F&& once) {
  std::vector<double> samples;
  bool ok = true;
  for (auto _ : state) {
    samples.push_back(time_us(once, ok));
    if (!ok) {
      state.SkipWithError(kChildFailed);
      return;
    }
  }
  if (!samples.empty()) state.counters["p50_us"] = median_of(samples);
}

// The raw reference and the mproc start, alternating within every
// iteration, so that both see the same machine from one moment to the next;
// reports both per-iteration medians and their ratio (counter `ratio`).
// The Time column is their sum and means little here.
template <class Raw, class Ours>
void paired_loop(benchmark::State& state, Raw&& raw, Ours&& ours) {
  std::vector<double> a, b;
  bool ok_a = true, ok_b = true;
  for (auto _ : state) {
    a.push_back(time_us(raw, ok_a));
    b.push_back(time_us(ours, ok_b));
    if (!ok_a || !ok_b) {
      state.SkipWithError(kChildFailed);
      return;
    }
  }
  if (a.empty()) return;
  const double pa = median_of(a);
  const double pb = median_of(b);
  state.counters["raw_p50_us"] = pa;
  state.counters["mproc_p50_us"] = pb;
  state.counters["ratio"] = pb / pa;
}

void raw_fork_waitpid(benchmark::State& state) { timed_loop(state, raw_fork_once); }
void raw_posix_spawn_exec(benchmark::State& state) { timed_loop(state, raw_spawn_once); }
void process_start_join(benchmark::State& state, mproc::StartMethod method) {
  timed_loop(state, [method] { return process_once(method); });
}
void paired_fork(benchmark::State& state) {
  paired_loop(state, raw_fork_once, [] { return process_once(mproc::StartMethod::fork); });
}
void paired_spawn(benchmark::State& state) {
  paired_loop(state, raw_spawn_once, [] { return process_once(mproc::StartMethod::spawn); });
}

// Touches `mib` MiB (one write per 4 KiB page) for the duration of one
// benchmark, so that fork has that many pages of page tables to copy. With
// `huge`, asks for transparent huge pages instead (2 MiB each, so 512x
// fewer entries), where the kernel allows it.
class TouchedMemory {
 public:
  TouchedMemory(std::size_t mib, bool huge) : size_(mib << 20) {
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    data_ = static_cast<char*>(p);
    ::madvise(data_, size_, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    for (std::size_t i = 0; i < size_; i += 4096) data_[i] = 1;
  }
  ~TouchedMemory() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }
  TouchedMemory(const TouchedMemory&) = delete;
  TouchedMemory& operator=(const TouchedMemory&) = delete;
  bool ok() const { return size_ == 0 || data_ != nullptr; }

 private:
  std::size_t size_;
  char* data_ = nullptr;
};

void with_parent_memory(benchmark::State& state, const char* method) {
  const std::string_view m = method;
  TouchedMemory memory(static_cast<std::size_t>(state.range(0)), m == "fork_hugepages");
  if (!memory.ok()) {
    state.SkipWithError("cannot map the parent's memory");
    return;
  }
  if (m == "raw_fork") {
    raw_fork_waitpid(state);
  } else if (m == "fork" || m == "fork_hugepages") {
    process_start_join(state, mproc::StartMethod::fork);
  } else if (m == "spawn") {
    process_start_join(state, mproc::StartMethod::spawn);
  } else {
    process_start_join(state, mproc::StartMethod::forkserver);
  }
}

double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double max_of(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

benchmark::internal::Benchmark* common(benchmark::internal::Benchmark* b) {
  return b->UseRealTime()
      ->Unit(benchmark::kMicrosecond)
      ->ComputeStatistics("min", min_of)
      ->ComputeStatistics("max", max_of);
}

void register_all(bool parent_memory) {
  common(benchmark::RegisterBenchmark("raw/fork_waitpid", raw_fork_waitpid));
  common(benchmark::RegisterBenchmark("raw/posix_spawn_exec", raw_posix_spawn_exec));
  for (const auto method : mproc::get_all_start_methods()) {
    const std::string name = "Process/" + std::string(mproc::to_string(method));
    common(benchmark::RegisterBenchmark(name.c_str(), process_start_join, method));
  }
  common(benchmark::RegisterBenchmark("paired/Process_fork_vs_raw_fork", paired_fork));
  common(benchmark::RegisterBenchmark("paired/Process_spawn_vs_raw_spawn", paired_spawn));
  if (!parent_memory) return;
  for (const char* m : {"raw_fork", "fork", "fork_hugepages", "spawn", "forkserver"}) {
    const std::string name = std::string("parent_memory/") + m;
    common(benchmark::RegisterBenchmark(name.c_str(), with_parent_memory, m))
        ->ArgName("MiB")
        ->Arg(0)
        ->Arg(1024)
        ->Arg(2048)
        ->Iterations(10);
  }
}

// The console output, plus a table of ratios between medians at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  // Colours only on a terminal (Google Benchmark applies --benchmark_color
  // to its own default reporter only).
  RatioReporter() : ConsoleReporter(::isatty(STDOUT_FILENO) ? OO_Defaults : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      if (!median && !single) continue;
      Figures& f = figures_[r.run_name.function_name + args(r)];
      f.mean_us = r.GetAdjustedRealTime();
      const auto p50 = r.counters.find("p50_us");
      if (p50 != r.counters.end()) f.p50_us = p50->second.value;
      for (const char* c : {"raw_p50_us", "mproc_p50_us", "ratio"}) {
        const auto it = r.counters.find(c);
        if (it != r.counters.end()) f.paired[c] = it->second.value;
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    auto& out = GetOutputStream();
    out << "\nRatios, from this run's medians over repetitions of: the per-iteration median\n"
           "(p50_us) and the mean time per iteration (Time column). The targets are judged\n"
           "on p50; the mean also counts iterations that waited for a busy CPU.\n";
    ratio(out, "Process/fork", "raw/fork_waitpid", 1.5);
    ratio(out, "Process/spawn", "raw/posix_spawn_exec", 1.5);
    ratio(out, "Process/forkserver", "raw/fork_waitpid", 0);
    ratio(out, "Process/forkserver", "raw/posix_spawn_exec", 0);
    paired(out, "paired/Process_fork_vs_raw_fork", 1.5);
    paired(out, "paired/Process_spawn_vs_raw_spawn", 1.5);
    for (const char* m : {"raw_fork", "fork", "fork_hugepages", "spawn", "forkserver"}) {
      const std::string base = std::string("parent_memory/") + m;
      for (const char* mib : {"/MiB:1024", "/MiB:2048"}) {
        ratio(out, base + mib, base + "/MiB:0", 0);
      }
    }
  }

 private:
  struct Figures {
    double mean_us = 0;
    double p50_us = 0;
    std::map<std::string, double> paired;  // counters of a paired/ benchmark
  };

  static std::string args(const Run& r) { return r.run_name.args.empty() ? "" : "/" + r.run_name.args; }

  void ratio(std::ostream& out, const std::string& a, const std::string& b, double target) {
    const auto ia = figures_.find(a);
    const auto ib = figures_.find(b);
    if (ia == figures_.end() || ib == figures_.end() || ib->second.p50_us <= 0 ||
        ib->second.mean_us <= 0) {
      return;
    }
    const Figures& x = ia->second;
    const Figures& y = ib->second;
    const double r50 = x.p50_us / y.p50_us;
    char line[320];
    std::snprintf(line, sizeof line,
                  "  %-27s / %-22s p50 %7.0f / %7.0f us = %5.2fx   mean %7.0f / %7.0f us = %5.2fx",
                  a.c_str(), b.c_str(), x.p50_us, y.p50_us, r50, x.mean_us, y.mean_us,
                  x.mean_us / y.mean_us);
    out << line;
    if (target > 0) out << "  (target <= " << target << "x: " << (r50 <= target ? "met" : "MISSED") << ")";
    out << "\n";
  }

  void paired(std::ostream& out, const std::string& name, double target) {
    const auto it = figures_.find(name);
    if (it == figures_.end() || it->second.paired.size() != 3) return;
    auto& c = it->second.paired;
    char line[320];
    std::snprintf(line, sizeof line, "  %-50s p50 %7.0f / %7.0f us = %5.2fx (median of per-repetition ratios)",
                  name.c_str(), c["mproc_p50_us"], c["raw_p50_us"], c["ratio"]);
    out << line << "  (target <= " << target << "x: " << (c["ratio"] <= target ? "met" : "MISSED") << ")\n";
  }

  std::map<std::string, Figures> figures_;
};

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // first: spawn/forkserver children do their work here
  if (argc > 1 && std::strcmp(argv[1], kExitNow) == 0) ::_exit(0);  // raw/posix_spawn_exec's child

  // Our own flag, then Google Benchmark's defaults (which the command line
  // may override, since later flags win).
  bool parent_memory = false;
  std::vector<char*> args;
  args.push_back(argv[0]);
  std::string reps = "--benchmark_repetitions=5";
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  std::string aggregates = "--benchmark_display_aggregates_only=true";
  args.push_back(reps.data());
  args.push_back(interleave.data());
  args.push_back(aggregates.data());
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--with-parent-memory") == 0) {
      parent_memory = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;

  register_all(parent_memory);
  // Start the forkserver outside the measurements: its one-time start is
  // not part of a Process start.
  {
    mproc::ProcessOptions options;
    options.start_method = mproc::StartMethod::forkserver;
    mproc::Process warm(options, noop);
    warm.start();
    warm.join();
  }
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
