// test_cpython_audit_ipc.cpp: an audit of mproc against what CPython's own
// multiprocessing test suite (Lib/test/_test_multiprocessing.py) asserts,
// for processes, queues, connections, listeners, the synchronization
// primitives, shared values and shared memory (not Pool / ThreadPool), where
// test_cpython_semantics.cpp, test_cpython_semantics_more.cpp and the
// per-feature files do not pin it already.
//
// Each test names the CPython test it mirrors. Where API.md chose a C++
// shape (exceptions for Python's None/False returns, mproc::Error for
// ValueError/OSError/AssertionError, durations, ...), the test follows
// API.md.
//
// Children report through exit codes, shared values or pipes (gtest
// assertions do not work in another process). Every blocking call has a
// guard (kGuard) so that a regression fails instead of hanging; no test
// asserts that something was fast, and none sleeps to synchronize.

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/process_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/mproc.hpp"

namespace {

using mproc::StartMethod;
using mproc_test::join_guarded;
using mproc_test::kGuard;
using mproc_test::KillAtScopeEnd;
using mproc_test::process_options;
using mproc_test::TempDir;
using mproc_test::wait_until;
using namespace std::chrono_literals;

// ------------------------------------------------------------- helpers ---

// A value whose serialization fails halfway when `fail` is set (CPython's
// NotSerializable, whose __reduce__ raises): part of it has been written
// into the encoder when the exception comes.
struct Flaky {
  std::string s;
  bool fail = false;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(s);
    if (fail) throw std::runtime_error("Flaky: refuses to serialize");
    ar(fail);
  }
};

// True when `e` (caught as mproc::Error) is not the end-of-stream error.
// EOFError derives from Error, so EXPECT_THROW(..., mproc::Error) alone
// cannot tell "closed here" from "peer closed".
template <class Fn>
std::string error_kind(Fn&& fn) {
  try {
    fn();
  } catch (const mproc::EOFError&) {
    return "EOFError";
  } catch (const mproc::Error&) {
    return "Error";
  } catch (const std::exception& e) {
    return std::string("other: ") + e.what();
  }
  return "no exception";
}

// ======================================================== _TestProcess ===

class CPythonAuditProcess : public ::testing::TestWithParam<StartMethod> {};

void report_name_then_wait(mproc::Connection<std::string> w, mproc::Event go) {
  w.send(mproc::current_process().name());
  if (!go.wait(2 * kGuard)) ::_exit(90);
}

bool has_child(int pid) {
  for (const auto& c : mproc::active_children()) {
    if (c.pid() == pid) return true;
  }
  return false;
}

// _TestProcess.test_process: before start() a Process is not alive, has no
// exit code and is not an active child; a name set before start() is the
// child's name; after start() it is alive, an active child, and its daemon
// flag is frozen (BaseProcess.daemon's setter asserts "process has already
// started"); after join() exit code 0, not alive, no longer an active
// child.
TEST_P(CPythonAuditProcess, LifecycleNameAndDaemonFlag) {
  auto [r, w] = mproc::Pipe<std::string>(false);
  mproc::Event go;
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(GetParam()), report_name_then_wait, w, go);
  KillAtScopeEnd killer(ps);
  mproc::Process& p = ps[0];
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_EQ(p.pid(), 0);
  EXPECT_FALSE(p.daemon());
  p.set_name("SomeProcess");
  p.set_daemon(true);
  EXPECT_TRUE(p.daemon());
  p.start();
  EXPECT_TRUE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_GT(p.pid(), 0);
  EXPECT_TRUE(has_child(p.pid()));
  EXPECT_THROW(p.set_daemon(false), mproc::Error);
  EXPECT_TRUE(p.daemon());
  ASSERT_TRUE(r.poll(kGuard));
  EXPECT_EQ(r.recv(), "SomeProcess");
  go.set();
  EXPECT_EQ(join_guarded(p), 0);
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(has_child(p.pid()));
}

void report_fd_count(mproc::Queue<int> q, mproc::Event done) {
  q.put(static_cast<int>(mproc_test::open_fds().size()));
  if (!done.wait(2 * kGuard)) ::_exit(90);
}

