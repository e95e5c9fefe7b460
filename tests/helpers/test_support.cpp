// test_support.cpp: the helpers of test_support.hpp.

#include "helpers/test_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace mproc_test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/mproc-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("TempDir: mkdtemp(" + tmpl + ") failed: " + std::strerror(errno));
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool write_file(const std::string& path, const std::string& content) {
  // Plain POSIX calls: this runs in children, where iostreams would work
  // too, but a short, allocation-light path is easier to trust after fork.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return ::rename(tmp.c_str(), path.c_str()) == 0;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds guard) {
  const auto deadline = std::chrono::steady_clock::now() + guard;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

std::optional<std::string> wait_for_file(const std::string& path, std::chrono::milliseconds guard) {
  std::optional<std::string> content;
  wait_until(
      [&] {
        content = read_file(path);
        return content && !content->empty();
      },
      guard);
  if (content && content->empty()) return std::nullopt;
  return content;
}

bool pid_gone(pid_t pid) {
  if (pid <= 0) return true;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  // Still there: maybe only as a zombie. /proc/<pid>/stat is
  // "pid (comm) S ...", and comm may contain spaces or ')', so look after
  // the last ')'.
  const auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;  // vanished in between
  const auto close = stat->rfind(')');
  if (close == std::string::npos || close + 2 >= stat->size()) return false;
  const char state = (*stat)[close + 2];
  return state == 'Z' || state == 'X';
}

std::string start_method_name(const ::testing::TestParamInfo<mproc::StartMethod>& info) {
  return std::string(mproc::to_string(info.param));
}

StderrCapture::StderrCapture() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/mproc-stderr-XXXXXX";
  const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("StderrCapture: mkostemp failed");
  path_ = tmpl;
  std::fflush(stderr);
  saved_ = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
  // dup2 clears FD_CLOEXEC on the new fd 2, so spawned children inherit it.
  ::dup2(fd, 2);
  ::close(fd);
}

void StderrCapture::restore() {
  if (saved_ < 0) return;
  std::fflush(stderr);
  ::dup2(saved_, 2);
  ::close(saved_);
  saved_ = -1;
}

StderrCapture::~StderrCapture() {
  restore();
  if (!path_.empty()) ::unlink(path_.c_str());
}

std::string StderrCapture::text() {
  restore();
  return read_file(path_).value_or("");
}

std::vector<int> open_fds() {
  std::vector<int> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
  const int own = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd != own) out.push_back(fd);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

pid_t test_root_pid() {
  if (const char* v = std::getenv("MPROCTEST_ROOT_PID")) {
    const long pid = std::strtol(v, nullptr, 10);
    if (pid > 0) return static_cast<pid_t>(pid);
  }
  return ::getpid();
}

std::string unique_shm_name(const std::string& tag) {
  static std::atomic<unsigned> counter{0};
  return "mproctest-" + std::to_string(test_root_pid()) + "-" + tag + "-" +
         std::to_string(counter.fetch_add(1)) + "-" + std::to_string(::getpid());
}

}  // namespace mproc_test
