// test_cpython_semantics_more.cpp: a second pass over CPython's own
// multiprocessing test suite (Lib/test/_test_multiprocessing.py), for the
// parts test_cpython_semantics.cpp does not mirror and no other test file
// pins already.
//
// Each test names the CPython test it mirrors. Where API.md chose a C++
// shape (exceptions for Python's None/False returns, mproc::Error for
// ValueError/OSError, durations, ...), the test follows API.md. Where
// mproc differs from CPython on purpose, the test pins mproc's behaviour
// and says why (docs/design/start_methods.md, "Differences from Python").
//
// Children report through exit codes, shared values or pipes (gtest
// assertions do not work in another process). Every blocking call has a
// guard (kGuard) so that a regression fails instead of hanging; no test
// asserts that something was fast.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/process_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/mproc.hpp"

// PoolOptions is filled with designated initializers (as API.md shows);
// g++ 12's -Wextra warns about every field left at its default.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

using mproc::StartMethod;
using mproc_test::guarded;
using mproc_test::join_guarded;
using mproc_test::kGuard;
using mproc_test::process_options;
using mproc_test::KillAtScopeEnd;
using mproc_test::wait_for_go;
using mproc_test::TempDir;
using mproc_test::wait_until;
using namespace std::chrono_literals;

// ------------------------------------------------------------- helpers ---

// Puts the process-wide start method back to fork (the default) at scope
// end, so a test that changes it cannot change the tests after it.
struct RestoreStartMethod {
  ~RestoreStartMethod() { mproc::set_start_method(StartMethod::fork, true); }
};


// ======================================================== _TestProcess ===

class CPythonProcess2 : public ::testing::TestWithParam<StartMethod> {};

// _TestProcess._test_recursion: sends its id, then starts (and joins) two
// children with id+[0] and id+[1] while the id is shorter than 2. Returns
// false if a child did not end with 0.
bool recurse(mproc::Connection<std::vector<int>> w, std::vector<int> id, StartMethod m);
void recurse_child(mproc::Connection<std::vector<int>> w, std::vector<int> id, StartMethod m) {
  if (!recurse(std::move(w), std::move(id), m)) ::_exit(5);
}
bool recurse(mproc::Connection<std::vector<int>> w, std::vector<int> id, StartMethod m) {
  w.send(id);
  bool ok = true;
  if (id.size() < 2) {
    for (int i = 0; i < 2; ++i) {
      std::vector<int> next = id;
      next.push_back(i);
      mproc::Process p(process_options(m), recurse_child, w, next, m);
      p.start();
      if (!p.join(2 * kGuard)) {
        p.kill();
        p.join();
      }
      ok = ok && p.exitcode() == 0;
    }
  }
  return ok;
}

// _TestProcess.test_recursion: processes started from children (and
// grandchildren) run, in the order they were started and joined.
TEST_P(CPythonProcess2, RecursionStartsProcessesFromChildren) {
  auto [r, w] = mproc::Pipe<std::vector<int>>(false);
  EXPECT_TRUE(recurse(w, {}, GetParam())) << "a child or grandchild did not exit with 0";
  const std::vector<std::vector<int>> expected{{}, {0}, {0, 0}, {0, 1}, {1}, {1, 0}, {1, 1}};
  std::vector<std::vector<int>> result;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    ASSERT_TRUE(r.poll(kGuard)) << "message " << i;
    result.push_back(r.recv());
  }
  EXPECT_EQ(result, expected);
  EXPECT_FALSE(r.poll(0ms));
}

using Identity = std::tuple<std::string, int, std::string, int>;  // name, pid, parent's name, parent's pid

void report_identity(mproc::Connection<Identity> w) {
  const mproc::ProcessInfo me = mproc::current_process();
  const auto parent = mproc::parent_process();
  w.send(Identity{me.name(), me.pid(), parent ? parent->name() : "<none>", parent ? parent->pid() : -1});
}
void report_then_start_two(mproc::Connection<Identity> w, StartMethod m) {
  report_identity(w);
  for (int i = 0; i < 2; ++i) {
    mproc::Process p(process_options(m), report_identity, w);
    p.start();
    if (!p.join(2 * kGuard) || p.exitcode() != 0) ::_exit(5);
  }
}

// _TestProcess.test_parent_process_attributes one level down, and
// BaseProcess naming: the children of a default-named child are named
// "<its name>:1", "<its name>:2" (CPython: 'Process-' + ':'.join(identity)),
// and their parent_process() is that child.
TEST_P(CPythonProcess2, GrandchildrenAreNamedAfterTheirParentAndSeeIt) {
  auto [r, w] = mproc::Pipe<Identity>(false);
  mproc::Process p(process_options(GetParam()), report_then_start_two, w, GetParam());
  p.start();
  std::vector<Identity> got;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(r.poll(kGuard)) << "message " << i;
    got.push_back(r.recv());
  }
  EXPECT_EQ(join_guarded(p), 0);
  EXPECT_EQ(got[0], (Identity{p.name(), p.pid(), "MainProcess", static_cast<int>(::getpid())}));
  for (int i = 1; i <= 2; ++i) {
    EXPECT_EQ(std::get<0>(got[static_cast<std::size_t>(i)]), p.name() + ":" + std::to_string(i));
    EXPECT_EQ(std::get<2>(got[static_cast<std::size_t>(i)]), p.name());
    EXPECT_EQ(std::get<3>(got[static_cast<std::size_t>(i)]), p.pid());
  }
}

void put_and_nest_once(mproc::Queue<int> q, StartMethod m);
void put_one(mproc::Queue<int> q) { q.put(1); }
void put_and_nest_once(mproc::Queue<int> q, StartMethod m) {
  q.put(2);
  mproc::Process p(process_options(m), put_one, q);
  p.start();
  if (!p.join(2 * kGuard) || p.exitcode() != 0) ::_exit(5);
}

// TestStartMethod.test_nested_startmethod (gh-108520): a child passes its
// own arguments (here a Queue) on to a process it starts.
TEST_P(CPythonProcess2, ChildPassesItsQueueArgumentToAGrandchild) {
  mproc::Queue<int> q;
  mproc::Process p(process_options(GetParam()), put_and_nest_once, q, GetParam());
  p.start();
  EXPECT_EQ(join_guarded(p), 0);
  std::multiset<int> got;
  for (int i = 0; i < 2; ++i) got.insert(q.get(kGuard));
  EXPECT_EQ(got, (std::multiset<int>{1, 2}));
  EXPECT_TRUE(q.empty());
}

