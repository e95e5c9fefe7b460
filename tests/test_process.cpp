// test_process.cpp: tests of process.hpp, mproc::Process and the functions
// beside it (API.md section 3), under every start method.
//
// A child cannot use gtest assertions (they would fail in another process,
// unseen), so children report through their exit code or by writing a file
// whose path the test passes as an argument; the test then asserts on what
// came back. Every wait has a guard timeout (mproc_test::kGuard), and a
// child that should run until told to stop is killed by a guard object if
// an assertion ends the test early, so a failing test fails instead of
// hanging in ~Process.

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/process.hpp"
#include "mproc/start_method.hpp"

namespace {

using mproc::StartMethod;
using mproc_test::kGuard;
using mproc_test::pid_gone;
using mproc_test::wait_for_file;
using mproc_test::wait_until;
using mproc_test::write_file;
using namespace std::chrono_literals;

// ------------------------------------------------------- child targets ---
// Free functions: they cross as function pointers under spawn/forkserver.

// A child that is about to die by a signal does not leave a core file.
void no_core_dumps() {
  rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
  ::prctl(PR_SET_DUMPABLE, 0);
}

void returns_normally() {}
void exits_with_3() { ::_exit(3); }
void kills_itself() {
  no_core_dumps();
  ::raise(SIGKILL);
}
void aborts() {
  no_core_dumps();
  std::abort();
}
void throws_runtime_error() { throw std::runtime_error("target failed on purpose"); }
void throws_invalid_argument(std::string message) { throw std::invalid_argument(message); }

// Runs until killed. Bounded all the same: if the guard that should kill it
// failed, it still ends (the parent then sees exit code 97, not a hang).
void sleep_until_killed() {
  for (int i = 0; i < 1200; ++i) ::usleep(50 * 1000);
  ::_exit(97);
}

// Returns once the file `go` exists: the test decides when the child may
// finish, so "still running" is a fact, not a timing guess.
void wait_for_go(std::string go) {
  const bool told = wait_until([&] { return ::access(go.c_str(), F_OK) == 0; }, 50s);
  if (!told) ::_exit(98);
}

void write_text(std::string path, std::string text) { write_file(path, text); }

void write_pid(std::string path) { write_file(path, std::to_string(::getpid())); }

void write_pid_then_sleep(std::string path) {
  write_pid(path);
  sleep_until_killed();
}

// Lines: own name, own pid, parent_process() pid, parent_process() name.
void write_identity(std::string path) {
  const mproc::ProcessInfo me = mproc::current_process();
  const std::optional<mproc::ProcessInfo> parent = mproc::parent_process();
  std::string out = me.name() + "\n" + std::to_string(me.pid()) + "\n";
  out += parent ? std::to_string(parent->pid()) + "\n" + parent->name() + "\n" : "none\nnone\n";
  write_file(path, out);
}

void sum_arguments(std::string path, std::vector<int> v, std::map<std::string, int> m,
                   std::optional<double> o, std::pair<int, std::string> p) {
  long total = 0;
  for (int x : v) total += x;
  for (const auto& [k, x] : m) total += x + static_cast<long>(k.size());
  std::ostringstream out;
  out << total << " " << o.value_or(-1.0) << " " << p.first << p.second;
  write_file(path, out.str());
}

// Allocates and frees a lot (malloc's locks are the ones a threaded parent
// most often holds at fork), then reports.
void allocate_then_report(std::string path) {
  std::vector<std::string> v;
  for (int i = 0; i < 2000; ++i) v.emplace_back(100 + i % 50, 'a');
  std::map<int, std::vector<int>> m;
  for (int i = 0; i < 500; ++i) m[i].resize(static_cast<std::size_t>(i));
  write_file(path, "ok " + std::to_string(v.size() + m.size()));
}

// Writes the descriptors this child has beyond 0, 1, 2 (and beyond
// `inherited`, those the parent had at start(): a fork child is a copy and
// inherits them by design), then exits with their count.
void report_extra_fds(std::string path, std::vector<int> inherited) {
  std::string out;
  int extra = 0;
  for (int fd : mproc_test::open_fds()) {
    if (fd <= 2 || std::find(inherited.begin(), inherited.end(), fd) != inherited.end()) continue;
    char target[256] = {};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    out += std::to_string(fd) + " -> " + (n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "?") + "\n";
    ++extra;
  }
  write_file(path, out.empty() ? "none" : out);
  ::_exit(std::min(extra, 100));
}

// The intermediate of the orphan test: starts a grandchild with `method`
// that writes its pid and sleeps, then waits to be killed.
void start_grandchild_then_wait(StartMethod method, std::string pid_file) {
  mproc::ProcessOptions o;
  o.start_method = method;
  mproc::Process grandchild(o, write_pid_then_sleep, pid_file);
  grandchild.start();
  sleep_until_killed();
}

// Pins itself to one CPU, then exits with cpu_count().
void pinned_cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) ::_exit(90);
  int first = -1;
  for (int c = 0; c < CPU_SETSIZE && first < 0; ++c) {
    if (CPU_ISSET(c, &set)) first = c;
  }
  if (first < 0) ::_exit(91);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  if (::sched_setaffinity(0, sizeof one, &one) != 0) ::_exit(92);
  ::_exit(static_cast<int>(std::min(mproc::cpu_count(), 89u)));
}

