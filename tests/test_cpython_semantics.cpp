// test_cpython_semantics.cpp: what CPython's own multiprocessing test suite
// (Lib/test/_test_multiprocessing.py) asserts, for the features API.md maps,
// where the other test files do not already pin it.
//
// Each test names the CPython test it mirrors. Where API.md chose a C++
// shape (exceptions for Python's None/False returns, mproc::Error for
// ValueError/OSError, PoolClosedError, ...), the test follows API.md.
//
// Children report through exit codes, shared values or pipes (gtest
// assertions do not work in another process). Every blocking call has a
// guard (kGuard) so that a regression fails instead of hanging; no test
// asserts that something was fast.

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <typeinfo>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/process_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/mproc.hpp"

// PoolOptions is filled with designated initializers (as API.md shows);
// g++ 12's -Wextra warns about every field left at its default.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace cpython_test_types {
// CPython's SayWhenError(ValueError): raised by the *input* of a map, in
// the parent, never by a task.
class SayWhenError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};
}  // namespace cpython_test_types

namespace {

using cpython_test_types::SayWhenError;
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

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::transform(s.begin(), s.end(), out.begin(), [](char c) { return static_cast<std::byte>(c); });
  return out;
}
std::string string_of(const std::vector<std::byte>& b) {
  std::string out(b.size(), '\0');
  std::transform(b.begin(), b.end(), out.begin(), [](std::byte c) { return static_cast<char>(c); });
  return out;
}

// Runs `fn` on another thread; true if it returned within the guard. Used
// where the bug being guarded against is a call that never returns.
template <class Fn>
bool returns_within_guard(Fn fn) {
  auto fut = std::async(std::launch::async, std::move(fn));
  if (fut.wait_for(kGuard) != std::future_status::ready) {
    std::fprintf(stderr, "a call that should return at once is still blocked; aborting\n");
    std::abort();
  }
  fut.get();
  return true;
}

// ------------------------------------------------------- child targets ---

void sleep_long() {
  for (int i = 0; i < 1200; ++i) ::usleep(50 * 1000);
  ::_exit(97);
}
void write_pid_then_sleep(std::string path) {
  mproc_test::write_file(path, std::to_string(::getpid()));
  sleep_long();
}
void exit_via_std_exit(int code) { std::exit(code); }
void close_std_streams_and_return() {
  std::fflush(stdout);
  std::fflush(stderr);
  ::close(1);
  ::close(2);
}

// _TestQueue._test_fork: puts 10..19.
void put_ten_to_nineteen(mproc::Queue<int> q) {
  for (int i = 10; i < 20; ++i) q.put(i);
}

// _TestQueue._test_put: drains six items once allowed to.
void drain_six(mproc::Queue<int> q, mproc::Event child_can_start, mproc::Event parent_can_continue) {
  if (!child_can_start.wait(2 * kGuard)) ::_exit(90);
  for (int i = 0; i < 6; ++i) (void)q.get(kGuard);
  parent_can_continue.set();
}

// TestSimpleQueue._test_empty.
void put_emptiness_twice(mproc::SimpleQueue<bool> q, mproc::Event child_can_start,
                         mproc::Event parent_can_continue) {
  if (!child_can_start.wait(2 * kGuard)) ::_exit(90);
  q.put(q.empty());
  q.put(q.empty());
  parent_can_continue.set();
}

// Exit 0: releasing the parent's RLock threw mproc::Error, and the lock
// stayed unavailable to this process. 1: the release succeeded. 2: another
// exception type. 3: the child could take the lock.
void try_release_foreign_rlock(mproc::RLock lock) {
  int code = 0;
  try {
    lock.release();
    code = 1;
  } catch (const mproc::Error&) {
  } catch (...) {
    code = 2;
  }
  if (code == 0 && lock.acquire(0ms)) code = 3;
  ::_exit(code);
}

// _TestCondition.f: registers, waits (with `timeout_ms` or the guard), and
// counts a wake-up or a time-out.
void cond_waiter(mproc::Condition cond, mproc::RawValue<int> sleeping, mproc::RawValue<int> woken,
                 mproc::RawValue<int> timed_out, int timeout_ms) {
  std::unique_lock guard(cond);
  sleeping.fetch_add(1);
  const bool ok = cond.wait(timeout_ms > 0 ? std::chrono::milliseconds(timeout_ms)
                                           : std::chrono::milliseconds(2 * kGuard));
  (ok ? woken : timed_out).fetch_add(1);
}

// _TestCondition._test_waitfor_f.
void waitfor_child(mproc::Condition cond, mproc::Value<int> state) {
  std::unique_lock guard(cond);
  state.value() = 0;
  cond.notify();
  const bool result = cond.wait_for([&] { return state.value() == 4; }, 2 * kGuard);
  if (!result || state.value() != 4) ::_exit(1);
}

// _TestCondition._test_waitfor_timeout_f: exit 0 when wait_for timed out
// with a false predicate.
void waitfor_timeout_child(mproc::Condition cond, mproc::Value<int> state, mproc::Semaphore sem) {
  sem.release();
  std::unique_lock guard(cond);
  const bool result = cond.wait_for([&] { return state.value() == 4; }, 100ms);
  ::_exit(result ? 1 : 0);
}

// _TestBarrier._test_thousand_f.
void barrier_passes(mproc::Barrier barrier, int passes, mproc::Connection<int> conn, mproc::Lock lock) {
  for (int i = 0; i < passes; ++i) {
    barrier.wait();
    std::lock_guard g(lock);
    conn.send(i);
  }
}

// _TestValue._test.
template <template <class> class V>
void set_values(V<int> i, V<double> d, V<short> h, V<long long> q, V<char> c) {
  i.store(24234);
  d.store(-4.25);
  h.store(234);
  q.store(1LL << 34);
  c.store('y');
}

// Values of five types set in the parent, changed by a child (Value or
// RawValue).
template <template <class> class V>
void check_values_set_in_a_child(StartMethod m) {
  V<int> i(4343);
  V<double> d(3.625);
  V<short> h(-232);
  V<long long> q(1LL << 33);
  V<char> c('x');
  EXPECT_EQ(i.load(), 4343);
  EXPECT_EQ(d.load(), 3.625);
  EXPECT_EQ(h.load(), -232);
  EXPECT_EQ(q.load(), 1LL << 33);
  EXPECT_EQ(c.load(), 'x');
  mproc::Process p(process_options(m), set_values<V>, i, d, h, q, c);
  p.start();
  ASSERT_EQ(join_guarded(p), 0);
  EXPECT_EQ(i.load(), 24234);
  EXPECT_EQ(d.load(), -4.25);
  EXPECT_EQ(h.load(), 234);
  EXPECT_EQ(q.load(), 1LL << 34);
  EXPECT_EQ(c.load(), 'y');
}

// _TestArray.f: prefix sums in place.
void prefix_sums(mproc::Array<int> a) {
  std::lock_guard g(a.get_lock());
  for (std::size_t i = 1; i < a.size(); ++i) a[i] += a[i - 1];
}
void prefix_sums_raw(mproc::RawArray<int> a) {
  for (std::size_t i = 1; i < a.size(); ++i) a[i] += a[i - 1];
}