int square(int x) { return x * x; }
// TestStdinBadfiledescriptor.pool_in_process: a Pool inside a child.
void pool_in_process(mproc::Connection<std::vector<int>> w, StartMethod m) {
  mproc::Pool pool(mproc::PoolOptions<>{.processes = 2, .start_method = m});
  w.send(pool.map(square, std::vector{1, 2, 3, 4, 5, 6, 7}));
  pool.close();
  pool.join();
}

// TestStdinBadfiledescriptor.test_pool_in_process: a child can run a Pool
// of its own.
TEST_P(CPythonProcess2, PoolInsideAChild) {
  if (mproc_test::fork_pool_unsafe_under_sanitizers(GetParam())) {
    GTEST_SKIP() << "see pool_support.hpp";
  }
  auto [r, w] = mproc::Pipe<std::vector<int>>(false);
  mproc::Process p(process_options(GetParam()), pool_in_process, w, GetParam());
  p.start();
  ASSERT_TRUE(r.poll(kGuard));
  EXPECT_EQ(r.recv(), (std::vector<int>{1, 4, 9, 16, 25, 36, 49}));
  EXPECT_EQ(join_guarded(p), 0);
}

void report_start_method(mproc::Connection<StartMethod> w) { w.send(mproc::get_start_method()); }

// TestStartMethod.test_set_get / check_context: after
// set_start_method(m, force=True) a Process started without naming a
// method uses m, and the child's get_start_method() says m.
TEST_P(CPythonProcess2, TheChildSeesTheStartMethodThatWasSet) {
  RestoreStartMethod restore;
  mproc::set_start_method(GetParam(), true);
  auto [r, w] = mproc::Pipe<StartMethod>(false);
  mproc::Process p(report_start_method, w);
  p.start();
  ASSERT_TRUE(r.poll(kGuard));
  EXPECT_EQ(r.recv(), GetParam());
  EXPECT_EQ(join_guarded(p), 0);
}

// TestStartMethod.test_context / check_context: a child started through a
// context of method m (here: ProcessOptions::start_method = m, with another
// method set process-wide) reports m from get_start_method()
// (BaseProcess._bootstrap forces the child's start method).
void check_child_reports_its_own_method(StartMethod m) {
  RestoreStartMethod restore;
  mproc::set_start_method(m == StartMethod::spawn ? StartMethod::forkserver : StartMethod::spawn, true);
  auto [r, w] = mproc::Pipe<StartMethod>(false);
  mproc::Process p(process_options(m), report_start_method, w);
  p.start();
  ASSERT_TRUE(r.poll(kGuard));
  EXPECT_EQ(r.recv(), m) << "child started with " << mproc::to_string(m);
  EXPECT_EQ(join_guarded(p), 0);
}
TEST_P(CPythonProcess2, ChildReportsTheMethodItWasStartedWith) {
  check_child_reports_its_own_method(GetParam());
}

void noop() {}

// BaseProcess.__init__: every Process takes the next number of the
// parent's counter, named or not (count = next(_process_counter)), so a
// default name after a custom-named Process skips its number, and the
// children of a custom-named child are named "Process-<its number>:1"
// (from _identity, not from the custom name).
TEST_P(CPythonProcess2, CustomNamedProcessesStillTakeANumber) {
  mproc::Process a(process_options(GetParam()), noop);
  mproc::Process custom(process_options(GetParam(), "custom"), noop);
  mproc::Process c(process_options(GetParam()), noop);
  ASSERT_EQ(a.name().rfind("Process-", 0), 0u) << a.name();
  const int n = std::stoi(a.name().substr(8));
  EXPECT_EQ(c.name(), "Process-" + std::to_string(n + 2));

  auto [r, w] = mproc::Pipe<Identity>(false);
  mproc::Process d(process_options(GetParam()), noop);
  const int k = std::stoi(d.name().substr(8));
  mproc::Process named(process_options(GetParam(), "named"), report_then_start_two, w, GetParam());
  named.start();
  std::vector<Identity> got;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(r.poll(kGuard)) << "message " << i;
    got.push_back(r.recv());
  }
  EXPECT_EQ(join_guarded(named), 0);
  EXPECT_EQ(std::get<0>(got[1]), "Process-" + std::to_string(k + 1) + ":1");
  EXPECT_EQ(std::get<2>(got[1]), "named");
}

// CPython's test_lose_target_ref (bpo-30775): once started, a Process lets
// go of its target and arguments. Here the only write end of a pipe is an
// argument: when the child has sent its one message and ended, the reader
// sees the end of the stream. A parent that kept its copy of the argument
// would hold the pipe open, and the reader would wait for ever.
void send_one(mproc::Connection<int> w) { w.send(7); }

TEST_P(CPythonProcess2, LetsGoOfItsTargetAndArgumentsOnceStarted) {
  auto [r, w] = mproc::Pipe<int>(false);
  mproc::Process p(process_options(GetParam()), send_one, std::move(w));
  p.start();
  ASSERT_TRUE(r.poll(kGuard));
  EXPECT_EQ(r.recv(), 7);
  EXPECT_EQ(join_guarded(p), 0);
  ASSERT_TRUE(r.poll(kGuard)) << "the parent still holds the write end it gave the child";
  EXPECT_THROW(r.recv(), mproc::EOFError);
}

// CPython's test_parent_process, the half mproc can show: a child sees its
// parent alive. (The other half, a grandchild outliving its killed parent,
// cannot happen here: children die with their parent.) And a ProcessInfo
// of a child that has ended says so.
void report_parent_alive_then_wait(mproc::Connection<int> w, mproc::Event go) {
  const std::optional<mproc::ProcessInfo> parent = mproc::parent_process();
  w.send(parent && parent->is_alive() ? 1 : 0);
  if (!go.wait(2 * kGuard)) std::_Exit(90);
}