// A function object that crosses through cereal (it holds a std::string).
struct Greeter {
  std::string greeting;
  int times = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(greeting, times);
  }
  void operator()(std::string path) const {
    std::string out;
    for (int i = 0; i < times; ++i) out += greeting;
    write_file(path, out);
  }
};

// Trivially copyable, captured by value in a lambda below.
struct Offset {
  int dx;
  int dy;
};

// ------------------------------------------------------------- helpers ---

// Kills the process when the scope ends if it is still running, so that a
// failed assertion does not leave ~Process joining a child that waits for a
// signal that never comes. Declare it after the Process it guards.
class KillAtScopeEnd {
 public:
  explicit KillAtScopeEnd(mproc::Process& p) : p_(p) {}
  ~KillAtScopeEnd() {
    try {
      if (p_.pid() != 0 && p_.is_alive()) p_.kill();
    } catch (...) {
    }
  }
  KillAtScopeEnd(const KillAtScopeEnd&) = delete;
  KillAtScopeEnd& operator=(const KillAtScopeEnd&) = delete;

 private:
  mproc::Process& p_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The N of a default name "Process-N", or -1.
int default_name_number(const std::string& name) {
  std::smatch m;
  if (!std::regex_match(name, m, std::regex("Process-([0-9]+)"))) return -1;
  return std::stoi(m[1].str());
}

// -------------------------------------------------------------- fixture ---

// Parameterised over the start method; the name keeps the house form
// (Process.<What>), ctest shows e.g. StartMethod/Process.KillGivesMinusNine/spawn.
class Process : public ::testing::TestWithParam<StartMethod> {
 protected:
  mproc::ProcessOptions options(std::string name = {}, bool daemon = false) const {
    mproc::ProcessOptions o;
    o.name = std::move(name);
    o.daemon = daemon;
    o.start_method = GetParam();
    return o;
  }

  // Starts `p`, joins it with a guard and returns its exit code (nullopt
  // if it did not end within the guard; it is killed then).
  static std::optional<int> run(mproc::Process& p) {
    p.start();
    if (!p.join(kGuard)) {
      p.kill();
      p.join(kGuard);
      ADD_FAILURE() << "the child did not end within " << kGuard.count() << " s";
      return std::nullopt;
    }
    return p.exitcode();
  }