// _TestProcess.test_child_fd_inflation: the number of descriptors in a
// spawn or forkserver child does not grow with the number of its siblings
// running at the same time (fork children inherit the parent's, by
// design: CPython skips fork too).
TEST_P(CPythonAuditProcess, ChildDescriptorCountDoesNotGrowWithRunningSiblings) {
  if (GetParam() == StartMethod::fork) GTEST_SKIP() << "a fork child inherits the parent's descriptors";
  constexpr int kN = 5;
  mproc::Queue<int> q;
  mproc::Event done;
  std::vector<mproc::Process> ps;
  KillAtScopeEnd killer(ps);
  for (int i = 0; i < kN; ++i) {
    ps.emplace_back(process_options(GetParam()), report_fd_count, q, done);
    ps.back().start();
  }
  std::vector<int> counts;
  for (int i = 0; i < kN; ++i) counts.push_back(q.get(kGuard));
  done.set();
  for (auto& p : ps) EXPECT_EQ(join_guarded(p), 0);
  EXPECT_EQ(std::set<int>(counts.begin(), counts.end()).size(), 1u) << "descriptor counts: " << [&] {
    std::string s;
    for (int c : counts) s += std::to_string(c) + " ";
    return s;
  }();
}

void sum_big_argument(mproc::Connection<std::pair<std::uint64_t, std::uint64_t>> w, std::vector<std::uint8_t> big) {
  w.send({big.size(), std::accumulate(big.begin(), big.end(), std::uint64_t{0})});
}

// _TestProcess.test_args_argument with a large argument: a 24 MiB argument
// reaches the child whole (pickled args have no size limit in CPython).
TEST_P(CPythonAuditProcess, LargeArgumentReachesTheChildWhole) {
  std::vector<std::uint8_t> big(std::size_t{24} << 20);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7 + 3);
  const std::uint64_t sum = std::accumulate(big.begin(), big.end(), std::uint64_t{0});
  auto [r, w] = mproc::Pipe<std::pair<std::uint64_t, std::uint64_t>>(false);
  mproc::Process p(process_options(GetParam()), sum_big_argument, w, big);
  p.start();
  ASSERT_TRUE(r.poll(kGuard));
  EXPECT_EQ(r.recv(), (std::pair<std::uint64_t, std::uint64_t>{big.size(), sum}));
  EXPECT_EQ(join_guarded(p), 0);
}

void set_every_event(std::vector<mproc::Event> events) {
  for (auto& e : events) e.set();
}

// _TestProcess.test_args_argument / API.md §2 ("mproc's own handles ...
// can be passed as arguments to Process ... under every start method"):
// a list of 300 synchronization objects as one argument works in CPython
// under every start method (each SemLock is pickled by name). Here: 300
// Events, under fork, spawn and forkserver alike. (Should start() refuse,
// it must at least leave nothing behind: the leak check fails the test if
// a spawned child is left unreaped.)
TEST_P(CPythonAuditProcess, ThreeHundredHandlesInOneArgument) {
  std::vector<mproc::Event> events(300);
  mproc::Process p(process_options(GetParam()), set_every_event, events);
  try {
    p.start();
  } catch (const std::exception& e) {
    FAIL() << "start() threw: " << e.what();
  }
  EXPECT_EQ(join_guarded(p), 0);
  EXPECT_EQ(std::count_if(events.begin(), events.end(), [](const mproc::Event& e) { return e.is_set(); }), 300);
}

void run_with_flaky_argument(Flaky f) {
  if (f.s != "arg") ::_exit(4);
}

// A target whose argument fails to serialize (CPython: pickling the
// Process raises at start() under spawn and forkserver; fork pickles
// nothing): start() raises that error, the Process is not started (it may
// be started again, and raises again), and nothing is left behind: no
// child, no descriptor. Under fork nothing is encoded and the child runs.
TEST_P(CPythonAuditProcess, StartWithAnArgumentThatFailsToSerialize) {
  mproc::Process p(process_options(GetParam()), run_with_flaky_argument, Flaky{"arg", true});
  if (GetParam() == StartMethod::fork) {
    p.start();
    EXPECT_EQ(join_guarded(p), 0);
    return;
  }
  EXPECT_THROW(p.start(), std::runtime_error);
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.pid(), 0);
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_THROW(p.start(), std::runtime_error) << "a failed start() must leave the Process unstarted";
  EXPECT_THROW(p.join(), mproc::Error);
}

// Set in the test process only; a fork child inherits both.
std::string g_atexit_marker;
pid_t g_atexit_owner = 0;
extern "C" void audit_write_marker_at_exit() {
  if (!g_atexit_marker.empty() && ::getpid() != g_atexit_owner) {
    mproc_test::write_file(g_atexit_marker, std::to_string(::getpid()));
  }
}
void exit_with_three() { std::exit(3); }