// _TestPoll._child_strings.
void send_strings(mproc::Connection<std::string> c, std::vector<std::string> strings) {
  for (const auto& s : strings) c.send_bytes(bytes_of(s));
  c.close();
}
// _TestPoll._child_boundaries: polls, never reads.
void poll_only(mproc::Connection<std::string> r) { (void)r.poll(5s); }
// _TestPoll._child_dont_merge.
void send_a_b_cd(mproc::Connection<std::string> c) {
  c.send_bytes(bytes_of("a"));
  c.send_bytes(bytes_of("b"));
  c.send_bytes(bytes_of("cd"));
}
// _TestConnection._echo: echoes byte messages until an empty one.
void echo_bytes(mproc::Connection<std::string> c) {
  try {
    for (;;) {
      auto msg = c.recv_bytes();
      if (msg.empty()) break;
      c.send_bytes(msg);
    }
  } catch (const mproc::EOFError&) {
    ::_exit(3);
  }
  c.close();
}

// ------------------------------------------------------------ Process ---

class CPythonProcess : public ::testing::TestWithParam<StartMethod> {};

// Starts a child that runs until told to, joins it with `timeout` on
// another thread, and checks that the join returned false at once and the
// child is still running. If the join blocks, the child is told to finish
// after a guard (which ends the join) and the test fails.
void check_short_join_while_running(StartMethod m, std::chrono::milliseconds timeout) {
  TempDir dir;
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(m), wait_for_go, dir.file("go"));
  KillAtScopeEnd killer(ps);
  mproc::Process& p = ps[0];
  p.start();
  auto fut = std::async(std::launch::async, [&p, timeout] { return p.join(timeout); });
  if (fut.wait_for(kGuard / 4) != std::future_status::ready) {
    ADD_FAILURE() << "join(" << timeout.count() << "ms) blocked while the child runs";
    ASSERT_TRUE(mproc_test::write_file(dir.file("go"), "go"));
    (void)fut.get();
    return;
  }
  EXPECT_FALSE(fut.get()) << "join(" << timeout.count() << "ms)";
  EXPECT_TRUE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  ASSERT_TRUE(mproc_test::write_file(dir.file("go"), "go"));
  EXPECT_EQ(join_guarded(p), 0);
  EXPECT_FALSE(p.is_alive());
}

// _TestProcess._kill_process: join(0) returns at once (None) while the
// child runs; it is still alive, with no exit code.
TEST_P(CPythonProcess, JoinWithZeroTimeoutReturnsAtOnceWhileRunning) {
  check_short_join_while_running(GetParam(), 0ms);
}

// _TestProcess._kill_process: join(-1) returns at once as well (CPython's
// Popen.wait passes the negative timeout to connection.wait, which treats
// it as 0).
TEST_P(CPythonProcess, JoinWithNegativeTimeoutReturnsAtOnceWhileRunning) {
  check_short_join_while_running(GetParam(), -1000ms);
}

// _TestProcess.test_many_processes: children terminated right after
// start() all end with exit code -SIGTERM.
TEST_P(CPythonProcess, TerminateRightAfterStartGivesMinusSigterm) {
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 4; ++i) ps.emplace_back(process_options(GetParam()), sleep_long);
  KillAtScopeEnd killer(ps);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.terminate();
  for (auto& p : ps) EXPECT_EQ(join_guarded(p), -SIGTERM);
}

// _TestProcess.test_sentinel: no sentinel before start (ValueError in
// CPython); not ready while running; ready after the end.
TEST_P(CPythonProcess, SentinelBeforeStartThrowsAndIsReadyOnlyAfterTheEnd) {
  TempDir dir;
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(GetParam()), wait_for_go, dir.file("go"));
  KillAtScopeEnd killer(ps);
  mproc::Process& p = ps[0];
  EXPECT_THROW((void)p.sentinel(), mproc::Error);
  p.start();
  const int s = p.sentinel();
  EXPECT_TRUE(mproc::wait(std::vector<int>{s}, 0ms).empty());
  ASSERT_TRUE(mproc_test::write_file(dir.file("go"), "go"));
  EXPECT_EQ(join_guarded(p), 0);
  EXPECT_EQ(mproc::wait(std::vector<int>{s}, 1s), std::vector<int>{s});
}

// _TestSubclassingProcess.test_sys_exit: sys.exit(8) -> 8, sys.exit() -> 0.
// The C++ spelling of sys.exit is std::exit.
TEST_P(CPythonProcess, StdExitInTheTargetGivesItsCode) {
  for (int code : {8, 0, 1}) {
    mproc::Process p(process_options(GetParam()), exit_via_std_exit, code);
    p.start();
    EXPECT_EQ(join_guarded(p), code) << "std::exit(" << code << ")";
  }
}

// _TestProcess.test_error_on_stdio_flush_2: a child that breaks its own
// standard streams still ends normally.
TEST_P(CPythonProcess, ChildClosingItsStdStreamsStillExitsZero) {
  mproc::Process p(process_options(GetParam()), close_std_streams_and_return);
  p.start();
  EXPECT_EQ(join_guarded(p), 0);
}

// _TestProcess.test_interrupt_no_handler: a child with the default SIGINT
// disposition, interrupted, ends with exit code -SIGINT (under every start
// method: the forkserver's own SIGINT handling must not leak into children).
TEST_P(CPythonProcess, SigintToAChildWithoutAHandlerGivesMinusSigint) {
  TempDir dir;
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(GetParam()), write_pid_then_sleep, dir.file("pid"));
  KillAtScopeEnd killer(ps);
  mproc::Process& p = ps[0];
  p.start();
  ASSERT_TRUE(mproc_test::wait_for_file(dir.file("pid"))) << "the child never ran";
  ASSERT_EQ(::kill(p.pid(), SIGINT), 0);
  EXPECT_EQ(join_guarded(p), -SIGINT);
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonProcess, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// --------------------------------------------------------------- Queue ---

class CPythonQueue : public ::testing::TestWithParam<StartMethod> {};

// _TestQueue.test_fork: items put before the child started and items the
// child puts all arrive, in order; then the queue is empty.
TEST_P(CPythonQueue, ItemsOfParentAndChildArriveInOrderThenEmpty) {
  mproc::Queue<int> q;
  for (int i = 0; i < 10; ++i) q.put(i);
  mproc::Process p(process_options(GetParam()), put_ten_to_nineteen, q);
  p.start();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(q.get(kGuard), i);
  EXPECT_THROW((void)q.get_nowait(), mproc::Empty);
  EXPECT_EQ(join_guarded(p), 0);
}

// _TestQueue.test_put: empty()/full() follow puts in this process and gets
// in another; every non-blocking or timed put on a full queue raises Full.
TEST_P(CPythonQueue, FullAndEmptyFollowAConsumerInAnotherProcess) {
  constexpr int kMax = 6;
  mproc::Queue<int> q(kMax);
  mproc::Event child_can_start, parent_can_continue;
  mproc::Process p(process_options(GetParam()), drain_six, q, child_can_start, parent_can_continue);
  p.start();
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  q.put(1);
  q.put(2, kGuard);
  q.put(3);
  q.put_nowait(4);
  q.put(5, 0ms);
  q.put_nowait(6);
  EXPECT_FALSE(q.empty());
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 6u);
  EXPECT_THROW(q.put_nowait(7), mproc::Full);
  EXPECT_THROW(q.put(7, 0ms), mproc::Full);
  EXPECT_THROW(q.put(7, 20ms), mproc::Full);
  child_can_start.set();
  ASSERT_TRUE(parent_can_continue.wait(kGuard));
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  EXPECT_EQ(join_guarded(p), 0);
}