  mproc_test::TempDir dir;
};

INSTANTIATE_TEST_SUITE_P(StartMethod, Process, mproc_test::all_start_methods(), mproc_test::start_method_name);

// ------------------------------------------------------------ exit codes ---

TEST_P(Process, ReturnGivesExitCodeZero) {
  mproc::Process p(options(), returns_normally);
  EXPECT_EQ(run(p), 0);
}

TEST_P(Process, UnderscoreExitGivesItsCode) {
  mproc::Process p(options(), exits_with_3);
  EXPECT_EQ(run(p), 3);
}

TEST_P(Process, SigkillOfItselfGivesMinusNine) {
  mproc::Process p(options(), kills_itself);
  EXPECT_EQ(run(p), -SIGKILL);
}

TEST_P(Process, AbortGivesMinusSix) {
  mproc::Process p(options(), aborts);
  EXPECT_EQ(run(p), -SIGABRT);
}

TEST_P(Process, ThrowingTargetGivesExitCodeOne) {
  // Captured so that the report the child prints does not clutter the log
  // (forkserver children print to the server's stderr instead).
  mproc_test::StderrCapture quiet;
  mproc::Process p(options(), throws_runtime_error);
  EXPECT_EQ(run(p), 1);
}

TEST_P(Process, ThrowingTargetPrintsTypeAndMessageToStderr) {
  if (GetParam() == StartMethod::forkserver) {
    // A forkserver child's stderr is the server's, fixed when the server
    // started; what it prints cannot be captured from here. Its exit code
    // is still checked.
    mproc::Process p(options("thrower"), throws_invalid_argument, "no way to capture this");
    mproc_test::StderrCapture quiet;
    EXPECT_EQ(run(p), 1);
    return;
  }
  mproc::Process p(options("thrower"), throws_invalid_argument, "bad input 1234");
  std::string text;
  {
    mproc_test::StderrCapture capture;
    EXPECT_EQ(run(p), 1);
    text = capture.text();
  }
  EXPECT_NE(text.find("std::invalid_argument"), std::string::npos) << "stderr was:\n" << text;
  EXPECT_NE(text.find("bad input 1234"), std::string::npos) << "stderr was:\n" << text;
  EXPECT_NE(text.find("thrower"), std::string::npos) << "the report should name the process; stderr was:\n"
                                                     << text;
}

TEST_P(Process, TerminateGivesMinusFifteen) {
  mproc::Process p(options(), sleep_until_killed);
  KillAtScopeEnd guard(p);
  p.start();
  p.terminate();
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGTERM);
}

TEST_P(Process, KillGivesMinusNine) {
  mproc::Process p(options(), sleep_until_killed);
  KillAtScopeEnd guard(p);
  p.start();
  p.kill();
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
}

TEST_P(Process, SignalsAfterTheEndChangeNothing) {
  mproc::Process p(options(), exits_with_3);
  ASSERT_EQ(run(p), 3);
  EXPECT_NO_THROW(p.terminate());
  EXPECT_NO_THROW(p.kill());
  EXPECT_EQ(p.exitcode(), 3);
  EXPECT_FALSE(p.is_alive());
}

// ---------------------------------------------------------------- state ---

TEST_P(Process, JoinWithTimeoutIsFalseWhileRunningThenTrue) {
  const std::string go = dir.file("go");
  mproc::Process p(options(), wait_for_go, go);
  KillAtScopeEnd guard(p);
  EXPECT_FALSE(p.exitcode().has_value());
  p.start();
  // The child cannot end before `go` exists.
  EXPECT_FALSE(p.join(50ms));
  EXPECT_FALSE(p.join(std::chrono::microseconds(1)));
  EXPECT_FALSE(p.exitcode().has_value());
  ASSERT_TRUE(write_file(go, "go"));
  EXPECT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_TRUE(p.join(0ms)) << "join on an ended process returns true at once";
}

TEST_P(Process, IsAliveFollowsTheChild) {
  const std::string go = dir.file("go");
  mproc::Process p(options(), wait_for_go, go);
  KillAtScopeEnd guard(p);
  EXPECT_FALSE(p.is_alive()) << "not started yet";
  p.start();
  EXPECT_TRUE(p.is_alive());
  ASSERT_TRUE(write_file(go, "go"));
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_FALSE(p.is_alive());
}