// _TestSubclassingProcess.test_sys_exit + popen_fork.Popen._launch: a
// target that calls sys.exit(3) ends with exit code 3, and the child then
// leaves with os._exit(): the atexit handlers the parent had registered
// before the fork do not run in the child (docs/design/start_methods.md:
// the parent's handlers "must not run twice"). The C++ spelling of
// sys.exit is std::exit.
TEST_P(CPythonAuditProcess, StdExitInTheTargetRunsNoHandlerOfTheParent) {
  static const bool registered = [] {
    g_atexit_owner = ::getpid();
    return std::atexit(audit_write_marker_at_exit) == 0;
  }();
  ASSERT_TRUE(registered);
  TempDir dir;
  g_atexit_marker = dir.file("marker");
  mproc::Process p(process_options(GetParam()), exit_with_three);
  p.start();
  const auto code = join_guarded(p);
  g_atexit_marker.clear();
  EXPECT_EQ(code, 3);
  EXPECT_FALSE(mproc_test::read_file(dir.file("marker")).has_value())
      << "the parent's atexit handler ran in the child";
}

INSTANTIATE_TEST_SUITE_P(CPythonAudit, CPythonAuditProcess, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// ========================================================== _TestQueue ===

// _TestQueue.test_queue_feeder_donot_stop_onexc (bpo-30414, bpo-33078): a
// put whose value fails to serialize leaves the queue working and its size
// right: on Queue(maxsize=1) the failed put takes no slot, the next put
// fits, qsize() is 1, and after the get the queue is empty. The same for a
// JoinableQueue: the failed put counts no unfinished task.
TEST(CPythonAuditQueue, PutThatFailsToSerializeLeavesNoTrace) {
  mproc::Queue<Flaky> q(1);
  EXPECT_THROW(q.put(Flaky{"first", true}), std::runtime_error);
  EXPECT_THROW(q.put_nowait(Flaky{"second", true}), std::runtime_error);
  EXPECT_THROW(q.put(Flaky{"third", true}, 10ms), std::runtime_error);
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_NO_THROW(q.put_nowait(Flaky{"ok", false})) << "a failed put kept a slot";
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.get(kGuard).s, "ok");
  EXPECT_TRUE(q.empty());
  EXPECT_THROW((void)q.get_nowait(), mproc::Empty);

  mproc::JoinableQueue<Flaky> jq;
  EXPECT_THROW(jq.put(Flaky{"x", true}), std::runtime_error);
  EXPECT_TRUE(jq.join(0ms)) << "a failed put counted an unfinished task";
  EXPECT_THROW(jq.task_done(), mproc::Error);
}

// _TestQueue.test_closed_queue_put_get_exceptions (put half) for a
// JoinableQueue: a put after close() raises and adds no unfinished task;
// close() twice is fine (TestSimpleQueue.test_close).
TEST(CPythonAuditQueue, JoinableQueuePutAfterCloseCountsNoTask) {
  mproc::JoinableQueue<int> jq;
  jq.put(1);
  jq.close();
  jq.close();
  EXPECT_THROW(jq.put(2), mproc::Error);
  EXPECT_THROW(jq.put_nowait(2), mproc::Error);
  EXPECT_EQ(jq.qsize(), 1u);
  EXPECT_EQ(jq.get(kGuard), 1);
  EXPECT_FALSE(jq.join(0ms));
  jq.task_done();
  EXPECT_TRUE(jq.join(0ms));
  EXPECT_THROW(jq.task_done(), mproc::Error);
}

class CPythonAuditQueueProcess : public ::testing::TestWithParam<StartMethod> {};

void put_seven(mproc::Queue<int> q) { q.put(7); }
void put_seven_simple(mproc::SimpleQueue<int> q) { q.put(7); }

// multiprocessing.Queue.close(): "no more data will be put on this queue
// by the current process"; a child's handle is its own (Queue._after_fork
// and __setstate__ reset _closed), so a queue the parent closed before
// starting the child still takes the child's puts, under every start
// method. API.md §5: "Queue::close(): this handle puts no more ...; others
// are unaffected".
TEST_P(CPythonAuditQueueProcess, QueueClosedByTheParentBeforeStartStillTakesTheChildsPuts) {
  mproc::Queue<int> q;
  q.close();
  mproc::Process p(process_options(GetParam()), put_seven, q);
  p.start();
  EXPECT_EQ(join_guarded(p), 0) << "the child's put failed (exit 1): its handle arrived closed";
  ASSERT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get_nowait(), 7);

  mproc::SimpleQueue<int> sq;
  sq.close();
  mproc::Process p2(process_options(GetParam()), put_seven_simple, sq);
  p2.start();
  EXPECT_EQ(join_guarded(p2), 0) << "the child's put failed (exit 1): its handle arrived closed";
  EXPECT_FALSE(sq.empty());
}

