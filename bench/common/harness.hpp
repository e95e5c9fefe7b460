// bench/common/harness.hpp: the few helpers every benchmark program of
// bench/ shares (the mproc side of each workload and the physical
// references), so that all of them speak the same protocol to bench/run.py.
//
// Protocol: a program does its own warm-up, measures, and prints one line
// per metric on stdout:
//
//   RESULT <metric> <value> <unit>
//
// Anything else it prints is ignored by the runner. Command line: --quick
// (smaller sizes, for a smoke run), --processes N (pool size, default 2;
// used by the workloads that have a pool) and --touch-mib N (W1: make the
// parent big first, to show how fork's cost grows with it). A program measures one
// repetition per run; the runner repeats and alternates the programs.
//
// Header-only and dependency-free on purpose: the references must not link
// anything that could make them slower or faster than the raw system calls.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace bench {

struct Args {
  bool quick = false;
  int processes = 2;
  long touch_mib = 0;  // W1 and fork_waitpid: MiB the parent touches first
};

// Reads --quick, --processes N and --touch-mib N; ignores everything else (mproc::init has
// already consumed what belongs to it).
inline Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      a.quick = true;
    } else if (std::strcmp(argv[i], "--processes") == 0 && i + 1 < argc) {
      a.processes = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--touch-mib") == 0 && i + 1 < argc) {
      a.touch_mib = std::max(0L, std::atol(argv[++i]));
    }
  }
  return a;
}

// Seconds on the monotonic clock (the same clock in every process).
inline double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// The median of a non-empty sample (copied: callers keep their order).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// One machine-readable result line, flushed at once so that a later crash
// cannot swallow it.
inline void result(const char* metric, double value, const char* unit) {
  std::printf("RESULT %s %.9g %s\n", metric, value, unit);
  std::fflush(stdout);
}

// A fatal benchmark error: message on stderr, exit status 2 (the runner
// reports the workload as failed instead of reading garbage).
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(2);
}

// A field of /proc/self/status in KiB (VmRSS, VmHWM), or -1.
inline long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      return std::atol(line.c_str() + n + 1);
    }
  }
  return -1;
}

// Resets this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0:
// writing 5 to /proc/self/clear_refs). False where the kernel refuses.
inline bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

// Maps and touches `mib` MiB (one write per 4 KiB page, huge pages off),
// kept until exit: a big parent for fork to copy the page tables of.
inline void touch_memory(long mib) {
  if (mib <= 0) return;
  const std::size_t size = static_cast<std::size_t>(mib) << 20;
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("cannot map " + std::to_string(mib) + " MiB");
  ::madvise(p, size, MADV_NOHUGEPAGE);
  for (std::size_t i = 0; i < size; i += 4096) static_cast<volatile char*>(p)[i] = 1;
}

}  // namespace bench