TEST_P(CPythonProcess2, ParentProcessIsAliveAndAnEndedChildIsNot) {
  EXPECT_TRUE(mproc::current_process().is_alive());
  auto [r, w] = mproc::Pipe<int>(false);
  mproc::Event go;
  mproc::Process p(process_options(GetParam()), report_parent_alive_then_wait, w, go);
  p.start();
  ASSERT_TRUE(r.poll(kGuard));
  EXPECT_EQ(r.recv(), 1) << "the child's parent_process() is not alive";
  std::optional<mproc::ProcessInfo> child;
  for (const mproc::ProcessInfo& info : mproc::active_children()) {
    if (info.pid() == p.pid()) child = info;
  }
  ASSERT_TRUE(child.has_value());
  EXPECT_TRUE(child->is_alive());
  go.set();
  EXPECT_EQ(join_guarded(p), 0);
  // A forkserver child is reaped by the server, a moment later: a zombie
  // is not alive either.
  EXPECT_FALSE(child->is_alive());
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonProcess2, mproc_test::all_start_methods(), mproc_test::start_method_name);

// ------------------------------------------------------- forkserver death ---

void write_done_after_go(std::string go, std::string done) {
  wait_for_go(go);
  mproc_test::write_file(done, "done");
}

// _TestProcess.check_forkserver_death: a child of the forkserver keeps
// running when the server gets SIGINT (it ignores SIGINT, as CPython's
// does), and new processes still start. After a SIGKILL of the server,
// CPython lets its running children go on; mproc's die with it (PDEATHSIG:
// otherwise they could outlive the user's program, which API.md rules out),
// and new processes still start (the server is restarted).
void check_forkserver_death(int sig) {
  TempDir dir;
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(StartMethod::forkserver), write_done_after_go, dir.file("go"), dir.file("done"));
  KillAtScopeEnd killer(ps);
  ps[0].start();
  const int server = mproc::detail::forkserver_pid();
  ASSERT_GT(server, 0);
  ASSERT_EQ(::kill(server, sig), 0);
  if (sig == SIGKILL) {
    ASSERT_TRUE(wait_until([&] { return mproc_test::pid_gone(server); }));
  }
  ps.emplace_back(process_options(StartMethod::forkserver), write_done_after_go, dir.file("go2"), dir.file("done2"));
  ps[1].start();
  ASSERT_TRUE(mproc_test::write_file(dir.file("go2"), "go"));
  EXPECT_EQ(join_guarded(ps[1]), 0);
  EXPECT_TRUE(mproc_test::read_file(dir.file("done2")).has_value());
  if (sig == SIGKILL) {
    EXPECT_EQ(join_guarded(ps[0]), -SIGKILL);
    return;
  }
  EXPECT_EQ(mproc::detail::forkserver_pid(), server) << "the server did not survive SIGINT";
  ASSERT_TRUE(mproc_test::write_file(dir.file("go"), "go"));
  EXPECT_EQ(join_guarded(ps[0]), 0);
  EXPECT_TRUE(mproc_test::read_file(dir.file("done")).has_value()) << "the first child did not complete";
}

TEST(CPythonForkserver, SigintToTheServerLeavesItsChildrenRunning) { check_forkserver_death(SIGINT); }
TEST(CPythonForkserver, SigkillToTheServerTakesItsChildrenAndANewServerStarts) { check_forkserver_death(SIGKILL); }

// ------------------------------------------------------------- atexit ---

std::string g_atexit_path;  // set in the child, read by its atexit handler
extern "C" void write_at_exit() { mproc_test::write_file(g_atexit_path, "deadbeef"); }
void register_atexit_handler(std::string path) {
  g_atexit_path = std::move(path);
  std::atexit(write_at_exit);
}

// _TestAtExit.test_atexit (gh-83856): an atexit handler the target
// registers runs when the child ends normally.
void check_atexit_in_child(StartMethod m) {
  TempDir dir;
  mproc::Process p(process_options(m), register_atexit_handler, dir.file("output.txt"));
  p.start();
  EXPECT_EQ(join_guarded(p), 0);
  EXPECT_EQ(mproc_test::read_file(dir.file("output.txt")), std::optional<std::string>("deadbeef"))
      << mproc::to_string(m);
}
TEST(CPythonAtExit, HandlerRegisteredInASpawnOrForkserverChildRuns) {
  check_atexit_in_child(StartMethod::spawn);
  check_atexit_in_child(StartMethod::forkserver);
}
// CPython's fork children also run the atexit handlers registered in the
// child (it clears the inherited ones first). C++ has no way to drop the
// handlers a fork child inherits (the parent's static destructors among
// them), so mproc's fork children end with _exit() and run none: see
// docs/design/start_methods.md, "Differences from Python".

// ========================================================== _TestQueue ===

class CPythonQueue2 : public ::testing::TestWithParam<StartMethod> {};

// TestSyncManagerTypes._test_queue: exit 0 when the child sees the two
// items put by the parent: qsize 2, full, not empty, 5 then 6, then empty.
template <class Q>
void check_two_items(Q q) {
  int bad = 0;
  if (q.qsize() != 2) bad |= 1;
  if (!q.full()) bad |= 2;
  if (q.empty()) bad |= 4;
  if (q.get(kGuard) != 5) bad |= 8;
  if (q.empty()) bad |= 16;
  if (q.get(kGuard) != 6) bad |= 32;
  if (!q.empty()) bad |= 64;
  if (bad != 0) ::_exit(bad);
}

// TestSyncManagerTypes.test_queue / test_joinable_queue: a child sees
// qsize/full/empty of a bounded queue filled by the parent, takes the
// items in order, and the parent then sees the queue empty and not full.
TEST_P(CPythonQueue2, ChildSeesSizeFullAndEmptyOfTheParentsItems) {
  mproc::Queue<int> q(2);
  q.put(5);
  q.put(6);
  mproc::Process p(process_options(GetParam()), check_two_items<mproc::Queue<int>>, q);
  p.start();
  EXPECT_EQ(join_guarded(p), 0) << "bits: 1 qsize, 2 full, 4 empty, 8 first, 16 empty, 32 second, 64 not empty";
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());

  mproc::JoinableQueue<int> jq(2);
  jq.put(5);
  jq.put(6);
  mproc::Process p2(process_options(GetParam()), check_two_items<mproc::JoinableQueue<int>>, jq);
  p2.start();
  EXPECT_EQ(join_guarded(p2), 0);
  EXPECT_TRUE(jq.empty());
  EXPECT_FALSE(jq.full());
  EXPECT_FALSE(jq.join(0ms)) << "two items were taken but no task_done() was called";
  jq.task_done();
  jq.task_done();
  EXPECT_TRUE(jq.join(0ms));
}