using MaybeText = std::optional<std::string>;

void echo_queue(mproc::Queue<MaybeText> in, mproc::Queue<MaybeText> out) {
  for (;;) {
    MaybeText m = in.get(2 * kGuard);
    if (!m) return;
    out.put(m);
  }
}

// _TestQueue + _TestConnection.test_connection's "really_big_msg": items
// of 0 bytes, 1 byte, 8 MiB and 24 MiB go to a child and come back whole,
// in order.
TEST_P(CPythonAuditQueueProcess, LargeAndEmptyItemsMakeARoundTripThroughAChild) {
  mproc::Queue<MaybeText> in, out;
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(GetParam()), echo_queue, in, out);
  KillAtScopeEnd killer(ps);
  ps[0].start();
  std::vector<std::string> items{"", "a", std::string(std::size_t{8} << 20, 'x'), std::string(std::size_t{24} << 20, 'y')};
  items[2][12345] = 'z';
  items[3].back() = 'w';
  for (const auto& s : items) in.put(s);
  in.put(std::nullopt);
  for (const auto& s : items) {
    const MaybeText got = out.get(kGuard);
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(*got == s) << "an item of " << s.size() << " bytes came back as " << got->size() << " bytes";
  }
  EXPECT_EQ(join_guarded(ps[0]), 0);
  EXPECT_TRUE(out.empty());
}