TEST_P(Process, PidIsTheChildsPid) {
  const std::string file = dir.file("pid");
  mproc::Process p(options(), write_pid, file);
  EXPECT_EQ(p.pid(), 0) << "no pid before start()";
  ASSERT_EQ(run(p), 0);
  EXPECT_GT(p.pid(), 0);
  EXPECT_NE(p.pid(), ::getpid());
  EXPECT_EQ(mproc_test::read_file(file), std::to_string(p.pid()));
}

TEST_P(Process, DefaultNamesCountUp) {
  mproc::Process a(options(), returns_normally);
  mproc::Process b(options(), returns_normally);
  const int na = default_name_number(a.name());
  const int nb = default_name_number(b.name());
  ASSERT_GT(na, 0) << a.name();
  ASSERT_GT(nb, 0) << b.name();
  EXPECT_EQ(nb, na + 1);
}

TEST_P(Process, CustomNameIsKeptAndSeenByTheChild) {
  const std::string file = dir.file("identity");
  mproc::Process p(options("custom-worker"), write_identity, file);
  EXPECT_EQ(p.name(), "custom-worker");
  ASSERT_EQ(run(p), 0);
  const auto lines = lines_of(mproc_test::read_file(file).value_or(""));
  ASSERT_GE(lines.size(), 1u);
  EXPECT_EQ(lines[0], "custom-worker");

  const std::string file2 = dir.file("identity2");
  mproc::Process q(options(), write_identity, file2);
  q.set_name("renamed");
  EXPECT_EQ(q.name(), "renamed");
  ASSERT_EQ(run(q), 0);
  const auto lines2 = lines_of(mproc_test::read_file(file2).value_or(""));
  ASSERT_GE(lines2.size(), 1u);
  EXPECT_EQ(lines2[0], "renamed");
}

TEST_P(Process, ChildSeesItsOwnIdentityAndItsParent) {
  const std::string file = dir.file("identity");
  mproc::Process p(options(), write_identity, file);
  ASSERT_EQ(run(p), 0);
  const auto lines = lines_of(mproc_test::read_file(file).value_or(""));
  ASSERT_EQ(lines.size(), 4u) << mproc_test::read_file(file).value_or("<no file>");
  EXPECT_EQ(lines[0], p.name());
  EXPECT_EQ(lines[1], std::to_string(p.pid()));
  EXPECT_EQ(lines[2], std::to_string(::getpid())) << "parent_process()->pid() in the child";
  EXPECT_EQ(lines[3], "MainProcess");
}

TEST_P(Process, DaemonFlag) {
  mproc::Process plain(options(), returns_normally);
  EXPECT_FALSE(plain.daemon());
  mproc::Process d(options({}, true), returns_normally);
  EXPECT_TRUE(d.daemon());
  plain.set_daemon(true);
  EXPECT_TRUE(plain.daemon());
  ASSERT_EQ(run(d), 0);
  EXPECT_THROW(d.set_daemon(false), mproc::Error) << "daemon cannot change after start()";
}

TEST_P(Process, DestroyingARunningDaemonTerminatesIt) {
  pid_t pid = 0;
  {
    mproc::Process d(options({}, true), sleep_until_killed);
    d.start();
    pid = d.pid();
    ASSERT_GT(pid, 0);
  }  // ~Process: SIGTERM, then join
  EXPECT_TRUE(pid_gone(pid));
}

TEST_P(Process, DestroyingARunningProcessJoinsIt) {
  const std::string go = dir.file("go");
  pid_t pid = 0;
  {
    mproc::Process p(options(), wait_for_go, go);
    p.start();
    pid = p.pid();
    ASSERT_TRUE(write_file(go, "go"));
  }  // ~Process joins: the child runs to its end
  EXPECT_TRUE(pid_gone(pid));
}

