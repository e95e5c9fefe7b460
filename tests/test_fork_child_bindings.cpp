// test_fork_child_bindings.cpp: a forked pool worker binds no library
// function of its own (src/posix/launch_fork.cpp, child_calls).
//
// A function is bound to its address at its first call (lazy binding). A
// binding made in a fork child dies with it, and costs it a lookup through
// the hash tables of every loaded library, whose pages the child has not
// mapped: about ten page faults per worker, a quarter of its start-up.
// mproc binds in the parent, once, what its child path calls. This test
// watches the loader: it runs a pool in a fresh copy of the test program
// with LD_DEBUG=bindings, which logs every binding with the pid that made
// it, and expects none from a worker.

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/test_support.hpp"
#include "mproc/mproc.hpp"

extern char** environ;

namespace {

using mproc_test::TempDir;

constexpr const char* kProbeVar = "MPROCTEST_BINDINGS_PROBE";
constexpr const char* kTestName = "ForkChildBindings.AForkedWorkerBindsNoLibraryFunctionOfItsOwn";

// What the probe does with a pool: a worker's whole ordinary life. Start,
// tasks in and results out (chunked map, single round trips, imap), the
// stop, the exit.
void run_probe_pool() {
  mproc::PoolOptions<> options;
  options.processes = 2;
  options.start_method = mproc::StartMethod::fork;
  mproc::Pool pool(options);
  const std::vector<int> squares = pool.map([](int x) { return x * x; }, std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8});
  if (squares.at(7) != 64) std::abort();
  for (int i = 0; i < 20; ++i) {
    if (pool.apply([](int x) { return x + 1; }, i) != i + 1) std::abort();
  }
  long sum = 0;
  for (const long v : pool.imap([](int x) { return long{x}; }, std::vector<int>(500, 2))) sum += v;
  if (sum != 1000) std::abort();
  pool.close();
  pool.join();
}

// The pid at the start of each LD_DEBUG line ("  1234:\tbinding file ...").
std::vector<std::pair<pid_t, std::string>> bindings_in(const std::string& path) {
  std::vector<std::pair<pid_t, std::string>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("binding file") == std::string::npos) continue;
    std::istringstream fields(line);
    long pid = 0;
    if (fields >> pid) out.emplace_back(static_cast<pid_t>(pid), line);
  }
  return out;
}

TEST(ForkChildBindings, AForkedWorkerBindsNoLibraryFunctionOfItsOwn) {
  if (std::getenv(kProbeVar) != nullptr) {  // the probe: the copy under LD_DEBUG
    run_probe_pool();
    return;
  }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizer runtimes bind functions of their own in a child, and forks "
                  "race their allocators (pool_support.hpp)";
#endif
  TempDir dir;
  const std::string log = dir.file("ld");
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var(*e);
    // The probe is a test process of its own (leak check, root pid).
    if (var.rfind("MPROCTEST_ROOT_PID=", 0) == 0 || var.rfind("LD_", 0) == 0) continue;
    env_strings.push_back(var);
  }
  env_strings.push_back(std::string(kProbeVar) + "=1");
  env_strings.push_back("LD_DEBUG=bindings");
  env_strings.push_back("LD_DEBUG_OUTPUT=" + log);  // the loader adds ".<pid>"
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string arg0 = "mproc_tests";
  std::string filter = std::string("--gtest_filter=") + kTestName;
  std::vector<char*> argv{arg0.data(), filter.data(), nullptr};
  const std::string out = dir.file("out");

  const pid_t probe = ::fork();
  ASSERT_GE(probe, 0);
  if (probe == 0) {
    std::freopen(out.c_str(), "w", stdout);
    ::execve("/proc/self/exe", argv.data(), envp.data());
    ::_exit(127);
  }
  int status = 0;
  const bool ended = mproc_test::wait_until([&] { return ::waitpid(probe, &status, WNOHANG) == probe; });
  if (!ended) {
    ::kill(probe, SIGKILL);
    ::waitpid(probe, &status, 0);
    FAIL() << "the probe did not end";
  }
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the probe failed (status " << status << "): " << mproc_test::read_file(out).value_or("");

  const auto all = bindings_in(log + "." + std::to_string(probe));
  std::size_t own = 0;
  std::set<std::string> by_children;
  for (const auto& [pid, line] : all) {
    if (pid == probe) {
      ++own;
    } else {
      by_children.insert(line.substr(line.find("symbol")));
    }
  }
  if (own == 0) {
    GTEST_SKIP() << "the program is bound at load (-z now, or LD_BIND_NOW): there is no lazy "
                    "binding to watch";
  }
  std::string list;
  for (const std::string& s : by_children) list += "\n  " + s;
  EXPECT_TRUE(by_children.empty()) << "pool workers bound library functions themselves:" << list;
}

}  // namespace