INSTANTIATE_TEST_SUITE_P(CPythonAudit, CPythonAuditQueueProcess, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// ===================================================== _TestConnection ===

// _TestConnection.test_connection (end of stream) + test_context: once the
// peer has closed and everything was read, poll() says ready (recv will
// not block), wait() reports the end, and recv/recv_bytes raise EOFError,
// every time. A send to a closed peer raises EOFError too (API.md's
// choice for BrokenPipeError). After this end's own close(), operations
// raise mproc::Error, not EOFError (CPython: OSError "handle is closed").
TEST(CPythonAuditConnection, EndOfStreamIsReportedAgainAndAgain) {
  auto [a, b] = mproc::Pipe<int>();
  b.send(1);
  b.close();
  EXPECT_TRUE(a.poll());
  EXPECT_EQ(a.recv(), 1);
  EXPECT_TRUE(a.poll());
  EXPECT_TRUE(a.poll(0ms));
  EXPECT_TRUE(a.poll(-1s));
  EXPECT_EQ(mproc::wait(std::vector<mproc::Connection<int>>{a}, 0ms), std::vector<mproc::Connection<int>>{a});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(error_kind([&] { (void)a.recv(); }), "EOFError") << "recv #" << i;
  EXPECT_EQ(error_kind([&] { (void)a.recv_bytes(); }), "EOFError");
  EXPECT_EQ(error_kind([&] { a.send(2); }), "EOFError");
  EXPECT_FALSE(a.closed());
  EXPECT_TRUE(a.readable());
  EXPECT_TRUE(a.writable());
  a.close();
  EXPECT_TRUE(a.closed());
  EXPECT_EQ(error_kind([&] { (void)a.recv(); }), "Error");
  EXPECT_EQ(error_kind([&] { (void)a.recv_bytes(); }), "Error");
  EXPECT_EQ(error_kind([&] { a.send(3); }), "Error");
  EXPECT_EQ(error_kind([&] { (void)a.poll(); }), "Error");
  EXPECT_EQ(error_kind([&] { (void)a.fileno(); }), "Error");
  a.close();  // idempotent
}

// bpo-30414's counterpart for a connection: a send whose value fails to
// serialize halfway sends nothing (connection.hpp: "nothing is sent
// then"); the stream stays in step.
TEST(CPythonAuditConnection, SendThatFailsToSerializeSendsNothing) {
  auto [a, b] = mproc::Pipe<Flaky>();
  EXPECT_THROW(a.send(Flaky{std::string(3000, 'p'), true}), std::runtime_error);
  EXPECT_FALSE(b.poll());
  a.send(Flaky{"whole", false});
  ASSERT_TRUE(b.poll(kGuard));
  EXPECT_EQ(b.recv().s, "whole");
  EXPECT_FALSE(b.poll());
}

// _TestConnection.test_connection / test_sendbytes with Python's limits of
// send_bytes: an empty byte message, and 16 MiB messages both ways.
// (CPython's offset/size arguments and recv_bytes_into/BufferTooShort have
// no counterpart in mproc's API: a std::span already selects the bytes.)
TEST(CPythonAuditConnection, EmptyAndSixteenMebibyteByteMessages) {
  auto [a, b] = mproc::Pipe<std::string>();
  a.send_bytes({});
  ASSERT_TRUE(b.poll(kGuard));
  EXPECT_TRUE(b.recv_bytes().empty());
  std::vector<std::byte> big(std::size_t{16} << 20, std::byte{'X'});
  big[777] = std::byte{'Y'};
  std::thread sender([&, a = a]() mutable { a.send_bytes(big); });
  const auto got = b.recv_bytes();
  sender.join();
  EXPECT_TRUE(got == big);
  const std::span<const std::byte> part(big.data() + 7, 8);
  a.send_bytes(part);
  EXPECT_EQ(b.recv_bytes(), std::vector<std::byte>(part.begin(), part.end()));
}

class CPythonAuditConnectionProcess : public ::testing::TestWithParam<StartMethod> {};

using HandlePipe = mproc::Connection<mproc::Connection<std::string>>;

// _TestPicklingConnections.child_access.
void child_access(HandlePipe conn, mproc::Connection<std::string> reply) {
  auto w = conn.recv();
  w.send("all is well");
  w.close();
  auto r = conn.recv();
  const std::string msg = r.recv();
  reply.send(msg + msg);
  conn.close();
}

// _TestPicklingConnections.test_access: the writer of a one-way pipe sent
// to a child works there, and once both the child and the parent closed
// it the reader sees the end of the stream; the reader sent to a child
// gets what the parent writes.
TEST_P(CPythonAuditConnectionProcess, PipeEndsSentToAChildWork) {
  auto [conn, child_conn] = mproc::Pipe<mproc::Connection<std::string>>();
  auto [reply_r, reply_w] = mproc::Pipe<std::string>(false);
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(GetParam()), child_access, child_conn, reply_w);
  KillAtScopeEnd killer(ps);
  ps[0].start();
  child_conn.close();
  reply_w.close();

  {
    auto [r, w] = mproc::Pipe<std::string>(false);
    conn.send(w);
    w.close();
    ASSERT_TRUE(r.poll(kGuard));
    EXPECT_EQ(r.recv(), "all is well");
    ASSERT_TRUE(r.poll(kGuard)) << "the writer is still open somewhere";
    EXPECT_EQ(error_kind([&] { (void)r.recv(); }), "EOFError");
  }
  {
    auto [r, w] = mproc::Pipe<std::string>(false);
    conn.send(r);
    r.close();
    w.send("foobar");
    w.close();
    ASSERT_TRUE(reply_r.poll(kGuard));
    EXPECT_EQ(reply_r.recv(), "foobarfoobar");
  }
  EXPECT_EQ(join_guarded(ps[0]), 0);
}

// _TestPicklingConnections._listener.
void listen_and_forward(mproc::Connection<std::string> addresses, HandlePipe accepted, std::string unix_path) {
  for (const std::string& where : {unix_path, std::string("127.0.0.1:0")}) {
    mproc::Listener<std::string> l(where, "audit key");
    addresses.send(l.address());
    auto c = l.accept();
    accepted.send(c);
    c.close();
    l.close();
  }
}