// TestSimpleQueue.test_empty: empty() is right in the parent and in a child.
TEST_P(CPythonQueue, SimpleQueueEmptyInParentAndChild) {
  mproc::SimpleQueue<bool> q;
  mproc::Event child_can_start, parent_can_continue;
  mproc::Process p(process_options(GetParam()), put_emptiness_twice, q, child_can_start, parent_can_continue);
  p.start();
  EXPECT_TRUE(q.empty());
  child_can_start.set();
  ASSERT_TRUE(parent_can_continue.wait(kGuard));
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.get(), true);
  EXPECT_EQ(q.get(), false);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(join_guarded(p), 0);
  // TestSimpleQueue.test_close: closing twice is harmless.
  q.close();
  q.close();
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonQueue, mproc_test::all_start_methods(), mproc_test::start_method_name);

// _TestQueue.test_qsize + JoinableQueue.join() with no unfinished task
// returns at once (test_shutdown_empty's join worker ends).
TEST(CPythonQueueLocal, QsizeCountsAndJoinWithNothingPutReturns) {
  mproc::JoinableQueue<int> q;
  EXPECT_TRUE(q.join(0ms));
  EXPECT_EQ(q.qsize(), 0u);
  q.put(1);
  EXPECT_EQ(q.qsize(), 1u);
  q.put(5);
  EXPECT_EQ(q.qsize(), 2u);
  (void)q.get();
  EXPECT_EQ(q.qsize(), 1u);
  (void)q.get();
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_FALSE(q.join(0ms)) << "two tasks are still open";
  q.task_done();
  q.task_done();
  EXPECT_TRUE(q.join(0ms));
  EXPECT_THROW(q.task_done(), mproc::Error);
}

// _TestQueue: Queue(maxsize <= 0) is unbounded, as in CPython.
TEST(CPythonQueueLocal, NonPositiveMaxsizeIsUnbounded) {
  mproc::Queue<int> q(-1);
  for (int i = 0; i < 100; ++i) q.put_nowait(i);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 100u);
}

// TestWait.test_neg_timeout, _TestCondition.test_wait_result (wait(0)),
// _TestSemaphore.test_timeout: zero and negative timeouts never block; they
// report "not ready" (False / TimeoutError / BrokenBarrierError).
TEST(CPythonTimeouts, ZeroAndNegativeTimeoutsNeverBlock) {
  mproc::Condition cond;
  mproc::Semaphore sem(0);
  mproc::JoinableQueue<int> jq;
  jq.put(1);
  for (auto t : {0ms, -1000ms}) {
    bool cw = true, sa = true, jj = true;
    returns_within_guard([&] {
      std::lock_guard g(cond);
      cw = cond.wait(t);
    });
    returns_within_guard([&] { sa = sem.acquire(t); });
    returns_within_guard([&] { jj = jq.join(t); });
    EXPECT_FALSE(cw) << t.count();
    EXPECT_FALSE(sa) << t.count();
    EXPECT_FALSE(jj) << t.count();
    mproc::Barrier b(2);
    returns_within_guard([&] { EXPECT_THROW((void)b.wait(t), mproc::BrokenBarrierError) << t.count(); });
    EXPECT_TRUE(b.broken());
  }
}

// ---------------------------------------------------------------- Lock ---

class CPythonLock : public ::testing::TestWithParam<StartMethod> {};

// _TestLock.test_rlock: an RLock is owned by (process, thread); releasing
// it from elsewhere raises, and the owner still holds it.
TEST_P(CPythonLock, RLockCannotBeReleasedByAnotherProcess) {
  mproc::RLock lock;
  lock.acquire();
  lock.acquire();
  mproc::Process p(process_options(GetParam()), try_release_foreign_rlock, lock);
  p.start();
  EXPECT_EQ(join_guarded(p), 0) << "1: the release succeeded; 2: it threw something other than mproc::Error; "
                                   "3: the child could take the parent's RLock";
  lock.release();
  lock.release();
  EXPECT_THROW(lock.release(), mproc::Error);
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonLock, mproc_test::all_start_methods(), mproc_test::start_method_name);

// ----------------------------------------------------------- Condition ---

class CPythonCondition : public ::testing::TestWithParam<StartMethod> {};

struct CondCounters {
  mproc::RawValue<int> sleeping{0};
  mproc::RawValue<int> woken{0};
  mproc::RawValue<int> timed_out{0};
};

// Starts `n` waiting processes and `n` waiting threads.
void start_waiters(StartMethod m, mproc::Condition& cond, CondCounters& c, int n, int timeout_ms,
                   std::vector<mproc::Process>& ps, std::vector<std::thread>& ts) {
  for (int i = 0; i < n; ++i) {
    ps.emplace_back(process_options(m), cond_waiter, cond, c.sleeping, c.woken, c.timed_out, timeout_ms);
    ps.back().start();
    ts.emplace_back(cond_waiter, cond, c.sleeping, c.woken, c.timed_out, timeout_ms);
  }
}

bool all_sleeping(mproc::Condition& cond, CondCounters& c, int n) {
  return wait_until([&] {
    std::lock_guard g(cond);
    return c.sleeping.load() == n;
  });
}

// _TestCondition.test_notify_n: notify(2) wakes two of six waiters
// (processes and threads), notify(4) the rest, notify(3) nothing more.
TEST_P(CPythonCondition, NotifyNWakesNAmongProcessesAndThreads) {
  mproc::Condition cond;
  CondCounters c;
  std::vector<mproc::Process> ps;
  std::vector<std::thread> ts;
  KillAtScopeEnd killer(ps);
  start_waiters(GetParam(), cond, c, 3, 0, ps, ts);
  struct Joiner {
    std::vector<std::thread>& ts;
    ~Joiner() {
      for (auto& t : ts) t.join();
    }
  } joiner{ts};
  ASSERT_TRUE(all_sleeping(cond, c, 6));
  EXPECT_EQ(c.woken.load(), 0);
  {
    std::lock_guard g(cond);
    cond.notify(2);
  }
  ASSERT_TRUE(wait_until([&] { return c.woken.load() >= 2; }));
  std::this_thread::sleep_for(100ms);  // room for a wrong third wake-up to show
  EXPECT_EQ(c.woken.load(), 2);
  {
    std::lock_guard g(cond);
    cond.notify(4);
  }
  ASSERT_TRUE(wait_until([&] { return c.woken.load() >= 6; }));
  {
    std::lock_guard g(cond);
    cond.notify(3);
  }
  for (auto& p : ps) EXPECT_EQ(join_guarded(p), 0);
  EXPECT_EQ(c.woken.load(), 6);
  EXPECT_EQ(c.timed_out.load(), 0);
}