void put_two_to_five(mproc::Queue<int> q, mproc::Event child_can_start, mproc::Event parent_can_continue) {
  if (!child_can_start.wait(2 * kGuard)) ::_exit(90);
  for (int i = 2; i <= 5; ++i) q.put(i);
  parent_can_continue.set();
}

// _TestQueue.test_get: items a child put are taken by get(), get(timeout)
// and get_nowait(); then every non-blocking or timed get raises Empty.
TEST_P(CPythonQueue2, GetFlavoursTakeAChildsItemsThenRaiseEmpty) {
  mproc::Queue<int> q;
  mproc::Event child_can_start, parent_can_continue;
  mproc::Process p(process_options(GetParam()), put_two_to_five, q, child_can_start, parent_can_continue);
  p.start();
  EXPECT_TRUE(q.empty());
  child_can_start.set();
  ASSERT_TRUE(parent_can_continue.wait(kGuard));
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(kGuard), 3);
  EXPECT_EQ(q.get(1s), 4);
  EXPECT_EQ(q.get_nowait(), 5);
  EXPECT_TRUE(q.empty());
  EXPECT_THROW((void)q.get_nowait(), mproc::Empty);
  EXPECT_THROW((void)q.get(0ms), mproc::Empty);
  EXPECT_THROW((void)q.get(50ms), mproc::Empty);
  EXPECT_EQ(join_guarded(p), 0);
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonQueue2, mproc_test::all_start_methods(), mproc_test::start_method_name);

// =========================================================== _TestLock ===

class CPythonLock2 : public ::testing::TestWithParam<StartMethod> {};

// _TestLock._test_lock_locked_2processes: takes the lock, records what
// locked() says, signals, and holds it until told to go.
template <class L>
void hold_until_go(L lock, mproc::Event held, mproc::RawValue<int> res, std::string go) {
  lock.acquire();
  res.store(lock.locked() ? 1 : 0);
  held.set();
  wait_for_go(go);
  lock.release();
}

template <class L>
void check_locked_in_two_processes(StartMethod m) {
  TempDir dir;
  L lock;
  mproc::Event held;
  mproc::RawValue<int> res(0);
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(m), hold_until_go<L>, lock, held, res, dir.file("go"));
  KillAtScopeEnd killer(ps);
  EXPECT_FALSE(lock.locked());
  ps[0].start();
  ASSERT_TRUE(held.wait(kGuard));
  EXPECT_TRUE(lock.locked()) << "a lock held by another process";
  EXPECT_EQ(res.load(), 1) << "locked() in the holder";
  EXPECT_FALSE(lock.acquire(0ms));
  ASSERT_TRUE(mproc_test::write_file(dir.file("go"), "go"));
  EXPECT_EQ(join_guarded(ps[0]), 0);
  EXPECT_FALSE(lock.locked());
}

// _TestLock.test_lock_locked_2processes: locked() is true in both
// processes while a child holds the Lock.
TEST_P(CPythonLock2, LockLockedSeenFromBothProcesses) { check_locked_in_two_processes<mproc::Lock>(GetParam()); }

// _TestLock.test_rlock_locked_2processes: the same for an RLock.
TEST_P(CPythonLock2, RLockLockedSeenFromBothProcesses) { check_locked_in_two_processes<mproc::RLock>(GetParam()); }

void acquire_and_return(mproc::Lock lock) { lock.acquire(); }

// TestSyncManagerTypes.test_lock: a Lock a child acquired (and kept) is
// released by the parent; a second release raises.
TEST_P(CPythonLock2, ParentReleasesALockTheChildKept) {
  mproc::Lock lock;
  mproc::Process p(process_options(GetParam()), acquire_and_return, lock);
  p.start();
  EXPECT_EQ(join_guarded(p), 0);
  EXPECT_TRUE(lock.locked());
  EXPECT_NO_THROW(lock.release());
  EXPECT_THROW(lock.release(), mproc::Error);
  EXPECT_FALSE(lock.locked());
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonLock2, mproc_test::all_start_methods(), mproc_test::start_method_name);

// _TestLock.test_lock / test_rlock / test_lock_context: locked() follows
// acquire and release; a non-blocking acquire of a held Lock fails; the
// RLock stays locked until its last release; extra releases raise.
TEST(CPythonLockLocal, LockedFollowsAcquireAndRelease) {
  mproc::Lock lock;
  lock.acquire();
  EXPECT_TRUE(lock.locked());
  EXPECT_FALSE(lock.acquire(false));
  lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_THROW(lock.release(), mproc::Error);
  {
    std::lock_guard g(lock);
    EXPECT_TRUE(lock.locked());
  }
  EXPECT_FALSE(lock.locked());

  mproc::RLock rlock;
  EXPECT_TRUE(rlock.acquire(false));
  EXPECT_TRUE(rlock.locked());
  rlock.acquire();
  rlock.acquire();
  rlock.release();
  EXPECT_TRUE(rlock.locked());
  rlock.release();
  rlock.release();
  EXPECT_FALSE(rlock.locked());
  EXPECT_THROW(rlock.release(), mproc::Error);
  {
    std::lock_guard g(rlock);
    EXPECT_TRUE(rlock.locked());
  }
  EXPECT_FALSE(rlock.locked());
}

// ======================================================= _TestSemaphore ===

// _TestSemaphore.test_semaphore / test_bounded_semaphore / test_timeout:
// get_value() follows acquire and release; a plain Semaphore may be
// released past its start value; non-blocking and timed acquires of an
// empty one fail.
TEST(CPythonSemaphore, GetValueFollowsAcquireAndReleaseAndTimeoutsFail) {
  auto exercise = [](mproc::Semaphore& sem) {
    EXPECT_EQ(sem.get_value(), 2);
    sem.acquire();
    EXPECT_EQ(sem.get_value(), 1);
    EXPECT_TRUE(sem.acquire(false));
    EXPECT_EQ(sem.get_value(), 0);
    EXPECT_FALSE(sem.acquire(false));
    EXPECT_EQ(sem.get_value(), 0);
    sem.release();
    EXPECT_EQ(sem.get_value(), 1);
    sem.release();
    EXPECT_EQ(sem.get_value(), 2);
  };
  mproc::Semaphore sem(2);
  exercise(sem);
  sem.release();
  EXPECT_EQ(sem.get_value(), 3);
  sem.release();
  EXPECT_EQ(sem.get_value(), 4);

  mproc::BoundedSemaphore bounded(2);
  exercise(bounded);
  EXPECT_THROW(bounded.release(), mproc::Error);
  EXPECT_EQ(bounded.get_value(), 2);

  mproc::Semaphore empty(0);
  EXPECT_FALSE(empty.acquire(false));
  EXPECT_FALSE(empty.acquire(0ms));
  EXPECT_FALSE(empty.acquire(50ms));
  EXPECT_EQ(empty.get_value(), 0);
}