TEST_P(Process, SentinelBecomesReadableWhenTheChildEnds) {
  const std::string go = dir.file("go");
  mproc::Process p(options(), wait_for_go, go);
  KillAtScopeEnd guard(p);
  EXPECT_THROW((void)p.sentinel(), mproc::Error) << "no sentinel before start()";
  p.start();
  const int fd = p.sentinel();
  ASSERT_GE(fd, 0);
  pollfd pfd{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0) << "readable while the child still runs";
  ASSERT_TRUE(write_file(go, "go"));
  pfd.revents = 0;
  EXPECT_EQ(::poll(&pfd, 1, static_cast<int>(std::chrono::milliseconds(kGuard).count())), 1);
  EXPECT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(Process, StartingTwiceThrows) {
  mproc::Process p(options(), returns_normally);
  p.start();
  EXPECT_THROW(p.start(), mproc::Error);
  EXPECT_TRUE(p.join(kGuard));
  EXPECT_THROW(p.start(), mproc::Error) << "also after it ended";
}

TEST_P(Process, JoinBeforeStartThrows) {
  mproc::Process p(options(), returns_normally);
  EXPECT_THROW(p.join(), mproc::Error);
  EXPECT_THROW((void)p.join(1s), mproc::Error);
  mproc::Process empty;
  EXPECT_THROW(empty.start(), mproc::Error);
}

TEST_P(Process, ActiveChildrenListsRunningChildrenOnly) {
  const std::string go = dir.file("go");
  mproc::Process p(options("listed"), wait_for_go, go);
  KillAtScopeEnd guard(p);
  p.start();
  const auto running = mproc::active_children();
  const auto it = std::find_if(running.begin(), running.end(),
                               [&](const mproc::ProcessInfo& c) { return c.pid() == p.pid(); });
  ASSERT_NE(it, running.end()) << "a running child is missing from active_children()";
  EXPECT_EQ(it->name(), "listed");
  ASSERT_TRUE(write_file(go, "go"));
  ASSERT_TRUE(p.join(kGuard));
  for (const auto& c : mproc::active_children()) {
    EXPECT_NE(c.pid(), p.pid()) << "a joined child is still in active_children()";
  }
}

TEST_P(Process, ProcessesLiveInAVector) {
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 3; ++i) ps.emplace_back(options(), write_pid, dir.file("pid" + std::to_string(i)));
  for (auto& p : ps) p.start();
  for (auto& p : ps) ASSERT_TRUE(p.join(kGuard));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ps[i].exitcode(), 0);
    EXPECT_EQ(mproc_test::read_file(dir.file("pid" + std::to_string(i))), std::to_string(ps[i].pid()));
  }
}

// ----------------------------------------------------- what can be sent ---

TEST_P(Process, EveryKindOfCallableRuns) {
  // A function, and a pointer to one.
  mproc::Process by_name(options(), write_text, dir.file("function"), std::string("function"));
  void (*fp)(std::string, std::string) = &write_text;
  mproc::Process by_pointer(options(), fp, dir.file("pointer"), std::string("pointer"));
  // A lambda without captures.
  mproc::Process captureless(options(), [](std::string path) { write_file(path, "captureless"); },
                             dir.file("captureless"));
  // A lambda whose captures are all trivially copyable.
  const int k = 7;
  const double half = 0.5;
  const Offset off{3, 4};
  mproc::Process capturing(
      options(),
      [k, half, off](std::string path) {
        write_file(path, std::to_string(k) + " " + std::to_string(half + off.dx + off.dy));
      },
      dir.file("capturing"));
  // A function object with a cereal serialize().
  mproc::Process object(options(), Greeter{"hi", 3}, dir.file("object"));

  EXPECT_EQ(run(by_name), 0);
  EXPECT_EQ(run(by_pointer), 0);
  EXPECT_EQ(run(captureless), 0);
  EXPECT_EQ(run(capturing), 0);
  EXPECT_EQ(run(object), 0);
  EXPECT_EQ(mproc_test::read_file(dir.file("function")), "function");
  EXPECT_EQ(mproc_test::read_file(dir.file("pointer")), "pointer");
  EXPECT_EQ(mproc_test::read_file(dir.file("captureless")), "captureless");
  EXPECT_EQ(mproc_test::read_file(dir.file("capturing")), "7 " + std::to_string(7.5));
  EXPECT_EQ(mproc_test::read_file(dir.file("object")), "hihihi");
}