// _TestCondition.test_notify_all (+ check_invariant): waiters that timed
// out leave nothing behind; later waiters sleep until notify_all wakes
// them all.
TEST_P(CPythonCondition, TimedOutWaitersLeaveNoWakeUpBehind) {
  mproc::Condition cond;
  CondCounters c;
  std::vector<mproc::Process> ps;
  std::vector<std::thread> ts;
  KillAtScopeEnd killer(ps);
  struct Joiner {
    std::vector<std::thread>& ts;
    ~Joiner() {
      for (auto& t : ts) t.join();
    }
  } joiner{ts};
  start_waiters(GetParam(), cond, c, 2, 50, ps, ts);
  ASSERT_TRUE(wait_until([&] { return c.timed_out.load() == 4; })) << "timed waits did not time out";
  EXPECT_EQ(c.woken.load(), 0);
  // Joined before the next forks: a fork child of a process with finished,
  // unjoined threads inherits them, and ThreadSanitizer reports them as
  // leaked when the child exits (exit code 66).
  for (auto& t : ts) t.join();
  ts.clear();
  start_waiters(GetParam(), cond, c, 2, 0, ps, ts);
  ASSERT_TRUE(all_sleeping(cond, c, 8));
  std::this_thread::sleep_for(100ms);  // room for a stale wake-up to show
  EXPECT_EQ(c.woken.load(), 0) << "a waiter was woken without a notify";
  {
    std::lock_guard g(cond);
    cond.notify_all();
  }
  ASSERT_TRUE(wait_until([&] { return c.woken.load() >= 4; }));
  for (auto& p : ps) EXPECT_EQ(join_guarded(p), 0);
  EXPECT_EQ(c.woken.load(), 4);
  EXPECT_EQ(c.timed_out.load(), 4);
}

// _TestCondition.test_waitfor: wait_for across processes returns the
// predicate's (true) value.
TEST_P(CPythonCondition, WaitForAcrossProcesses) {
  mproc::Condition cond;
  mproc::Value<int> state(-1);
  mproc::Process p(process_options(GetParam()), waitfor_child, cond, state);
  p.start();
  {
    std::unique_lock g(cond);
    EXPECT_TRUE(cond.wait_for([&] { return state.value() == 0; }, kGuard));
    EXPECT_EQ(state.value(), 0);
  }
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(10ms);
    std::lock_guard g(cond);
    state.value() += 1;
    cond.notify();
  }
  EXPECT_EQ(join_guarded(p), 0);
}

// _TestCondition.test_waitfor_timeout: wait_for with a timeout returns
// false when the predicate never becomes true, despite notifications.
TEST_P(CPythonCondition, WaitForTimeoutReturnsFalseAcrossProcesses) {
  mproc::Condition cond;
  mproc::Value<int> state(0);
  mproc::Semaphore sem(0);
  mproc::Process p(process_options(GetParam()), waitfor_timeout_child, cond, state, sem);
  p.start();
  ASSERT_TRUE(sem.acquire(kGuard));
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(10ms);
    std::lock_guard g(cond);
    state.value() += 1;
    cond.notify();
  }
  EXPECT_EQ(join_guarded(p), 0);
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonCondition, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// ------------------------------------------------------------- Barrier ---

class CPythonBarrier : public ::testing::TestWithParam<StartMethod> {};

// _TestBarrier.test_thousand (shortened): processes pass the barrier in
// lockstep, so every party's message of pass i comes before any of i+1.
TEST_P(CPythonBarrier, PassesInLockstep) {
  constexpr int kParties = 3;
  constexpr int kPasses = 100;
  mproc::Barrier barrier(kParties);
  mproc::Lock lock;
  auto [r, w] = mproc::Pipe<int>(false);
  std::vector<mproc::Process> ps;
  KillAtScopeEnd killer(ps);
  for (int j = 0; j < kParties; ++j) {
    ps.emplace_back(process_options(GetParam()), barrier_passes, barrier, kPasses, w, lock);
    ps.back().start();
  }
  for (int i = 0; i < kPasses; ++i) {
    for (int j = 0; j < kParties; ++j) {
      ASSERT_TRUE(r.poll(kGuard)) << "pass " << i;
      ASSERT_EQ(r.recv(), i);
    }
  }
  for (auto& p : ps) EXPECT_EQ(join_guarded(p), 0);
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0);
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonBarrier, mproc_test::all_start_methods(), mproc_test::start_method_name);

// _TestBarrier.test_abort_and_reset: a barrier broken by abort() works
// again after reset().
TEST(CPythonBarrierLocal, AbortThenResetMakesItUsableAgain) {
  mproc::Barrier b(2);
  b.abort();
  EXPECT_TRUE(b.broken());
  EXPECT_THROW((void)b.wait(kGuard), mproc::BrokenBarrierError);
  b.reset();
  EXPECT_FALSE(b.broken());
  int other = -1;
  std::thread t([&] { other = b.wait(kGuard); });
  const int mine = b.wait(kGuard);
  t.join();
  EXPECT_EQ(std::set<int>({mine, other}), (std::set<int>{0, 1}));
  EXPECT_FALSE(b.broken());
}

// ------------------------------------------------------- Value / Array ---

class CPythonShared : public ::testing::TestWithParam<StartMethod> {};

// _TestValue.test_value / test_rawvalue: values of several types set in a
// child are seen by the parent.
TEST_P(CPythonShared, ValuesOfSeveralTypesSetInAChild) {
  check_values_set_in_a_child<mproc::Value>(GetParam());
  check_values_set_in_a_child<mproc::RawValue>(GetParam());
}

// _TestArray.test_array / test_rawarray: a child computes prefix sums in
// place; the parent sees them.
TEST_P(CPythonShared, ArrayPrefixSumsComputedInAChild) {
  std::vector<int> seq{680, 626, 934, 821, 150, 233, 548, 982, 714, 831};
  auto arr = mproc::Array<int>(std::span<const int>(seq));
  auto raw = mproc::RawArray<int>(std::span<const int>(seq));
  ASSERT_EQ(arr.size(), seq.size());
  EXPECT_EQ(arr[3], seq[3]);
  for (int k = 4; k < 8; ++k) arr[static_cast<std::size_t>(k)] = seq[static_cast<std::size_t>(k)] = k - 3;
  for (int k = 4; k < 8; ++k) raw[static_cast<std::size_t>(k)] = k - 3;
  EXPECT_TRUE(std::equal(arr.begin(), arr.end(), seq.begin(), seq.end()));
  for (std::size_t k = 1; k < seq.size(); ++k) seq[k] += seq[k - 1];
  mproc::Process p(process_options(GetParam()), prefix_sums, arr);
  p.start();
  ASSERT_EQ(join_guarded(p), 0);
  EXPECT_TRUE(std::equal(arr.begin(), arr.end(), seq.begin(), seq.end()));
  mproc::Process p2(process_options(GetParam()), prefix_sums_raw, raw);
  p2.start();
  ASSERT_EQ(join_guarded(p2), 0);
  EXPECT_TRUE(std::equal(raw.begin(), raw.end(), seq.begin(), seq.end()));
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonShared, mproc_test::all_start_methods(), mproc_test::start_method_name);

