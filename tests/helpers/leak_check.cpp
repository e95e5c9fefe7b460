// leak_check.cpp: the per-test resource check (leak_check.hpp).

#include "helpers/leak_check.hpp"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "helpers/test_support.hpp"
#include "mproc/detail/launch.hpp"

namespace mproc_test {
namespace {

// How long resources may take to go away after a test before they count as
// leaked. Generous: only a leak ever waits this long.
constexpr auto kGrace = std::chrono::seconds(5);

std::mutex g_mu;
std::set<int> g_allowed_fds;
int g_leaking_tests = 0;

// Names in a directory, without "." and "..".
std::vector<std::string> list_dir(const char* path) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path);
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) out.emplace_back(e->d_name);
  }
  ::closedir(d);
  return out;
}

// Children of every thread of process `pid` ("self" for this one).
void add_children_of(const std::string& pid, std::set<pid_t>& out) {
  const std::string tasks = "/proc/" + pid + "/task";
  for (const auto& tid : list_dir(tasks.c_str())) {
    const auto text = read_file(tasks + "/" + tid + "/children");
    if (!text) continue;
    std::istringstream in(*text);
    pid_t child = 0;
    while (in >> child) out.insert(child);
  }
}

std::string fd_target(int fd) {
  char buf[512];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n < 0) return "?";
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string describe_process(pid_t pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::string cmdline = read_file(base + "/cmdline").value_or("");
  for (auto& c : cmdline) {
    if (c == '\0') c = ' ';
  }
  std::string state = "?";
  if (const auto stat = read_file(base + "/stat")) {
    const auto close = stat->rfind(')');
    if (close != std::string::npos && close + 2 < stat->size()) state = std::string(1, (*stat)[close + 2]);
  }
  return "child pid " + std::to_string(pid) + " (state " + state + ", cmdline '" + cmdline + "')";
}

// The parent pid of `pid`, or 0.
pid_t parent_of(pid_t pid) {
  const auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return 0;
  const auto close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat->substr(close + 2));
  char state = 0;
  pid_t ppid = 0;
  in >> state >> ppid;
  return ppid;
}

// Is /dev/shm/<name> open or mapped by a live process outside this
// process's tree? Then it belongs to some other program (or to a test
// running in parallel under ctest -j), not to this test.
bool shm_held_by_stranger(const std::string& name) {
  const pid_t self = ::getpid();
  const std::string full = "/dev/shm/" + name;
  for (const auto& entry : list_dir("/proc")) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry.c_str()));
    if (pid <= 0 || pid == self) continue;
    // Ours if `self` is an ancestor.
    bool ours = false;
    for (pid_t p = parent_of(pid), hops = 0; p > 1 && hops < 64; p = parent_of(p), ++hops) {
      if (p == self) {
        ours = true;
        break;
      }
    }
    if (ours) continue;
    const std::string base = "/proc/" + entry;
    if (const auto maps = read_file(base + "/maps"); maps && maps->find(full) != std::string::npos) return true;
    const std::string fd_dir = base + "/fd";
    for (const auto& fd : list_dir(fd_dir.c_str())) {
      char buf[512];
      const ssize_t n = ::readlink((fd_dir + "/" + fd).c_str(), buf, sizeof buf - 1);
      if (n > 0 && std::string(buf, static_cast<std::size_t>(n)) == full) return true;
    }
  }
  return false;
}

// A name made by unique_shm_name() in another, still running, test process.
bool shm_of_other_test(const std::string& name) {
  const std::string prefix = "mproctest-";
  if (name.rfind(prefix, 0) != 0) return false;
  const pid_t owner = static_cast<pid_t>(std::atol(name.c_str() + prefix.size()));
  return owner > 0 && owner != test_root_pid() && !pid_gone(owner);
}

struct Leaks {
  std::vector<pid_t> children;
  std::vector<int> fds;
  std::vector<std::string> shm;
  bool empty() const { return children.empty() && fds.empty() && shm.empty(); }
};

Leaks compare(const ResourceSnapshot& before, const ResourceSnapshot& now) {
  Leaks out;
  const pid_t server = mproc::detail::forkserver_pid();
  for (pid_t c : now.children) {
    if (c != server && !before.children.count(c)) out.children.push_back(c);
  }
  std::set<int> excused;
  for (int fd : mproc::detail::forkserver_fds()) excused.insert(fd);
  {
    std::lock_guard lock(g_mu);
    excused.insert(g_allowed_fds.begin(), g_allowed_fds.end());
  }
  for (const auto& [fd, target] : now.fds) {
    if (!before.fds.count(fd) && !excused.count(fd)) out.fds.push_back(fd);
  }
  for (const auto& name : now.shm) {
    if (!before.shm.count(name)) out.shm.push_back(name);
  }
  return out;
}

bool disabled() {
  const char* v = std::getenv("MPROCTEST_NO_LEAK_CHECK");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

}  // namespace

ResourceSnapshot take_snapshot() {
  ResourceSnapshot s;
  add_children_of("self", s.children);
  if (const int server = mproc::detail::forkserver_pid(); server > 0) {
    add_children_of(std::to_string(server), s.children);
  }
  for (int fd : open_fds()) s.fds.emplace(fd, fd_target(fd));
  for (auto& name : list_dir("/dev/shm")) s.shm.insert(std::move(name));
  return s;
}

void allow_fd(int fd) {
  std::lock_guard lock(g_mu);
  g_allowed_fds.insert(fd);
}

int leaking_test_count() {
  std::lock_guard lock(g_mu);
  return g_leaking_tests;
}

void LeakCheckListener::OnTestStart(const ::testing::TestInfo&) {
  active_ = !disabled();
  if (active_) before_ = take_snapshot();
}

void LeakCheckListener::OnTestEnd(const ::testing::TestInfo& test) {
  if (!active_) return;
  active_ = false;
  ResourceSnapshot now;
  Leaks leaks;
  wait_until(
      [&] {
        now = take_snapshot();
        leaks = compare(before_, now);
        return leaks.empty();
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(kGrace));

  // Shared-memory names that belong to someone else are not this test's.
  std::vector<std::string> shm;
  for (const auto& name : leaks.shm) {
    if (!shm_of_other_test(name) && !shm_held_by_stranger(name)) shm.push_back(name);
  }
  leaks.shm = std::move(shm);
  if (leaks.empty()) return;

  const std::string who = std::string(test.test_suite_name()) + "." + test.name();
  std::string report;
  for (pid_t c : leaks.children) report += "[  LEAKED  ] " + who + ": " + describe_process(c) + "\n";
  for (int fd : leaks.fds) {
    const auto it = now.fds.find(fd);
    report += "[  LEAKED  ] " + who + ": descriptor " + std::to_string(fd) + " -> " +
              (it != now.fds.end() ? it->second : std::string("?")) + "\n";
  }
  for (const auto& name : leaks.shm) report += "[  LEAKED  ] " + who + ": /dev/shm/" + name + "\n";
  std::fputs(report.c_str(), stderr);
  std::fflush(stderr);
  // gtest ends a test's events in reverse order of the listeners, so this
  // runs before the result printer: the failure is recorded against the
  // test that is still current and shows as its FAILED line. The counter
  // below is the backstop that main() turns into the exit code.
  ADD_FAILURE() << "mproc leak check: this test left resources behind:\n" << report;

  // Leaked children are not left running past their test (see the header).
  for (pid_t c : leaks.children) ::kill(c, SIGKILL);
  std::lock_guard lock(g_mu);
  ++g_leaking_tests;
}

}  // namespace mproc_test