// ======================================================= _TestCondition ===

class CPythonCondition2 : public ::testing::TestWithParam<StartMethod> {};

void notify_under_the_lock(mproc::Condition c) {
  std::lock_guard g(c);
  c.notify();
}

// _TestCondition.test_wait_result: wait(0) and wait(0.1) return False
// without a notify; a notify from another process makes wait(60) return
// True.
TEST_P(CPythonCondition2, WaitResultIsFalseOnTimeoutAndTrueWhenNotified) {
  mproc::Condition c;
  std::unique_lock g(c);
  EXPECT_FALSE(c.wait(0ms));
  EXPECT_FALSE(c.wait(100ms));
  mproc::Process p(process_options(GetParam()), notify_under_the_lock, c);
  p.start();
  EXPECT_TRUE(c.wait(kGuard));
  g.unlock();
  EXPECT_EQ(join_guarded(p), 0);
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonCondition2, mproc_test::all_start_methods(), mproc_test::start_method_name);

// ========================================================= _TestBarrier ===
// CPython runs each party function in N-1 processes and in the test's own
// thread, on Barrier(N, timeout=30) (the default timeout is the hang guard).

constexpr int kParties = 4;

class CPythonBarrier2 : public ::testing::TestWithParam<StartMethod> {
 protected:
  // Runs f(args...) in kParties-1 processes and here; every process must
  // exit with 0.
  template <class F, class... A>
  void run_parties(F f, const A&... args) {
    std::vector<mproc::Process> ps;
    KillAtScopeEnd killer(ps);
    for (int i = 0; i < kParties - 1; ++i) {
      ps.emplace_back(process_options(GetParam()), f, args...);
      ps.back().start();
    }
    f(args...);
    for (auto& p : ps) EXPECT_EQ(join_guarded(p), 0);
  }
  mproc::Barrier barrier_{kParties, kGuard};
  mproc::RawValue<int> r1_{0}, r2_{0}, r3_{0};
};

struct PartyRaises {};

// _TestBarrier._test_wait_return_f / _test_abort_f.
void abort_party(mproc::Barrier b, mproc::RawValue<int> zeros, mproc::RawValue<int> r1, mproc::RawValue<int> r2) {
  try {
    const int i = b.wait();
    if (i == 0) zeros.fetch_add(1);
    if (i == kParties / 2) throw PartyRaises{};
    b.wait();
    r1.fetch_add(1);
  } catch (const mproc::BrokenBarrierError&) {
    r2.fetch_add(1);
  } catch (const PartyRaises&) {
    b.abort();
  }
}

// _TestBarrier.test_wait_return + test_abort: exactly one party gets
// index 0; an abort() breaks the barrier for every other party, which
// gets BrokenBarrierError; the barrier stays broken.
TEST_P(CPythonBarrier2, AbortBreaksItForEveryOtherParty) {
  mproc::RawValue<int> zeros(0);
  run_parties(abort_party, barrier_, zeros, r1_, r2_);
  EXPECT_EQ(zeros.load(), 1);
  EXPECT_EQ(r1_.load(), 0);
  EXPECT_EQ(r2_.load(), kParties - 1);
  EXPECT_TRUE(barrier_.broken());
}

// _TestBarrier._test_reset_f.
void reset_party(mproc::Barrier b, mproc::RawValue<int> r1, mproc::RawValue<int> r2, mproc::RawValue<int> r3) {
  const int i = b.wait();
  if (i == kParties / 2) {
    // Wait until the other parties are all in the barrier.
    const auto deadline = std::chrono::steady_clock::now() + kGuard;
    while (b.n_waiting() < kParties - 1 && std::chrono::steady_clock::now() < deadline) ::usleep(1000);
    b.reset();
  } else {
    try {
      b.wait();
      r1.fetch_add(1);
    } catch (const mproc::BrokenBarrierError&) {
      r2.fetch_add(1);
    }
  }
  // Now pass the barrier again.
  b.wait();
  r3.fetch_add(1);
}

// _TestBarrier.test_reset: reset() frees the waiting parties with
// BrokenBarrierError, and the barrier works again at once.
TEST_P(CPythonBarrier2, ResetFreesTheWaitersAndItWorksAgain) {
  run_parties(reset_party, barrier_, r1_, r2_, r3_);
  EXPECT_EQ(r1_.load(), 0);
  EXPECT_EQ(r2_.load(), kParties - 1);
  EXPECT_EQ(r3_.load(), kParties);
}

// _TestBarrier._test_abort_and_reset_f.
void abort_and_reset_party(mproc::Barrier b, mproc::Barrier b2, mproc::RawValue<int> r1, mproc::RawValue<int> r2,
                           mproc::RawValue<int> r3) {
  try {
    const int i = b.wait();
    if (i == kParties / 2) throw PartyRaises{};
    b.wait();
    r1.fetch_add(1);
  } catch (const mproc::BrokenBarrierError&) {
    r2.fetch_add(1);
  } catch (const PartyRaises&) {
    b.abort();
  }
  // Synchronize and reset the barrier: first so that everyone has left it
  // when it is reset, after so that no one enters it before.
  if (b2.wait() == kParties / 2) b.reset();
  b2.wait();
  b.wait();
  r3.fetch_add(1);
}

// _TestBarrier.test_abort_and_reset: a barrier broken by abort() is usable
// again for every party after reset().
TEST_P(CPythonBarrier2, AbortedBarrierWorksForEveryoneAfterReset) {
  mproc::Barrier b2(kParties, kGuard);
  run_parties(abort_and_reset_party, barrier_, b2, r1_, r2_, r3_);
  EXPECT_EQ(r1_.load(), 0);
  EXPECT_EQ(r2_.load(), kParties - 1);
  EXPECT_EQ(r3_.load(), kParties);
}