// _TestArray.test_array_from_size (issue #11675): an Array from a size is
// zeroed even when its memory was used by an earlier one.
TEST(CPythonSharedLocal, ArrayFromSizeIsZeroedEvenOnReusedMemory) {
  for (int round = 0; round < 3; ++round) {
    mproc::Array<int> arr(10);
    ASSERT_EQ(arr.size(), 10u);
    EXPECT_TRUE(std::all_of(arr.begin(), arr.end(), [](int x) { return x == 0; })) << "round " << round;
    for (int k = 0; k < 10; ++k) arr[static_cast<std::size_t>(k)] = k + 1;
    mproc::RawArray<int> raw(10);
    EXPECT_TRUE(std::all_of(raw.begin(), raw.end(), [](int x) { return x == 0; })) << "round " << round;
    for (int k = 0; k < 10; ++k) raw[static_cast<std::size_t>(k)] = k + 1;
  }
}

// ---------------------------------------------------------------- Pool ---

int sqr(int x) { return x * x; }
int sqr_slowly(int x) {
  ::usleep(30 * 1000);
  return x * x;
}
int worker_pid(int) { return static_cast<int>(::getpid()); }
int sleep_long_task(int) {
  for (int i = 0; i < 1200; ++i) ::usleep(50 * 1000);
  return -1;
}

// CPython's exception_throwing_generator(total, when): the input throws
// SayWhenError at index `when` (-1: at the very first element).
struct ThrowAt {
  int when;
  int operator()(int i) const {
    if (i == when || when == -1) throw SayWhenError("Somebody said when");
    return i;
  }
};
auto throwing_input(int total, int when) { return std::views::iota(0, total) | std::views::transform(ThrowAt{when}); }

class CPythonPool : public ::testing::TestWithParam<StartMethod> {
 protected:
  void SetUp() override {
    if (mproc_test::fork_pool_unsafe_under_sanitizers(GetParam())) {
      GTEST_SKIP() << "fork-started pool workers under GCC 12's sanitizers (see pool_support.hpp)";
    }
  }
  mproc::PoolOptions<> options(std::size_t n = 2, std::size_t maxtasks = 0) const {
    return mproc::PoolOptions<>{.processes = n, .maxtasksperchild = maxtasks, .start_method = GetParam()};
  }
  mproc_test::HangGuard hang_guard_;
};

// _TestPool.test_map_handle_iterable_exception: an exception thrown by the
// input range reaches the caller of map as itself (not as a remote error),
// at the first element or later, again and again; the pool stays usable.
TEST_P(CPythonPool, MapRethrowsAnExceptionOfItsInput) {
  mproc::Pool pool(options());
  for (int when : {-1, -1, 3}) {
    auto fut = guarded(pool, "map over a throwing input", [&] { return pool.map(sqr, throwing_input(10, when), 1); });
    try {
      (void)fut.get();
      ADD_FAILURE() << "map did not throw (when=" << when << ")";
    } catch (const SayWhenError& e) {
      EXPECT_EQ(dynamic_cast<const mproc::RemoteError*>(&e), nullptr) << "the input's error came back as remote";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "map threw " << typeid(e).name() << ": " << e.what();
    }
  }
  EXPECT_EQ(guarded(pool, "apply after", [&] { return pool.apply(sqr, 7); }).get(), 49);
  EXPECT_EQ(guarded(pool, "map after", [&] { return pool.map(sqr, std::vector{1, 2, 3}); }).get(),
            (std::vector{1, 4, 9}));
}

// What an imap range gave before it ended: how many results (all checked
// to be the in-order squares 0, 1, 4, ...) and whether it ended with the
// input's SayWhenError (any other exception is a failure).
struct ImapOutcome {
  int results = 0;
  bool said_when = false;
};
template <class Range>
ImapOutcome drain_imap(Range& it) {
  ImapOutcome out;
  try {
    for (;;) {
      auto v = it.next(kGuard);
      if (!v) break;
      EXPECT_EQ(*v, out.results * out.results);
      ++out.results;
    }
  } catch (const SayWhenError&) {
    out.said_when = true;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "imap threw " << e.what();
  }
  return out;
}

// _TestPool.test_imap_handle_iterable_exception: imap raises the input's
// exception at the first next() when the input fails at once (again and
// again: reentrant).
TEST_P(CPythonPool, ImapRaisesAnInputExceptionAtOnce) {
  mproc::Pool pool(options());
  for (int round = 0; round < 2; ++round) {
    auto it = pool.imap(sqr, throwing_input(1, -1), 1);
    const ImapOutcome o = drain_imap(it);
    EXPECT_TRUE(o.said_when);
    EXPECT_EQ(o.results, 0);
  }
  EXPECT_EQ(pool.apply(sqr, 5), 25);
}

// _TestPool.test_imap_handle_iterable_exception: when the input fails at
// index 3 (chunksize 1), next() gives 0, 1, 4 and then raises; with chunks
// the chunk being taken when the input failed is dropped and the error
// takes its place ("SayWhenError seen at start of problematic chunk's
// results"): failing at 7, 6 results with chunksize 2, 4 with chunksize 4.
// After the error the iteration ends. (Pool or ThreadPool.)
template <class AnyPool>
void check_imap_input_exception(AnyPool& pool) {
  for (auto [total, when, chunk, results] : {std::tuple{1, -1, std::size_t{1}, 0}, std::tuple{10, 3, std::size_t{1}, 3},
                                             std::tuple{20, 7, std::size_t{2}, 6}, std::tuple{20, 7, std::size_t{4}, 4}}) {
    auto it = pool.imap(sqr, throwing_input(total, when), chunk);
    const ImapOutcome o = drain_imap(it);
    EXPECT_TRUE(o.said_when) << "chunksize " << chunk;
    EXPECT_EQ(o.results, results) << "chunksize " << chunk;
    EXPECT_EQ(it.next(kGuard), std::nullopt) << "chunksize " << chunk;
  }
  EXPECT_EQ(pool.apply(sqr, 5), 25);
}

TEST_P(CPythonPool, ImapYieldsTheResultsBeforeAnInputException) {
  mproc::Pool pool(options());
  check_imap_input_exception(pool);
}

// The same on threads (CPython runs _TestPool for ThreadPool too).
TEST(CPythonThreadPool, ImapYieldsTheResultsBeforeAnInputException) {
  mproc::ThreadPool pool(2);
  check_imap_input_exception(pool);
}