// _TestPicklingConnections.test_pickling: a connection a child accepted
// (Unix and TCP) is sent to the parent over a pipe and works there.
TEST_P(CPythonAuditConnectionProcess, AcceptedConnectionsSentToTheParentWork) {
  TempDir dir;
  auto [addr_r, addr_w] = mproc::Pipe<std::string>(false);
  auto [conn_r, conn_w] = mproc::Pipe<mproc::Connection<std::string>>(false);
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(GetParam()), listen_and_forward, addr_w, conn_w, dir.file("sock"));
  KillAtScopeEnd killer(ps);
  ps[0].start();
  for (int family = 0; family < 2; ++family) {
    ASSERT_TRUE(addr_r.poll(kGuard)) << "family " << family;
    const std::string address = addr_r.recv();
    auto client = mproc::Client<std::string>(address, "audit key");
    ASSERT_TRUE(conn_r.poll(kGuard)) << address;
    auto accepted = conn_r.recv();
    client.send("This connection uses " + address);
    ASSERT_TRUE(accepted.poll(kGuard)) << address;
    EXPECT_EQ(accepted.recv(), "This connection uses " + address);
    accepted.send("back");
    ASSERT_TRUE(client.poll(kGuard)) << address;
    EXPECT_EQ(client.recv(), "back");
    accepted.close();
    ASSERT_TRUE(client.poll(kGuard));
    EXPECT_EQ(error_kind([&] { (void)client.recv(); }), "EOFError") << address;
  }
  EXPECT_EQ(join_guarded(ps[0]), 0);
}

void close_my_copy(mproc::Connection<int> c) { c.close(); }

// connection.hpp: close() acts on "this process's end, for every copy of
// this handle" in this process: a child closing the copy it was given
// leaves the parent's working (CPython: each process closes its own
// handle).
TEST_P(CPythonAuditConnectionProcess, AChildClosingItsCopyLeavesTheParentsOpen) {
  auto [a, b] = mproc::Pipe<int>();
  mproc::Process p(process_options(GetParam()), close_my_copy, b);
  p.start();
  EXPECT_EQ(join_guarded(p), 0);
  EXPECT_FALSE(b.closed());
  a.send(5);
  ASSERT_TRUE(b.poll(kGuard));
  EXPECT_EQ(b.recv(), 5);
  b.send(6);
  ASSERT_TRUE(a.poll(kGuard));
  EXPECT_EQ(a.recv(), 6);
}

void echo_bytes_until_empty(mproc::Connection<std::vector<int>> c) {
  for (;;) {
    const auto m = c.recv_bytes();
    if (m.empty()) return;
    c.send_bytes(m);
  }
}

// _TestConnection.test_connection against the _echo child: an object
// message, a byte message and a 16 MiB byte message come back; the empty
// byte message (SENTINEL) ends the child.
TEST_P(CPythonAuditConnectionProcess, EchoChildReturnsObjectsAndSixteenMebibytes) {
  auto [conn, child_conn] = mproc::Pipe<std::vector<int>>();
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(GetParam()), echo_bytes_until_empty, child_conn);
  KillAtScopeEnd killer(ps);
  ps[0].start();
  conn.send({1, 2, 3});
  ASSERT_TRUE(conn.poll(kGuard));
  EXPECT_EQ(conn.recv(), (std::vector<int>{1, 2, 3}));
  const std::string hello = "hello world";
  conn.send_bytes(std::as_bytes(std::span(hello)));
  ASSERT_TRUE(conn.poll(kGuard));
  const auto got = conn.recv_bytes();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data()), got.size()), hello);
  std::vector<std::byte> big(std::size_t{16} << 20, std::byte{'X'});
  big.back() = std::byte{'!'};
  conn.send_bytes(big);
  ASSERT_TRUE(conn.poll(kGuard));
  EXPECT_TRUE(conn.recv_bytes() == big);
  conn.send_bytes({});
  EXPECT_EQ(join_guarded(ps[0]), 0);
}