// _TestBarrier._test_timeout_f, made deterministic: instead of sleeping
// longer than the others' timeout, the late party waits until the barrier
// is broken before it arrives.
void timeout_party(mproc::Barrier b, mproc::RawValue<int> results, bool use_default) {
  const int i = b.wait(kGuard);
  if (i == kParties / 2) {
    const auto deadline = std::chrono::steady_clock::now() + kGuard;
    while (!b.broken() && std::chrono::steady_clock::now() < deadline) ::usleep(1000);
  }
  try {
    if (use_default) {
      (void)b.wait();
    } else {
      (void)b.wait(200ms);
    }
  } catch (const mproc::BrokenBarrierError&) {
    results.fetch_add(1);
  }
}

// _TestBarrier.test_timeout: one party is late; a wait(timeout) that runs
// out breaks the barrier and every party gets BrokenBarrierError.
TEST_P(CPythonBarrier2, AWaitTimeoutBreaksItForEveryParty) {
  run_parties(timeout_party, barrier_, r1_, false);
  EXPECT_EQ(r1_.load(), kParties);
  EXPECT_TRUE(barrier_.broken());
}

// _TestBarrier.test_default_timeout: the same through the barrier's
// default timeout (Barrier(N, timeout=...), wait() without one).
TEST_P(CPythonBarrier2, TheDefaultTimeoutBreaksItForEveryParty) {
  mproc::Barrier b(kParties, 200ms);
  run_parties(timeout_party, b, r1_, true);
  EXPECT_EQ(r1_.load(), kParties);
  EXPECT_TRUE(b.broken());
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonBarrier2, mproc_test::all_start_methods(), mproc_test::start_method_name);

// ================================================ handles used in a child ===

class CPythonHandles : public ::testing::TestWithParam<StartMethod> {};

// TestSyncManagerTypes._test_event/_test_semaphore/_test_barrier/
// _test_value/_test_array: what a child does to each handle. Exit code 0
// when everything it saw was right, else a bit per failed check.
void use_handles(mproc::Event e, mproc::Semaphore s, mproc::Barrier b, mproc::Value<int> v, mproc::Array<int> a) {
  int bad = 0;
  if (!e.is_set()) bad |= 1;
  e.wait();
  e.clear();
  if (e.wait(1ms)) bad |= 2;
  s.acquire();
  if (b.parties() != 5) bad |= 4;
  b.reset();
  if (v.load() != 1) bad |= 8;
  v.store(2);
  if (a.size() != 2 || a[0] != 0 || a[1] != 1) bad |= 16;
  if (bad != 0) ::_exit(bad);
}

// TestSyncManagerTypes: Event, Semaphore, Barrier, Value and Array used by
// a child; the parent sees the effects.
TEST_P(CPythonHandles, AChildUsesEachKindOfHandle) {
  mproc::Event e;
  e.set();
  mproc::Semaphore s(1);
  mproc::Barrier b(5);
  mproc::Value<int> v(1);
  mproc::Array<int> a{0, 1};
  mproc::Process p(process_options(GetParam()), use_handles, e, s, b, v, a);
  p.start();
  EXPECT_EQ(join_guarded(p), 0) << "bits: 1 is_set, 2 wait after clear, 4 parties, 8 value, 16 array";
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait(1ms));
  EXPECT_EQ(s.get_value(), 0);
  s.release();
  EXPECT_EQ(s.get_value(), 1);
  EXPECT_FALSE(b.broken());
  EXPECT_EQ(v.load(), 2);
}

// _TestSharedCTypes: a trivially copyable struct in a Value.
struct Foo {
  int x;
  double y;
  long long z;
};

// _TestSharedCTypes._double.
void double_everything(mproc::Value<int> x, mproc::Value<double> y, mproc::Value<long long> z, mproc::Value<Foo> foo,
                       mproc::Array<double> arr, mproc::Array<char> string) {
  {
    std::lock_guard g(x.get_lock());
    x.value() *= 2;
  }
  y.store(y.load() * 2);
  z.store(z.load() * 2);
  {
    std::lock_guard g(foo.get_lock());
    foo.value().x *= 2;
    foo.value().y *= 2;
  }
  {
    std::lock_guard g(string.get_lock());
    const std::size_t n = std::strlen(string.span().data());
    std::memcpy(string.span().data() + n, string.span().data(), n);
  }
  for (auto& d : arr) d *= 2;
}

// _TestSharedCTypes.test_sharedctypes / test_synchronize: numbers, a
// struct, an array of doubles and a char array "string" changed by a child.
TEST_P(CPythonHandles, SharedCTypesDoubledInAChild) {
  mproc::Value<int> x(7);
  mproc::Value<double> y(1.0 / 3.0);
  mproc::Value<long long> z(1LL << 33);
  mproc::Value<Foo> foo(Foo{3, 2.0, 0});
  mproc::Array<double> arr(10);
  for (std::size_t i = 0; i < arr.size(); ++i) arr[i] = static_cast<double>(i);
  mproc::Array<char> string(20);
  std::memcpy(string.span().data(), "hello", 5);
  mproc::Process p(process_options(GetParam()), double_everything, x, y, z, foo, arr, string);
  p.start();
  ASSERT_EQ(join_guarded(p), 0);
  EXPECT_EQ(x.load(), 14);
  EXPECT_DOUBLE_EQ(y.load(), 2.0 / 3.0);
  EXPECT_EQ(z.load(), 1LL << 34);
  EXPECT_EQ(foo.load().x, 6);
  EXPECT_DOUBLE_EQ(foo.load().y, 4.0);
  for (std::size_t i = 0; i < arr.size(); ++i) EXPECT_DOUBLE_EQ(arr[i], 2.0 * static_cast<double>(i));
  EXPECT_EQ(std::string(string.span().data()), "hellohello");
}

void write_into(mproc::SharedMemory shm, std::string text) {
  std::memcpy(shm.data(), text.data(), text.size());
  shm.close();
}
void attach_and_write(std::string name, std::string text) { write_into(mproc::SharedMemory::attach(name), text); }

