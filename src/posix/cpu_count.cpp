// cpu_count.cpp: how many CPUs this process may really use.
//
// std::thread::hardware_concurrency() counts the machine's CPUs. A process
// may be pinned to fewer (sched_setaffinity, taskset) or throttled to fewer
// by its cgroup's CPU quota (containers, systemd's CPUQuota=). A pool sized
// past either only adds contention, so cpu_count() takes the smallest.

#include <sched.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "mproc/process.hpp"

namespace mproc {
namespace {

// Quota in CPUs of a cgroup v2 directory ("max" = unlimited), or 0.
double cgroup2_quota(const std::string& dir) {
  std::ifstream f(dir + "/cpu.max");
  std::string quota;
  double period = 0;
  if (!(f >> quota >> period) || quota == "max" || period <= 0) return 0;
  return std::stod(quota) / period;
}

// The smallest CPU quota on the path from this process's cgroup to the root.
double cgroup_limit() {
  double best = 0;
  std::ifstream self("/proc/self/cgroup");
  std::string line;
  while (std::getline(self, line)) {
    if (line.rfind("0::", 0) == 0) {  // cgroup v2
      std::string path = line.substr(3);
      for (;;) {
        const double q = cgroup2_quota("/sys/fs/cgroup" + path);
        if (q > 0 && (best == 0 || q < best)) best = q;
        if (path.empty() || path == "/") break;
        path = path.substr(0, path.find_last_of('/'));
      }
    }
  }
  // cgroup v1, as mounted in most containers.
  std::ifstream q1("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), p1("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  double quota = 0, period = 0;
  if ((q1 >> quota) && (p1 >> period) && quota > 0 && period > 0) {
    const double q = quota / period;
    if (best == 0 || q < best) best = q;
  }
  return best;
}

}  // namespace

unsigned cpu_count() {
  unsigned n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = static_cast<unsigned>(CPU_COUNT(&set));
  if (n == 0) n = std::thread::hardware_concurrency();
  try {
    const double quota = cgroup_limit();
    if (quota > 0) n = std::min(n, static_cast<unsigned>(std::ceil(quota)));
  } catch (...) {
    // An unreadable or odd cgroup file: the affinity count stands.
  }
  return n == 0 ? 1 : n;
}

}  // namespace mproc