INSTANTIATE_TEST_SUITE_P(CPythonAudit, CPythonAuditConnectionProcess, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// _TestPicklingConnections / API.md §2: a message holding 300 handles (here
// 300 Events) crosses a Pipe; CPython sends any number of connections or
// locks in one message.
TEST(CPythonAuditConnection, ThreeHundredHandlesInOneMessage) {
  auto [a, b] = mproc::Pipe<std::vector<mproc::Event>>();
  std::vector<mproc::Event> events(300);
  try {
    a.send(events);
  } catch (const std::exception& e) {
    FAIL() << "send threw: " << e.what();
  }
  ASSERT_TRUE(b.poll(kGuard));
  auto got = b.recv();
  ASSERT_EQ(got.size(), 300u);
  for (auto& e : got) e.set();
  EXPECT_EQ(std::count_if(events.begin(), events.end(), [](const mproc::Event& e) { return e.is_set(); }), 300);
}

// ======================================================= _TestCondition ===

class CPythonAuditCondition : public ::testing::TestWithParam<StartMethod> {};

// Holds `lock` until `release_it` is set. Exit 3: the lock was no longer
// held when it came to release it (someone released it behind its back).
void hold_lock_until(mproc::Lock lock, mproc::Event held, mproc::Event release_it) {
  lock.acquire();
  held.set();
  if (!release_it.wait(2 * kGuard)) ::_exit(90);
  try {
    lock.release();
  } catch (...) {
    ::_exit(3);
  }
}

// _TestCondition / multiprocessing.synchronize.Condition.wait: "assert
// self._lock._semlock._is_mine(), 'must acquire() condition before using
// wait()'" (and the same in notify). A Condition over a Lock that another
// process holds refuses wait() and notify() (API.md / condition.hpp: "The
// caller must hold the lock (mproc::Error otherwise)"), and leaves the
// other process's lock alone.
TEST_P(CPythonAuditCondition, WaitAndNotifyRefuseALockHeldByAnotherProcess) {
  mproc::Lock lock;
  mproc::Condition cond(lock);
  mproc::Event held, release_it;
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(GetParam()), hold_lock_until, lock, held, release_it);
  KillAtScopeEnd killer(ps);
  ps[0].start();
  ASSERT_TRUE(held.wait(kGuard));
  EXPECT_THROW((void)cond.wait(0ms), mproc::Error) << "wait() released a lock another process holds";
  EXPECT_THROW(cond.notify(), mproc::Error);
  EXPECT_THROW(cond.notify_all(), mproc::Error);
  EXPECT_TRUE(lock.locked());
  release_it.set();
  EXPECT_EQ(join_guarded(ps[0]), 0) << "exit 3: the child's lock had been released behind its back";
}

void signal_through_the_values_lock(mproc::Condition c, mproc::Value<int> v, mproc::RLock lock) {
  {
    std::unique_lock g(c);
    v.value() = 1;
    c.notify_all();
  }
  std::lock_guard g(lock);
  v.value() += 1;
}

// _TestCondition.test_waitfor with the Condition made over a Value's lock
// (Condition(lock=v.get_lock()), the usual Python idiom to wait for a
// shared value): the Condition and the Value's RLock cross into a child,
// exclude the parent's holding and wake it.
TEST_P(CPythonAuditCondition, ConditionOverAValuesLockCrossesIntoAChild) {
  mproc::Value<int> v(0);
  mproc::Condition c(v.get_lock());
  std::unique_lock g(c);
  std::vector<mproc::Process> ps;
  ps.emplace_back(process_options(GetParam()), signal_through_the_values_lock, c, v, v.get_lock());
  KillAtScopeEnd killer(ps);
  ps[0].start();
  EXPECT_TRUE(c.wait_for([&] { return v.value() >= 1; }, kGuard));
  EXPECT_TRUE(v.get_lock().is_owned());
  g.unlock();
  EXPECT_EQ(join_guarded(ps[0]), 0);
  EXPECT_EQ(v.load(), 2);
}

INSTANTIATE_TEST_SUITE_P(CPythonAudit, CPythonAuditCondition, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// The same with the Lock held by another thread of this process (CPython's
// _is_mine() compares the thread too).
TEST(CPythonAuditConditionLocal, WaitRefusesALockHeldByAnotherThread) {
  mproc::Lock lock;
  mproc::Condition cond(lock);
  std::atomic<bool> held{false}, done{false};
  std::thread holder([&] {
    lock.acquire();
    held = true;
    wait_until([&] { return done.load(); });
    try {
      lock.release();
    } catch (...) {
    }
  });
  ASSERT_TRUE(wait_until([&] { return held.load(); }));
  EXPECT_THROW((void)cond.wait(0ms), mproc::Error) << "wait() released a lock another thread holds";
  EXPECT_THROW(cond.notify(), mproc::Error);
  // Whatever wait() did, leave the lock unlocked for the holder's release.
  done = true;
  holder.join();
  if (lock.locked()) lock.release();
}

// ======================================================= _TestSemaphore ===

// threading.Semaphore.release(n) (which multiprocessing's mirrors in
// mproc's release(n)): n must be >= 1 (ValueError); a BoundedSemaphore
// refuses a release(n) that would pass its initial value and then adds
// nothing (ValueError, all or nothing).
TEST(CPythonAuditSemaphore, ReleaseCountsAreCheckedAllOrNothing) {
  mproc::Semaphore s(0);
  EXPECT_THROW(s.release(0), mproc::Error);
  EXPECT_THROW(s.release(-1), mproc::Error);
  EXPECT_EQ(s.get_value(), 0);
  s.release(3);
  EXPECT_EQ(s.get_value(), 3);

  mproc::BoundedSemaphore b(3);
  b.acquire();
  b.acquire();
  EXPECT_EQ(b.get_value(), 1);
  EXPECT_THROW(b.release(3), mproc::Error);
  EXPECT_EQ(b.get_value(), 1) << "a refused release(n) added units";
  b.release(2);
  EXPECT_EQ(b.get_value(), 3);
  EXPECT_THROW(b.release(), mproc::Error);
  EXPECT_EQ(b.get_value(), 3);
}

// ========================================================= _TestBarrier ===

// threading.Barrier.wait: the last party to arrive releases the others
// without waiting, so even a zero timeout passes; the arrival index is the
// arrival order (the first gets 0, the last parties - 1).
TEST(CPythonAuditBarrier, TheLastPartyPassesEvenWithAZeroTimeout) {
  mproc::Barrier b(2);
  std::atomic<int> first{-1};
  std::thread t([&] {
    try {
      first = b.wait(kGuard);
    } catch (...) {
      first = -2;
    }
  });
  ASSERT_TRUE(wait_until([&] { return b.n_waiting() == 1; }));
  int last = -1;
  try {
    last = b.wait(0ms);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "the last party's wait(0) threw " << e.what();
    b.abort();
  }
  t.join();
  EXPECT_EQ(last, 1);
  EXPECT_EQ(first.load(), 0);
  EXPECT_FALSE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0);
}