// _TestSharedMemory.test_shared_memory_across_processes: a child attaches
// a block by its name, or gets the block itself, and writes into it; the
// parent sees the bytes. (CPython's block has a generated name; mproc's
// anonymous block has one too.)
TEST_P(CPythonHandles, SharedMemoryWrittenByAChildByNameAndAsAHandle) {
  auto sms = mproc::SharedMemory::create(512);
  mproc::Process p(process_options(GetParam()), attach_and_write, sms.name(), std::string("howdy"));
  p.start();
  ASSERT_EQ(join_guarded(p), 0);
  EXPECT_EQ(std::string(static_cast<const char*>(sms.data()), 5), "howdy");
  mproc::Process p2(process_options(GetParam()), write_into, sms, std::string("HELLO"));
  p2.start();
  ASSERT_EQ(join_guarded(p2), 0);
  EXPECT_EQ(std::string(static_cast<const char*>(sms.data()), 5), "HELLO");
  sms.close();
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonHandles, mproc_test::all_start_methods(), mproc_test::start_method_name);

// _TestSharedMemory.test_shared_memory_pickle_unpickle: a SharedMemory
// that went through a connection (pickled and unpickled) shows the same
// bytes, both ways; a named one keeps its name.
void check_handle_through_a_connection(bool named, bool check_name) {
  const std::string name = mproc_test::unique_shm_name("pickle");
  auto sms = named ? mproc::SharedMemory::create(name, 512) : mproc::SharedMemory::create(512);
  std::memcpy(sms.data(), "pickle", 6);
  auto [a, b] = mproc::Pipe<mproc::SharedMemory>();
  a.send(sms);
  mproc::SharedMemory sms2 = b.recv();
  if (check_name) {
    EXPECT_EQ(sms2.name(), sms.name()) << (named ? "named" : "anonymous");
  }
  EXPECT_EQ(std::string(static_cast<const char*>(sms2.data()), 6), "pickle");
  std::memcpy(sms.data(), "newval", 6);
  EXPECT_EQ(std::string(static_cast<const char*>(sms2.data()), 6), "newval");
  std::memcpy(sms2.data(), "oldval", 6);
  EXPECT_EQ(std::string(static_cast<const char*>(sms.data()), 6), "oldval");
  if (named) sms.unlink();
}
TEST(CPythonSharedMemory2, HandleThroughAConnectionIsTheSameBlock) {
  check_handle_through_a_connection(false, false);
  check_handle_through_a_connection(true, true);
}
// CPython also checks that an anonymous block keeps its name through a
// pickle. mproc's anonymous blocks have no name of their own: name() is
// "/proc/<pid>/fd/<n>" of each handle's own descriptor, which any process
// of the user can attach (shared_memory.hpp), so a received handle names
// its own descriptor (docs/design/start_methods.md, "Differences from
// Python").

// _TestSharedMemory.test_invalid_shared_memory_creation: a size that
// cannot be (CPython: size 0 or negative; here 0 or one that no system can
// give, what -2 turns into as a std::size_t) is refused.
TEST(CPythonSharedMemory2, ImpossibleSizesAreRefused) {
  EXPECT_THROW((void)mproc::SharedMemory::create(0), mproc::Error);
  EXPECT_THROW((void)mproc::SharedMemory::create(static_cast<std::size_t>(-2)), mproc::Error);
  EXPECT_THROW((void)mproc::SharedMemory::create(static_cast<std::size_t>(-1)), mproc::Error);
  const std::string name = mproc_test::unique_shm_name("huge");
  EXPECT_THROW((void)mproc::SharedMemory::create(name, static_cast<std::size_t>(-2)), mproc::Error);
  EXPECT_THROW((void)mproc::SharedMemory::attach(name), mproc::Error) << "a failed create left its name behind";
}

// ============================================================ _TestPool ===

int parse_int(std::string s) { return std::stoi(s); }
int raise_key_error() { throw std::out_of_range("key"); }
int raise_large_value_error(int) { throw std::invalid_argument(std::string(std::size_t{1} << 20, 'x')); }
void touch_init(std::string dir) { mproc_test::write_file(dir + "/" + std::to_string(::getpid()), "init"); }

class CPythonPool2 : public mproc_test::PoolTestByMethod {};

// _TestPool.test_map_async_callbacks: exactly one callback runs per
// map_async, the result callback with the list or the error callback with
// the exception (ValueError of int('a') here std::stoi's
// std::invalid_argument), and it has run by the time wait() returns.
TEST_P(CPythonPool2, MapAsyncCallsExactlyOneCallbackBeforeWaitReturns) {
  mproc::Pool pool(options());
  std::mutex mu;
  std::vector<std::string> calls;
  auto on_result = mproc::on_result([&](const std::vector<int>& v) {
    std::lock_guard g(mu);
    std::string s = "result:";
    for (int x : v) s += std::to_string(x);
    calls.push_back(s);
  });
  auto on_error = mproc::on_error([&](std::exception_ptr e) {
    std::lock_guard g(mu);
    try {
      std::rethrow_exception(e);
    } catch (const std::invalid_argument&) {
      calls.push_back("error:invalid_argument");
    } catch (...) {
      calls.push_back("error:other");
    }
  });
  ASSERT_TRUE(pool.map_async(parse_int, std::vector<std::string>{"1"}, on_result, on_error).wait(kGuard));
  {
    std::lock_guard g(mu);
    EXPECT_EQ(calls, (std::vector<std::string>{"result:1"}));
  }
  ASSERT_TRUE(pool.map_async(parse_int, std::vector<std::string>{"a"}, on_result, on_error).wait(kGuard));
  {
    std::lock_guard g(mu);
    EXPECT_EQ(calls, (std::vector<std::string>{"result:1", "error:invalid_argument"}));
  }
}

// _TestPoolWorkerErrors.test_async_error_callback: the error callback of
// apply_async has received the task's exception (KeyError, here
// std::out_of_range) by the time get() raises it.
TEST_P(CPythonPool2, ApplyAsyncErrorCallbackHasRunWhenGetRaises) {
  mproc::Pool pool(options());
  std::mutex mu;
  std::exception_ptr seen;
  auto r = pool.apply_async(raise_key_error, mproc::args(), mproc::on_error([&](std::exception_ptr e) {
                              std::lock_guard g(mu);
                              seen = e;
                            }));
  ASSERT_TRUE(r.wait(kGuard));
  EXPECT_THROW((void)r.get(), std::out_of_range);
  std::lock_guard g(mu);
  ASSERT_TRUE(seen);
  try {
    std::rethrow_exception(seen);
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "key");
  } catch (...) {
    ADD_FAILURE() << "the error callback got another type";
  }
}