// _TestPool.test_imap_unordered_handle_iterable_exception.
TEST_P(CPythonPool, ImapUnorderedRaisesAnInputException) {
  mproc::Pool pool(options());
  {
    auto it = pool.imap_unordered(sqr, throwing_input(1, -1), 1);
    EXPECT_THROW((void)it.next(kGuard), SayWhenError);
  }
  for (auto [total, when, chunk] : {std::tuple{10, 3, std::size_t{1}}, std::tuple{20, 7, std::size_t{2}}}) {
    auto it = pool.imap_unordered(sqr, throwing_input(total, when), chunk);
    std::multiset<int> expected;
    for (int i = 0; i < total; ++i) expected.insert(i * i);
    bool threw = false;
    try {
      for (int i = 0; i < total; ++i) {
        auto v = it.next(kGuard);
        ASSERT_TRUE(v.has_value()) << "the range ended without the input's error";
        auto pos = expected.find(*v);
        ASSERT_NE(pos, expected.end()) << *v;
        expected.erase(pos);
      }
    } catch (const SayWhenError&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
  }
}

// _TestPool.test_imap: imap with chunksize 100 over 1000 items yields them
// in order; next() after the end keeps saying "end" (StopIteration).
TEST_P(CPythonPool, ImapNextAfterTheEndKeepsEnding) {
  mproc::Pool pool(options());
  {
    auto it = pool.imap(sqr, std::views::iota(0, 1000), 100);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(it.next(kGuard), i * i);
    EXPECT_EQ(it.next(), std::nullopt);
    EXPECT_EQ(it.next(), std::nullopt);
  }
}

// _TestPool.test_async_timeout analogue for imap: next(timeout).
int wait_then_return(std::string path) { return mproc_test::wait_for_path(path, 2 * kGuard) ? 42 : -1; }
TEST_P(CPythonPool, ImapNextWithATimeoutRaisesTimeoutErrorAndKeepsTheResult) {
  mproc::Pool pool(options());
  TempDir dir;
  const std::string go = dir.file("go");
  auto it = pool.imap(wait_then_return, std::vector<std::string>{go}, 1);
  auto r = pool.apply_async(wait_then_return, go);
  EXPECT_THROW((void)it.next(50ms), mproc::TimeoutError);
  EXPECT_THROW((void)it.next(-1s), mproc::TimeoutError);
  // _TestPool.test_async_timeout: get(timeout) raises TimeoutError, also
  // for a negative timeout; wait(timeout) says false.
  EXPECT_THROW((void)r.get(-1s), mproc::TimeoutError);
  EXPECT_FALSE(r.wait(-1s));
  EXPECT_FALSE(r.ready());
  ASSERT_TRUE(mproc_test::write_file(go, "go"));
  EXPECT_EQ(it.next(kGuard), 42);
  EXPECT_EQ(it.next(kGuard), std::nullopt);
  EXPECT_EQ(r.get(kGuard), 42);
}

// _TestPoolWorkerLifetime.test_pool_worker_lifetime: with maxtasksperchild
// workers are replaced (at least 100/10 distinct workers answer 100
// tasks) and every result is right.
TEST_P(CPythonPool, WorkerLifetimeReplacesWorkersAndAnswersEveryTask) {
  mproc::Pool pool(options(3, 10));
  std::vector<mproc::AsyncResult<int>> sq, pids;
  for (int i = 0; i < 100; ++i) sq.push_back(pool.apply_async(sqr, i));
  for (int i = 0; i < 100; ++i) pids.push_back(pool.apply_async(worker_pid, i));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sq[static_cast<std::size_t>(i)].get(kGuard), i * i);
  std::set<int> distinct;
  for (auto& r : pids) distinct.insert(r.get(kGuard));
  EXPECT_GE(distinct.size(), 10u) << "100 tasks with maxtasksperchild=10 need at least 10 workers";
  pool.close();
  guarded(pool, "join", [&] { pool.join(); }).get();
}

// _TestPoolWorkerLifetime.test_pool_worker_lifetime_early_close (issue
// #10332): close() before the tasks of short-lived workers finished; join
// returns and every result is there.
TEST_P(CPythonPool, WorkerLifetimeEarlyCloseThenJoin) {
  mproc::Pool pool(options(3, 1));
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 6; ++i) rs.push_back(pool.apply_async(sqr_slowly, i));
  pool.close();
  guarded(pool, "join after early close", [&] { pool.join(); }).get();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(0ms), i * i);
}

// _TestPool.test_terminate: terminate() with a long map_async pending
// returns, join() returns, and the pending result does not hang.
TEST_P(CPythonPool, TerminateWithAPendingMapAsync) {
  mproc::Pool pool(options(2));
  auto r = pool.map_async(sleep_long_task, std::views::iota(0, 1000), std::size_t{1});
  ASSERT_TRUE(wait_until([&] { return mproc_test::worker_pids().size() >= 2; }));
  guarded(pool, "terminate", [&] { pool.terminate(); }).get();
  guarded(pool, "join after terminate", [&] { pool.join(); }).get();
  EXPECT_THROW((void)r.get(kGuard), mproc::Error);
}

// _TestPool.test_empty_iterable: every map flavour of an empty input is
// empty, on a one-process pool.
TEST_P(CPythonPool, EmptyIterableEverywhere) {
  mproc::Pool pool(options(1));
  EXPECT_TRUE(pool.map(sqr, std::vector<int>{}).empty());
  EXPECT_TRUE(pool.starmap(sqr, std::vector<std::tuple<int>>{}).empty());
  int n = 0;
  for (int v : pool.imap(sqr, std::vector<int>{})) n += v + 1;
  for (int v : pool.imap_unordered(sqr, std::vector<int>{})) n += v + 1;
  EXPECT_EQ(n, 0);
  // test_map_chunksize: map_async of nothing with chunksize 1 does not stall.
  EXPECT_TRUE(pool.map_async(sqr, std::vector<int>{}, std::size_t{1}).get(kGuard).empty());
  pool.close();
  guarded(pool, "join", [&] { pool.join(); }).get();
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonPool, mproc_test::all_start_methods(), mproc_test::start_method_name);

// ---------------------------------------------------------- Connection ---

class CPythonConnection : public ::testing::TestWithParam<StartMethod> {};

// _TestPoll.test_strings: byte messages, empty ones included, arrive whole
// and in order from a child.
TEST_P(CPythonConnection, StringsIncludingEmptyOnesArriveInOrder) {
  const std::vector<std::string> strings{"hello", "", "a", "b", "", "bye", "", "lop"};
  auto [a, b] = mproc::Pipe<std::string>();
  mproc::Process p(process_options(GetParam()), send_strings, b, strings);
  p.start();
  for (const auto& s : strings) {
    ASSERT_TRUE(a.poll(kGuard));
    EXPECT_EQ(string_of(a.recv_bytes()), s);
  }
  EXPECT_EQ(join_guarded(p), 0);
}

// _TestPoll.test_boundaries: a poll() in another process does not take a
// message (or part of one) away from the pipe.
TEST_P(CPythonConnection, PollInAnotherProcessConsumesNothing) {
  auto [r, w] = mproc::Pipe<std::string>(false);
  mproc::Process p(process_options(GetParam()), poll_only, r);
  p.start();
  w.send_bytes(bytes_of("first"));
  w.send_bytes(bytes_of("second"));
  w.close();
  EXPECT_EQ(join_guarded(p), 0);
  ASSERT_TRUE(r.poll(kGuard));
  std::string got;
  try {
    got = string_of(r.recv_bytes());
  } catch (const std::exception& e) {
    FAIL() << "recv_bytes threw " << e.what();
  }
  EXPECT_TRUE(got == "first" || got == "second") << got;
}

// _TestPoll.test_dont_merge: messages are not merged; poll() does not
// consume.
TEST_P(CPythonConnection, MessagesAreNotMerged) {
  auto [a, b] = mproc::Pipe<std::string>();
  EXPECT_FALSE(a.poll(0ms));
  EXPECT_FALSE(a.poll(50ms));
  mproc::Process p(process_options(GetParam()), send_a_b_cd, b);
  p.start();
  ASSERT_TRUE(a.poll(kGuard));
  EXPECT_EQ(string_of(a.recv_bytes()), "a");
  EXPECT_TRUE(a.poll(kGuard));
  EXPECT_TRUE(a.poll(kGuard));
  EXPECT_EQ(string_of(a.recv_bytes()), "b");
  EXPECT_TRUE(a.poll(kGuard));
  EXPECT_TRUE(a.poll(kGuard));
  EXPECT_TRUE(a.poll(0ms));
  EXPECT_EQ(string_of(a.recv_bytes()), "cd");
  EXPECT_EQ(join_guarded(p), 0);
}