// ====================================================== _TestValue/Array ===

// _TestValue.test_getobj_getlock / _TestArray.test_getobj_getlock_obj:
// RawValue and RawArray (Python's lock=False, RawValue, RawArray) have no
// get_lock; Value and Array do, and every copy of a handle uses that same
// lock.
template <class T>
concept has_get_lock = requires(const T& t) { t.get_lock(); };
static_assert(!has_get_lock<mproc::RawValue<int>>);
static_assert(!has_get_lock<mproc::RawArray<int>>);
static_assert(has_get_lock<mproc::Value<int>>);
static_assert(has_get_lock<mproc::Array<int>>);

TEST(CPythonAuditShared, CopiesOfAValueOrArrayShareItsLock) {
  mproc::Value<int> v(5);
  const mproc::Value<int> v2 = v;
  v.get_lock().acquire();
  EXPECT_TRUE(v2.get_lock().locked());
  EXPECT_TRUE(v2.get_lock().is_owned());
  v2.get_lock().release();
  EXPECT_FALSE(v.get_lock().locked());

  mproc::Array<int> a{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const mproc::Array<int> a2 = a;
  std::lock_guard g(a);
  EXPECT_TRUE(a2.get_lock().is_owned());
  EXPECT_EQ(a2.size(), 10u);
  EXPECT_THROW((void)a2.at(10), std::out_of_range);
  EXPECT_THROW((void)a2.atomic(10), std::out_of_range);
}

// ================================================== _TestSharedMemory ===

// _TestSharedMemory.test_shared_memory_basics: name and size of a named
// block; a second handle by attach() sees the bytes and at least the size;
// creating the name again raises (FileExistsError); a block can be
// unlinked through a handle that was closed first; after the unlink the
// name cannot be attached (FileNotFoundError).
TEST(CPythonAuditSharedMemory, NamedBlockBasicsAndUnlinkAfterClose) {
  const std::string name = mproc_test::unique_shm_name("basics");
  auto sms = mproc::SharedMemory::create(name, 512);
  EXPECT_EQ(sms.name(), name);
  EXPECT_GE(sms.size(), 512u);
  EXPECT_GE(sms.buf().size(), sms.size());
  static_cast<unsigned char*>(sms.data())[0] = 42;
  {
    auto also = mproc::SharedMemory::attach(name);
    EXPECT_EQ(static_cast<unsigned char*>(also.data())[0], 42);
    EXPECT_GE(also.size(), 512u);
    also.close();
  }
  EXPECT_THROW((void)mproc::SharedMemory::create(name, 512), mproc::Error);
  EXPECT_THROW((void)mproc::SharedMemory::create("/" + name, 64), mproc::Error);
  sms.close();
  EXPECT_EQ(sms.data(), nullptr);
  try {
    sms.unlink();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unlink() after close() threw " << e.what();
  }
  EXPECT_THROW((void)mproc::SharedMemory::attach(name), mproc::Error);
}

}  // namespace