// _TestPool.test_map_no_failfast (issue #23992): every task of a map
// raising a 1 MiB ValueError: map raises it (whole), and close()+join()
// then return instead of deadlocking.
TEST_P(CPythonPool2, MapWhereEveryTaskRaisesALargeErrorThenCloseAndJoin) {
  mproc::Pool pool(options());
  auto fut = guarded(pool, "map", [&] { return pool.map(raise_large_value_error, std::vector{0, 1}); });
  try {
    (void)fut.get();
    ADD_FAILURE() << "map did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::strlen(e.what()), std::size_t{1} << 20);
  }
  pool.close();
  guarded(pool, "join", [&] { pool.join(); }).get();
}

// _TestPool.test_make_pool: a pool of 3 has 3 processes.
TEST_P(CPythonPool2, MakePoolOfThree) {
  mproc::Pool pool(options(3));
  EXPECT_EQ(pool.processes(), 3u);
  pool.close();
  guarded(pool, "join", [&] { pool.join(); }).get();
}

// _TestPool.test_make_pool: Pool(-1) raises ValueError, like Pool(0). In
// C++ -1 becomes the largest std::size_t: mproc::Error, as for Pool(0)
// (also for ThreadPool).
TEST_P(CPythonPool2, MakePoolOfMinusOneThrowsError) {
  const mproc::PoolOptions<> minus_one{.processes = static_cast<std::size_t>(-1), .start_method = GetParam()};
  EXPECT_THROW({ mproc::Pool p(minus_one); }, mproc::Error);
  EXPECT_THROW({ mproc::Pool p(static_cast<std::size_t>(-1)); }, mproc::Error);
  EXPECT_THROW({ mproc::ThreadPool p(static_cast<std::size_t>(-1)); }, mproc::Error);
}

// TestInitializers.test_pool_initializer: the initializer runs in the
// worker even when no task is ever submitted (Pool(1, init); close; join).
TEST_P(CPythonPool2, InitializerRunsEvenWithoutTasks) {
  TempDir dir;
  {
    mproc::Pool pool(mproc::PoolOptions{.processes = 1,
                                        .initializer = touch_init,
                                        .initargs = std::make_tuple(dir.path()),
                                        .start_method = GetParam()});
    pool.close();
    guarded(pool, "join", [&] { pool.join(); }).get();
  }
  EXPECT_EQ(mproc_test::count_entries(dir.path()), 1u);
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonPool2, mproc_test::all_start_methods(), mproc_test::start_method_name);

// ======================================================= Listener / wait ===

class CPythonConnection2 : public ::testing::TestWithParam<StartMethod> {};

void client_sends_hello_and_closes(std::string address) {
  auto c = mproc::Client<std::string>(address);
  c.send("hello");
  c.close();
}

// _TestListenerClient.test_issue14725 (+ test_listener_client for each
// family): a client in a child connects, sends and closes before the
// listener accepts; the accepted connection still delivers the message.
TEST_P(CPythonConnection2, ClientThatClosedBeforeAcceptIsStillRead) {
  TempDir dir;
  for (const std::string& where : {dir.file("sock"), std::string("127.0.0.1:0")}) {
    mproc::Listener<std::string> l(where);
    mproc::Process p(process_options(GetParam()), client_sends_hello_and_closes, l.address());
    p.start();
    EXPECT_EQ(join_guarded(p), 0) << where;
    auto conn = l.accept();
    ASSERT_TRUE(conn.poll(kGuard)) << where;
    EXPECT_EQ(conn.recv(), "hello") << where;
    EXPECT_THROW((void)conn.recv(), mproc::EOFError) << where;
    l.close();
  }
}

using PidMessage = std::pair<int, int>;  // (i, pid)
void send_ten_then_close(mproc::Connection<PidMessage> w) {
  for (int i = 0; i < 10; ++i) w.send(PidMessage{i, static_cast<int>(::getpid())});
  w.close();
}

// TestWait.test_wait: wait() over the read ends of four children's pipes
// reports each one ready for every message and once more at its end
// (where recv raises EOFError); nothing is lost.
TEST_P(CPythonConnection2, WaitDrainsFourChildrenUntilEachEnds) {
  std::vector<mproc::Connection<PidMessage>> readers;
  std::vector<mproc::Process> ps;
  KillAtScopeEnd killer(ps);
  for (int i = 0; i < 4; ++i) {
    auto [r, w] = mproc::Pipe<PidMessage>(false);
    ps.emplace_back(process_options(GetParam()), send_ten_then_close, w);
    ps.back().start();
    w.close();
    readers.push_back(r);
  }
  std::vector<PidMessage> messages;
  while (!readers.empty()) {
    const auto ready = mproc::wait(readers, kGuard);
    ASSERT_FALSE(ready.empty()) << "wait timed out with " << readers.size() << " readers left";
    for (auto r : ready) {
      try {
        messages.push_back(r.recv());
      } catch (const mproc::EOFError&) {
        readers.erase(std::find(readers.begin(), readers.end(), r));
        r.close();
      }
    }
  }
  std::vector<PidMessage> expected;
  for (auto& p : ps) {
    EXPECT_EQ(join_guarded(p), 0);
    for (int i = 0; i < 10; ++i) expected.emplace_back(i, p.pid());
  }
  std::sort(messages.begin(), messages.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(messages, expected);
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonConnection2, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// TestWait.test_wait_timeout: nothing ready -> empty after the timeout;
// after b.send(), wait([a, b]) gives exactly [a].
TEST(CPythonWait2, TimeoutThenOnlyTheEndWithAMessage) {
  auto [a, b] = mproc::Pipe<int>();
  std::vector<mproc::Connection<int>> both{a, b};
  EXPECT_TRUE(mproc::wait(both, 100ms).empty());
  b.send(0);
  EXPECT_EQ(mproc::wait(both, kGuard), std::vector<mproc::Connection<int>>{a});
}

}  // namespace