// _TestConnection.test_spawn_close: the parent may close its copy of the
// child's end right after start(); the child's end still works.
TEST_P(CPythonConnection, ParentClosesTheChildsEndRightAfterStart) {
  auto [conn, child_conn] = mproc::Pipe<std::string>();
  mproc::Process p(process_options(GetParam()), echo_bytes, child_conn);
  p.start();
  child_conn.close();
  conn.send_bytes(bytes_of("hello"));
  ASSERT_TRUE(conn.poll(kGuard));
  std::string got;
  try {
    got = string_of(conn.recv_bytes());
  } catch (const std::exception& e) {
    ADD_FAILURE() << "recv_bytes threw " << e.what();
  }
  EXPECT_EQ(got, "hello");
  conn.send_bytes({});
  EXPECT_EQ(join_guarded(p), 0) << "3: the child's end saw EOF";
  conn.close();
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonConnection, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// _TestPoll.test_empty_string: an empty message makes poll() true, and
// poll() does not consume it.
TEST(CPythonConnectionLocal, EmptyMessagePollsTrueAndStaysThere) {
  auto [a, b] = mproc::Pipe<int>();
  EXPECT_FALSE(a.poll());
  b.send_bytes({});
  EXPECT_TRUE(a.poll(kGuard));
  EXPECT_TRUE(a.poll());
  EXPECT_TRUE(a.recv_bytes().empty());
  EXPECT_FALSE(a.poll());
}

// _TestConnection.test_connection: poll() and poll(-1) return False at
// once; a 16 MiB byte message round-trips; recv and recv_bytes raise
// EOFError once the peer is closed.
TEST(CPythonConnectionLocal, PollNegativeTimeoutBigBytesAndEOF) {
  auto [a, b] = mproc::Pipe<int>();
  bool p1 = true, p2 = true;
  returns_within_guard([&] { p1 = a.poll(); });
  returns_within_guard([&] { p2 = a.poll(-1s); });
  EXPECT_FALSE(p1);
  EXPECT_FALSE(p2);
  std::vector<std::byte> big(16u << 20, std::byte{'X'});
  std::thread sender([b = b, &big]() mutable { b.send_bytes(big); });
  EXPECT_EQ(a.recv_bytes(), big);
  sender.join();
  b.close();
  EXPECT_THROW((void)a.recv(), mproc::EOFError);
  EXPECT_THROW((void)a.recv_bytes(), mproc::EOFError);
}

// _TestConnection.test_duplex_false: the writer end of a one-way pipe
// cannot poll (OSError in CPython); _TestConnection.test_context: a closed
// connection refuses recv.
TEST(CPythonConnectionLocal, WriterCannotPollAndClosedEndCannotRecv) {
  auto [r, w] = mproc::Pipe<int>(false);
  EXPECT_THROW((void)w.poll(), mproc::Error);
  w.send(1);
  EXPECT_EQ(r.recv(), 1);
  auto [a, b] = mproc::Pipe<int>();
  a.send(1729);
  EXPECT_EQ(b.recv(), 1729);
  a.close();
  b.close();
  EXPECT_TRUE(a.closed());
  EXPECT_TRUE(b.closed());
  EXPECT_THROW((void)a.recv(), mproc::Error);
  EXPECT_THROW((void)b.recv(), mproc::Error);
}

// ---------------------------------------------------------------- wait ---

// TestWait.test_neg_timeout: a negative timeout returns at once, empty.
TEST(CPythonWait, NegativeTimeoutReturnsAtOnce) {
  auto [a, b] = mproc::Pipe<int>();
  std::vector<mproc::Connection<int>> got{b};
  returns_within_guard([&] { got = mproc::wait(std::vector<mproc::Connection<int>>{a}, -1s); });
  EXPECT_TRUE(got.empty());
}

// ------------------------------------------------------- Shared memory ---

// _TestSharedMemory.test_shared_memory_basics: a named block can be
// unlinked once; the second unlink (through another handle) raises
// FileNotFoundError; attaching sees the data.
TEST(CPythonSharedMemory, SecondUnlinkOfANamedBlockThrows) {
  const std::string name = mproc_test::unique_shm_name("dblunlink");
  auto uno = mproc::SharedMemory::create(name, 5000);
  EXPECT_GE(uno.size(), 5000u);
  static_cast<unsigned char*>(uno.data())[0] = 42;
  auto duo = mproc::SharedMemory::attach(name);
  EXPECT_EQ(static_cast<unsigned char*>(duo.data())[0], 42);
  duo.unlink();
  duo.close();
  EXPECT_THROW(uno.unlink(), mproc::Error);
  uno.close();
  EXPECT_THROW((void)mproc::SharedMemory::attach(name), mproc::Error);
}

// _TestSharedMemory.test_shared_memory_name_with_embedded_null: a name
// with an embedded NUL is refused (ValueError), not cut at the NUL.
TEST(CPythonSharedMemory, NameWithAnEmbeddedNulIsRefused) {
  const std::string name = mproc_test::unique_shm_name("null");
  auto sms = mproc::SharedMemory::create(name, 512);
  std::string bad = name;
  bad += '\0';
  bad += 'a';
  EXPECT_THROW((void)mproc::SharedMemory::attach(bad), mproc::Error) << "attached '" << name << "' instead";
  const std::string other = mproc_test::unique_shm_name("null2");
  std::string bad2 = other;
  bad2 += '\0';
  bad2 += 'a';
  bool created = false;
  try {
    auto x = mproc::SharedMemory::create(bad2, 512);
    created = true;
    x.unlink();
  } catch (const mproc::Error&) {
  }
  EXPECT_FALSE(created) << "created '" << other << "' from a name with a NUL";
  sms.unlink();
}

// ------------------------------------------------------------ Listener ---

class CPythonListener : public ::testing::TestWithParam<bool> {  // true: TCP
 protected:
  std::string address() const { return GetParam() ? "127.0.0.1:0" : dir.file("sock"); }
  TempDir dir;
};

// _TestListener.test_multiple_bind: a second Listener on an address in use
// raises (OSError).
TEST_P(CPythonListener, SecondListenerOnTheSameAddressThrows) {
  mproc::Listener<int> l(address(), "key");
  EXPECT_THROW(mproc::Listener<int>(l.address(), "key"), mproc::Error);
  // The first one still works.
  std::thread t([where = l.address()] {
    auto c = mproc::Client<int>(where, "key");
    c.send(1729);
  });
  auto d = l.accept();
  EXPECT_EQ(d.recv(), 1729);
  t.join();
}

// _TestListener.test_empty_authkey (bpo-43952): an empty authkey is a key
// like any other; _TestListenerClient.test_issue16955: the client's poll
// sees what the accepted end sent.
TEST_P(CPythonListener, EmptyAuthkeyWorksAndClientPollSeesData) {
  mproc::Listener<int> l(address(), "");
  std::optional<mproc::Connection<int>> c;
  std::exception_ptr err;
  std::thread t([&, where = l.address()] {
    try {
      c = mproc::Client<int>(where, "");
    } catch (...) {
      err = std::current_exception();
    }
  });
  auto a = l.accept();
  t.join();
  if (err) std::rethrow_exception(err);
  ASSERT_TRUE(c.has_value());
  a.send_bytes(bytes_of("hello"));
  EXPECT_TRUE(c->poll(kGuard));
  EXPECT_EQ(string_of(c->recv_bytes()), "hello");
  c->send(1729);
  EXPECT_EQ(a.recv(), 1729);
  l.close();
  EXPECT_THROW((void)l.accept(), mproc::Error);
}

INSTANTIATE_TEST_SUITE_P(CPython, CPythonListener, ::testing::Values(false, true),
                         [](const auto& info) { return std::string(info.param ? "tcp" : "unix"); });

// _TestListener.test_abstract_socket: a Linux abstract address ("\0name").
TEST(CPythonListenerLocal, AbstractSocketAddress) {
  std::string where(1, '\0');
  where += "mproctest-abstract-" + std::to_string(::getpid());
  mproc::Listener<int> l(where, "key");
  std::thread t([where = l.address()] {
    auto c = mproc::Client<int>(where, "key");
    c.send(1729);
  });
  auto d = l.accept();
  EXPECT_EQ(d.recv(), 1729);
  t.join();
}

// ---------------------------------------------------------------- EINTR ---
// TestIgnoreEINTR: blocking calls are not broken by a signal whose handler
// was installed without SA_RESTART; they retry (PEP 475).

std::atomic<int> g_sigusr1{0};
extern "C" void count_sigusr1(int) { g_sigusr1.fetch_add(1, std::memory_order_relaxed); }

class CPythonIgnoreEINTR : public ::testing::Test {
 protected:
  void SetUp() override {
    struct sigaction sa {};
    sa.sa_handler = count_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking system calls return EINTR
    ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old_), 0);
    g_sigusr1 = 0;
  }
  void TearDown() override { ::sigaction(SIGUSR1, &old_, nullptr); }

  // Pelts this (the test's) thread with SIGUSR1 for a while, then runs
  // `release` (what ends the blocking call), all on another thread.
  template <class Fn>
  std::thread pelt_then(Fn release) {
    const pthread_t target = ::pthread_self();
    return std::thread([target, release]() mutable {
      for (int i = 0; i < 20; ++i) {
        ::pthread_kill(target, SIGUSR1);
        ::usleep(5 * 1000);
      }
      release();
    });
  }

  struct sigaction old_ {};
};