TEST_P(Process, StringLiteralArgumentBecomesAStdString) {
  // write_text takes std::string; the literal must not travel as a pointer.
  mproc::Process p(options(), write_text, dir.file("literal"), "from a literal");
  ASSERT_EQ(run(p), 0);
  EXPECT_EQ(mproc_test::read_file(dir.file("literal")), "from a literal");
  // A generic lambda has no parameter types to convert to: literals still
  // travel as std::string.
  mproc::Process g(
      options(), [](const auto& path, const auto& text) { write_file(path, std::string(text) + "!"); },
      dir.file("generic"), "generic");
  ASSERT_EQ(run(g), 0);
  EXPECT_EQ(mproc_test::read_file(dir.file("generic")), "generic!");
}

TEST_P(Process, ContainerArgumentsArrive) {
  mproc::Process p(options(), sum_arguments, dir.file("sum"), std::vector<int>{1, 2, 3},
                   std::map<std::string, int>{{"ab", 10}, {"c", 20}}, std::optional<double>(2.5),
                   std::make_pair(9, std::string("z")));
  ASSERT_EQ(run(p), 0);
  // 6 + (10 + 2) + (20 + 1) = 39
  EXPECT_EQ(mproc_test::read_file(dir.file("sum")), "39 2.5 9z");
}

// ---------------------------------------------------- threads and forks ---

TEST_P(Process, StartedFromASecondaryThreadWhileMainThreadIsBusy) {
  const std::string file = dir.file("pid");
  std::atomic<bool> done{false};
  std::optional<int> code;
  int pid = 0;
  std::thread t([&] {
    try {
      mproc::Process p(options(), write_pid, file);
      p.start();
      pid = p.pid();
      if (p.join(kGuard)) code = p.exitcode();
      else p.kill();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "starting from a thread threw: " << e.what();
    }
    done = true;
  });
  // Keep the main thread busy (not waiting in join) while the child starts.
  const auto deadline = std::chrono::steady_clock::now() + 2 * kGuard;
  volatile unsigned long spin = 0;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 10000; ++i) spin = spin + static_cast<unsigned long>(i);
  }
  t.join();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(mproc_test::read_file(file), std::to_string(pid));
}

TEST_P(Process, ChildOutlivesTheThreadThatStartedIt) {
  // PR_SET_PDEATHSIG fires when the *thread* that created a child exits;
  // the child must not be killed when its starting thread ends.
  const std::string go = dir.file("go");
  mproc::Process p;
  std::thread([&] {
    p = mproc::Process(options(), wait_for_go, go);
    p.start();
  }).join();
  KillAtScopeEnd guard(p);
  ASSERT_GT(p.pid(), 0);
  EXPECT_TRUE(p.is_alive());
  ASSERT_TRUE(write_file(go, "go"));
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 0) << "-9 means the child died with the thread that started it";
}

TEST_P(Process, StartedFromASecondaryThreadItCanBeTerminated) {
  // Children started off the main thread are created on mproc's launcher
  // thread, which blocks every signal; the child must get the signal mask
  // of the thread that started it, or SIGTERM would never reach it.
  mproc::Process p;
  std::thread([&] {
    p = mproc::Process(options(), sleep_until_killed);
    p.start();
  }).join();
  KillAtScopeEnd guard(p);
  p.terminate();
  ASSERT_TRUE(p.join(kGuard)) << "SIGTERM did not end the child: blocked in it?";
  EXPECT_EQ(p.exitcode(), -SIGTERM);
}

