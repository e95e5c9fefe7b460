// pool_support.cpp: the helpers of pool_support.hpp.

#include "helpers/pool_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <sstream>
#include <thread>

#include "mproc/detail/launch.hpp"

namespace mproc_test {
namespace {

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(d);
  return out;
}

void add_children_of(const std::string& pid, std::set<pid_t>& out) {
  const std::string tasks = "/proc/" + pid + "/task";
  for (const auto& tid : list_dir(tasks)) {
    const auto text = read_file(tasks + "/" + tid + "/children");
    if (!text) continue;
    std::istringstream in(*text);
    pid_t child = 0;
    while (in >> child) out.insert(child);
  }
}

// The parent pid of `pid` from /proc/<pid>/stat ("pid (comm) S ppid ..."),
// or -1; `zombie` tells whether it is dead and unreaped.
pid_t parent_of(pid_t pid, bool& zombie) {
  zombie = false;
  const auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return -1;
  const auto close = stat->rfind(')');
  if (close == std::string::npos || close + 4 >= stat->size()) return -1;
  std::istringstream in(stat->substr(close + 2));
  char state = '?';
  pid_t ppid = -1;
  in >> state >> ppid;
  zombie = state == 'Z' || state == 'X';
  return ppid;
}

}  // namespace

HangGuard::HangGuard(std::chrono::milliseconds limit) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "a test";
  thread_ = std::thread([this, limit, name = std::move(name)] {
    std::unique_lock lock(mu_);
    waiting_ = true;
    cv_.notify_all();
    if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
      std::fprintf(stderr, "[  HUNG    ] %s: still running after %lld ms; aborting\n", name.c_str(),
                   static_cast<long long>(limit.count()));
      std::abort();
    }
  });
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return waiting_; });
}

HangGuard::~HangGuard() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::vector<pid_t> worker_pids() {
  std::set<pid_t> all;
  add_children_of("self", all);
  const pid_t server = mproc::detail::forkserver_pid();
  if (server > 0) add_children_of(std::to_string(server), all);
  std::vector<pid_t> out;
  for (pid_t p : all) {
    bool zombie = false;
    if (p == server) continue;
    if (parent_of(p, zombie) < 0 || zombie) continue;
    out.push_back(p);
  }
  return out;
}

bool kill_worker(pid_t pid) {
  // Open a pidfd first: from then on it names exactly this process, even if
  // the pid is recycled. Then check, through /proc, that the process it
  // names is still one of ours; if the pid had been recycled before the
  // pidfd was opened, the check fails because the new owner is no child of
  // ours (pids are handed out in order, so our own next child is a worker
  // as well).
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return false;
  bool zombie = false;
  const pid_t parent = parent_of(pid, zombie);
  const pid_t server = mproc::detail::forkserver_pid();
  bool sent = false;
  if (!zombie && pid != server && (parent == ::getpid() || (server > 0 && parent == server))) {
    sent = ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == 0;
  }
  ::close(pidfd);
  return sent;
}

std::size_t count_entries(const std::string& dir) { return list_dir(dir).size(); }

void prepare_to_die(int sig) {
  rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
  ::prctl(PR_SET_DUMPABLE, 0);
  ::signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

int rendezvous_in(const std::string& dir, int n) {
  const std::string mine = dir + "/" + std::to_string(::getpid());
  // An empty file made in one step: a reader never counts a half-made one.
  const int fd = ::open(mine.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  const auto deadline = std::chrono::steady_clock::now() + kGuard;
  while (count_entries(dir) < static_cast<std::size_t>(n)) {
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return static_cast<int>(::getpid());
}

bool wait_for_path(const std::string& path, std::chrono::milliseconds guard) {
  const auto deadline = std::chrono::steady_clock::now() + guard;
  while (::access(path.c_str(), F_OK) != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace mproc_test