// TestIgnoreEINTR.test_ignore (a send_bytes of more than the socket holds,
// interrupted) and test_ignore_listener (accept() interrupted).
TEST_F(CPythonIgnoreEINTR, BlockedSendOfABigMessage) {
  auto [a, b] = mproc::Pipe<int>();
  std::vector<std::byte> got;
  std::thread t = pelt_then([&got, b = b]() mutable { got = b.recv_bytes(); });
  const std::vector<std::byte> big(std::size_t{32} << 20, std::byte{7});
  try {
    a.send_bytes(big);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "send_bytes threw " << e.what();
  }
  t.join();
  EXPECT_TRUE(got == big);
  EXPECT_GT(g_sigusr1.load(), 0);
}

TEST_F(CPythonIgnoreEINTR, AcceptWithAKey) {
  TempDir dir;
  mproc::Listener<std::string> l(dir.file("sock"), "key");
  std::optional<mproc::Connection<std::string>> client;
  std::thread t = pelt_then([&client, address = l.address()] {
    client = mproc::Client<std::string>(address, "key");
    client->send("welcome");
  });
  std::optional<mproc::Connection<std::string>> accepted;
  try {
    accepted = l.accept();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "accept threw " << e.what();
  }
  t.join();
  ASSERT_TRUE(accepted.has_value());
  ASSERT_TRUE(accepted->poll(kGuard));
  EXPECT_EQ(accepted->recv(), "welcome");
  EXPECT_GT(g_sigusr1.load(), 0);
}

TEST_F(CPythonIgnoreEINTR, ConnectionRecv) {
  auto [a, b] = mproc::Pipe<int>();
  std::thread t = pelt_then([b = b]() mutable { b.send(7); });
  int got = -1;
  try {
    got = a.recv();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "recv threw " << e.what();
  }
  t.join();
  EXPECT_EQ(got, 7);
  EXPECT_GT(g_sigusr1.load(), 0);
}

TEST_F(CPythonIgnoreEINTR, ConnectionPollWithTimeout) {
  auto [a, b] = mproc::Pipe<int>();
  std::thread t = pelt_then([b = b]() mutable { b.send(7); });
  bool ready = false;
  try {
    ready = a.poll(kGuard);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "poll threw " << e.what();
  }
  t.join();
  EXPECT_TRUE(ready);
}

TEST_F(CPythonIgnoreEINTR, QueueGet) {
  mproc::Queue<int> q;
  std::thread t = pelt_then([q]() mutable { q.put(5); });
  int got = -1;
  try {
    got = q.get(kGuard);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "get threw " << e.what();
  }
  t.join();
  EXPECT_EQ(got, 5);
}

TEST_F(CPythonIgnoreEINTR, LockAcquireAndEventAndSemaphore) {
  mproc::Lock lock;
  lock.acquire();
  std::atomic<bool> released{false};
  std::thread t = pelt_then([lock, &released]() mutable {
    released = true;
    lock.release();
  });
  lock.acquire();
  EXPECT_TRUE(released.load()) << "acquire returned while the lock was held";
  t.join();
  lock.release();

  mproc::Event ev;
  std::thread t2 = pelt_then([ev]() mutable { ev.set(); });
  EXPECT_TRUE(ev.wait(kGuard));
  t2.join();

  mproc::Semaphore sem(0);
  std::thread t3 = pelt_then([sem]() mutable { sem.release(); });
  EXPECT_TRUE(sem.acquire(kGuard));
  t3.join();
}

TEST_F(CPythonIgnoreEINTR, ConditionWaitAndBarrier) {
  mproc::Condition cond;
  bool flag = false;  // guarded by cond
  std::thread t = pelt_then([&] {
    std::lock_guard g(cond);
    flag = true;
    cond.notify_all();
  });
  {
    std::unique_lock g(cond);
    EXPECT_TRUE(cond.wait_for([&] { return flag; }, kGuard));
  }
  t.join();

  mproc::Barrier b(2);
  std::thread t2 = pelt_then([b]() mutable { (void)b.wait(kGuard); });
  EXPECT_NO_THROW((void)b.wait(kGuard));
  t2.join();
}

TEST_F(CPythonIgnoreEINTR, ProcessJoinAndWait) {
  TempDir dir;
  const std::string go = dir.file("go");
  mproc::Process p(wait_for_go, go);
  p.start();
  std::thread t = pelt_then([go] { mproc_test::write_file(go, "go"); });
  try {
    p.join();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "join threw " << e.what();
    p.kill();
    p.join();
  }
  t.join();
  EXPECT_EQ(p.exitcode(), 0);

  auto [a, b] = mproc::Pipe<int>();
  std::thread t2 = pelt_then([b = b]() mutable { b.send(1); });
  std::vector<mproc::Connection<int>> ready;
  try {
    ready = mproc::wait(std::vector<mproc::Connection<int>>{a}, kGuard);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wait threw " << e.what();
  }
  t2.join();
  EXPECT_EQ(ready.size(), 1u);
}

}  // namespace