TEST_P(Process, StartsAndJoinsWhileAnotherThreadLocksAndAllocates) {
#if defined(__SANITIZE_ADDRESS__)
  // Not a limitation of mproc: GCC 12's ASan allocator does not take its
  // own locks around fork(), so a fork child that allocates while another
  // parent thread was inside ASan's malloc deadlocks in the allocator (seen
  // in gdb: __sanitizer::SizeClassAllocator64::GetFromAllocator). glibc's
  // malloc, which the other builds use, is fork-safe.
  if (GetParam() == StartMethod::fork) GTEST_SKIP() << "ASan's allocator is not fork-safe (see comment)";
#endif
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    while (!stop) {
      std::lock_guard lock(mu);
      std::vector<std::string> v;
      for (int i = 0; i < 64; ++i) v.emplace_back(static_cast<std::size_t>(32 + i), 'x');
    }
  });
  for (int i = 0; i < 8; ++i) {
    const std::string file = dir.file("out" + std::to_string(i));
    mproc::Process p(options(), allocate_then_report, file);
    const auto code = run(p);
    EXPECT_EQ(code, 0) << "child " << i;
    EXPECT_EQ(mproc_test::read_file(file), "ok 2500") << "child " << i;
    if (code != 0) break;
  }
  stop = true;
  busy.join();
}

TEST_P(Process, ChildHasNoDescriptorsBeyondStandardOnes) {
  const std::string report = dir.file("fds");
  // A fork child is a copy of this process and keeps what this process has
  // open (as in Python); spawn and forkserver children start clean.
  std::vector<int> inherited;
  if (GetParam() == StartMethod::fork) inherited = mproc_test::open_fds();
  mproc::Process p(options(), report_extra_fds, report, inherited);
  const auto code = run(p);
  EXPECT_EQ(code, 0) << "descriptors the child did not expect:\n" << mproc_test::read_file(report).value_or("?");
}

TEST_P(Process, NoOrphansWhenTheParentIsKilled) {
  // The intermediate process is a fork child that starts a grandchild with
  // the method under test, then is SIGKILLed: the grandchild must go too.
  const std::string pid_file = dir.file("grandchild");
  mproc::ProcessOptions o;
  o.start_method = StartMethod::fork;
  mproc::Process middle(o, start_grandchild_then_wait, GetParam(), pid_file);
  KillAtScopeEnd guard(middle);
  middle.start();
  const auto content = wait_for_file(pid_file);
  ASSERT_TRUE(content) << "the grandchild never wrote its pid";
  const pid_t grandchild = static_cast<pid_t>(std::stol(*content));
  ASSERT_GT(grandchild, 0);
  EXPECT_FALSE(pid_gone(grandchild)) << "the grandchild should be running before its parent is killed";
  middle.kill();
  ASSERT_TRUE(middle.join(kGuard));
  EXPECT_EQ(middle.exitcode(), -SIGKILL);
  const bool gone = wait_until([&] { return pid_gone(grandchild); }, 10s);
  EXPECT_TRUE(gone) << "grandchild " << grandchild << " outlived its killed parent";
  if (!gone) ::kill(grandchild, SIGKILL);  // do not leave it behind
}

// --------------------------------------------------------------- global ---

TEST(CurrentProcess, MainProcessHasNoParent) {
  const mproc::ProcessInfo me = mproc::current_process();
  EXPECT_EQ(me.name(), "MainProcess");
  EXPECT_EQ(me.pid(), ::getpid());
  EXPECT_FALSE(mproc::parent_process().has_value());
}

TEST(CpuCount, AtLeastOneAndAtMostTheMachine) {
  const unsigned n = mproc::cpu_count();
  EXPECT_GE(n, 1u);
  const unsigned hw = std::thread::hardware_concurrency();
  if (hw > 0) {
    EXPECT_LE(n, hw);
  }
}

TEST(CpuCount, ChildPinnedToOneCpuCountsOne) {
  mproc::ProcessOptions o;
  o.start_method = StartMethod::fork;
  mproc::Process p(o, pinned_cpu_count);
  p.start();
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 1) << "90-92: the child could not pin itself";
}

}  // namespace
