// test_cpython_audit_pool.cpp: Pool, ThreadPool and AsyncResult held against
// the semantics of CPython's multiprocessing test suite
// (Lib/test/_test_multiprocessing.py: _TestPool, _TestPoolWorkerErrors,
// _TestPoolWorkerLifetime and the pool tests around them), for what the
// other pool test files do not already check.
//
// Each test names the CPython test it follows, or the Python expectation it
// checks where CPython has no test of its own (API.md: "where this file is
// silent, do what a Python multiprocessing user would expect"). Tasks are
// free functions, captureless lambdas and small serializable function
// objects, so that every process test runs under fork, spawn and forkserver.
// Every blocking call is bounded: a HangGuard per test, and
// mproc_test::guarded (or an explicit wait with an abort) where a hang is
// the plausible bug.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/async_result.hpp"
#include "mproc/connection.hpp"
#include "mproc/errors.hpp"
#include "mproc/pipe.hpp"
#include "mproc/pool.hpp"
#include "mproc/thread_pool.hpp"

// PoolOptions is filled with designated initializers (see test_pool.cpp).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

using mproc::StartMethod;
using mproc_test::guarded;
using mproc_test::kGuard;
using mproc_test::TempDir;
using mproc_test::wait_for_file;
using mproc_test::wait_until;
using namespace std::chrono_literals;

// ------------------------------------------------------------ task bodies ---

int sqr(int x) { return x * x; }

// Slow on purpose: long enough that a waiting caller must really block
// (no spin catches it); nothing asserts how long it took.
int slow_sqr(int x) {
  ::usleep(300 * 1000);
  return x * x;
}

// Marks `path`, then runs until killed (bounded all the same).
int hang_after_marking(std::string path) {
  mproc_test::write_file(path, std::to_string(::getpid()));
  for (int i = 0; i < 1200; ++i) ::usleep(50 * 1000);
  return -1;
}

void send_seven(mproc::Connection<int> w) { w.send(7); }

std::vector<int> squares(int from, int to) {
  std::vector<int> out;
  for (int i = from; i < to; ++i) out.push_back(i * i);
  return out;
}

// A value that counts its live instances in this process: CPython's
// CountedObject (test_release_task_refs). Only the parent's count matters;
// a worker has its own.
std::atomic<int> g_counted_live{0};
struct Counted {
  int value = 0;
  Counted() { ++g_counted_live; }
  explicit Counted(int v) : value(v) { ++g_counted_live; }
  Counted(const Counted& o) : value(o.value) { ++g_counted_live; }
  Counted(Counted&& o) noexcept : value(o.value) { ++g_counted_live; }
  Counted& operator=(const Counted&) = default;
  Counted& operator=(Counted&&) noexcept = default;
  ~Counted() { --g_counted_live; }
  template <class Archive>
  void serialize(Archive& a) {
    a(value);
  }
};
Counted counted_identity(Counted c) { return c; }

// Serializable types that refuse to cross at value 13: on loading (which
// happens in the receiving process) or on saving (in the sending one, after
// part of the value was written).
struct LoadRefusingAdder {  // a callable
  int add = 0;
  int operator()(int x) const { return x + add; }
  template <class Archive>
  void save(Archive& a) const {
    a(add);
  }
  template <class Archive>
  void load(Archive& a) {
    a(add);
    if (add == 13) throw std::runtime_error("this callable refuses to be loaded");
  }
};

struct LoadRefusing {  // an argument the worker, or a result the parent, cannot decode
  int v = 0;
  template <class Archive>
  void save(Archive& a) const {
    a(v);
  }
  template <class Archive>
  void load(Archive& a) {
    a(v);
    if (v == 13) throw std::runtime_error("value 13 refuses to be loaded");
  }
};
int unwrap(LoadRefusing x) { return x.v; }

struct SaveRefusingResult {  // a result the worker cannot encode
  int v = 0;
  template <class Archive>
  void save(Archive& a) const {
    a(v);  // part of the value is written first
    if (v == 13) throw std::runtime_error("result 13 refuses to be saved");
  }
  template <class Archive>
  void load(Archive& a) {
    a(v);
  }
};
SaveRefusingResult make_save_refusing(int x) { return {x}; }

LoadRefusing make_load_refusing(int x) { return {x}; }

int g_audit_init = 0;
void audit_set_init(int v) { g_audit_init = v; }
std::pair<int, int> pid_and_init(int) { return {static_cast<int>(::getpid()), g_audit_init}; }

void init_exits_3() { ::_exit(3); }
void init_exits_0() { ::_exit(0); }
void init_throws() { throw std::invalid_argument("the initializer refused"); }

// An endless input that throws PullLimit once `limit` items were taken
// from it: a canary for an imap that reads far more input than its window.
struct PullLimit : std::runtime_error {
  using std::runtime_error::runtime_error;
};
auto limited_endless(std::atomic<std::size_t>& pulls, std::size_t limit) {
  return std::views::iota(0) | std::views::transform([&pulls, limit](int x) {
           if (pulls.fetch_add(1) >= limit) throw PullLimit("the input was read far ahead of the consumer");
           return x;
         });
}

// Drains an imap range with next(kGuard): the values, then how it ended
// ("end", or the what() of the exception that ended it).
template <class Range>
std::pair<std::vector<int>, std::string> drain(Range& it) {
  std::vector<int> got;
  try {
    while (auto v = it.next(kGuard)) got.push_back(*v);
    return {got, "end"};
  } catch (const std::exception& e) {
    return {got, std::string("threw: ") + e.what()};
  }
}

// Checks that `fn` gives `expected`; a throw is a failure naming `what`
// (so that the test goes on to its other checks).
template <class Fn, class T>
void expect_value(const char* what, Fn fn, const T& expected) {
  try {
    EXPECT_EQ(fn(), expected) << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << " threw " << e.what();
  }
}

// An imap over {1, 13, 3} whose middle item fails: 1, that item's
// runtime_error, 3; and the pool still answers.
template <class Range>
void expect_only_the_middle_fails(mproc::Pool& pool, Range& it) {
  EXPECT_EQ(it.next(kGuard)->v, 1);
  EXPECT_THROW((void)it.next(kGuard), std::runtime_error);
  auto third = it.next(kGuard);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->v, 3);
  EXPECT_EQ(pool.apply(sqr, 5), 25);
}

// ------------------------------------------------------------------ fixture ---

class CPythonAuditPool : public mproc_test::PoolTestByMethod {};

// ============================================================ task refs ===

// _TestPool.test_release_task_refs (bpo-29861): once a call is done, the
// pool keeps neither its arguments nor its results: after the caller drops
// its own objects (inputs, outputs, AsyncResults), no Counted is left in
// this process. Callbacks (and what they capture) are let go too.
TEST_P(CPythonAuditPool, ReleasesTaskArgumentsResultsAndCallbacksOnceDone) {
  mproc::Pool pool(options());
  const int base = g_counted_live.load();
  {
    std::vector<Counted> objs;
    for (int i = 0; i < 10; ++i) objs.emplace_back(i);
    const std::vector<Counted> out = pool.map(counted_identity, objs);
    ASSERT_EQ(out.size(), 10u);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)].value, i);
    auto r = pool.map_async(counted_identity, objs, std::size_t{3});
    EXPECT_EQ(r.get(kGuard).size(), 10u);
    auto a = pool.apply_async(counted_identity, Counted(7));
    EXPECT_EQ(a.get(kGuard).value, 7);
    auto it = pool.imap(counted_identity, objs);
    int n = 0;
    while (auto v = it.next(kGuard)) EXPECT_EQ(v->value, n++);
    EXPECT_EQ(n, 10);
  }
  EXPECT_TRUE(wait_until([&] { return g_counted_live.load() == base; }))
      << g_counted_live.load() - base << " Counted objects are still alive in the parent";

  auto token = std::make_shared<int>(0);
  {
    auto ok = pool.apply_async(sqr, mproc::args(3), mproc::on_result([token](int) {}));
    auto bad = pool.apply_async(
        [](int) -> int { throw std::out_of_range("no"); }, mproc::args(1), mproc::on_error([token](std::exception_ptr) {}));
    auto m = pool.map_async(sqr, std::vector{1, 2}, mproc::on_result([token](const std::vector<int>&) {}));
    EXPECT_EQ(ok.get(kGuard), 9);
    EXPECT_THROW((void)bad.get(kGuard), std::out_of_range);
    EXPECT_EQ(m.get(kGuard), (std::vector{1, 4}));
  }
  EXPECT_TRUE(wait_until([&] { return token.use_count() == 1; }))
      << token.use_count() - 1 << " copies of a callback's capture are still held";
}

// test_release_task_refs for what a worker holds: a task's argument that
// is a handle (here the only write end of a pipe) is let go once the task
// is done, in the parent and in the worker, so the reader sees the end of
// the stream. (CPython's worker drops `task, job, func, args` after each
// task for this reason; mproc's own Process does so too:
// CPythonProcess2.LetsGoOfItsTargetAndArgumentsOnceStarted.)
TEST_P(CPythonAuditPool, AWorkerLetsGoOfATasksHandleArgumentOnceTheTaskIsDone) {
  mproc::Pool pool(options(1));
  // The one worker exists before the pipe does (a fork must not inherit it).
  ASSERT_EQ(pool.apply(sqr, 2), 4);
  auto [r, w] = mproc::Pipe<int>(false);
  pool.apply(send_seven, std::move(w));
  ASSERT_TRUE(r.poll(kGuard));
  EXPECT_EQ(r.recv(), 7);
  bool eof = false;
  if (r.poll(kGuard)) {
    try {
      (void)r.recv();
      ADD_FAILURE() << "a second message arrived";
    } catch (const mproc::EOFError&) {
      eof = true;
    }
  }
  EXPECT_TRUE(eof) << "the task is done, but a copy of its write end is still open somewhere";
  if (!eof) {
    // Diagnosis: the worker's next message makes it let go.
    EXPECT_EQ(pool.apply(sqr, 3), 9);
    const bool eof_after_next_task = r.poll(kGuard);
    EXPECT_TRUE(eof_after_next_task);
    if (eof_after_next_task) {
      EXPECT_THROW((void)r.recv(), mproc::EOFError)
          << "the worker held the descriptor received with its last task until its next message";
    }
  }
}

// ================================================= what cannot cross ===

// _TestPoolWorkerErrors.test_unpickleable_result: a result the worker
// cannot encode fails that task only (MaybeEncodingError in Python; here
// the encoder's own exception); 20 times in a row the pool loses no worker,
// and results after it in the same chunk are intact.
TEST_P(CPythonAuditPool, AResultThatCannotBeEncodedFailsOnlyItsTask) {
  mproc::Pool pool(options());
  ASSERT_EQ(pool.map(sqr, std::views::iota(0, 4), 1), squares(0, 4));  // both workers up
  ASSERT_TRUE(wait_until([] { return mproc_test::worker_pids().size() == 2; }));
  const auto before = mproc_test::worker_pids();
  for (int i = 0; i < 20; ++i) {
    auto r = pool.apply_async(make_save_refusing, 13);
    try {
      (void)r.get(kGuard);
      ADD_FAILURE() << "an unencodable result arrived";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "result 13 refuses to be saved");
    }
  }
  EXPECT_EQ(std::set<pid_t>(before.begin(), before.end()),
            [] {
              const auto now = mproc_test::worker_pids();
              return std::set<pid_t>(now.begin(), now.end());
            }())
      << "workers were replaced because of encoding errors";
  // In one chunk: the items around the failed one are unaffected.
  auto it = pool.imap(make_save_refusing, std::vector{1, 13, 3}, 3);
  expect_only_the_middle_fails(pool, it);
}

// The parent's side of the same: a result that cannot be decoded here
// fails its task with the decoder's exception; the pool goes on.
TEST_P(CPythonAuditPool, AResultThatCannotBeDecodedInTheParentFailsOnlyItsTask) {
  mproc::Pool pool(options());
  try {
    (void)pool.apply(make_load_refusing, 13);
    ADD_FAILURE() << "an undecodable result arrived";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "value 13 refuses to be loaded");
  }
  auto it = pool.imap(make_load_refusing, std::vector{1, 13, 3}, 1);
  expect_only_the_middle_fails(pool, it);
}

// An argument the worker cannot decode fails its item only (Python: an
// unpicklable argument fails its task; the pool goes on).
TEST_P(CPythonAuditPool, AnArgumentThatCannotBeDecodedFailsOnlyItsItem) {
  mproc::Pool pool(options());
  const std::vector<LoadRefusing> xs{{1}, {13}, {3}};
  try {
    (void)pool.map(unwrap, xs, 1);
    ADD_FAILURE() << "map did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "value 13 refuses to be loaded");
  }
  auto it = pool.imap(unwrap, xs, 1);
  EXPECT_EQ(it.next(kGuard), 1);
  EXPECT_THROW((void)it.next(kGuard), std::runtime_error);
  EXPECT_EQ(it.next(kGuard), 3);
  EXPECT_EQ(pool.apply(sqr, 5), 25);
}

// The same for the callable itself: a task whose function object the
// worker cannot decode fails (with the decoder's exception), and the pool
// goes on running other tasks, as for an undecodable argument or result.
// (worker_main.cpp says of this case: "every item of it fails with that
// error".)
TEST_P(CPythonAuditPool, ACallableThatCannotBeDecodedFailsOnlyItsTask) {
  mproc::Pool pool(options());
  auto bad = guarded(pool, "apply of an undecodable callable", [&] { return pool.apply(LoadRefusingAdder{13}, 1); });
  try {
    (void)bad.get();
    ADD_FAILURE() << "an undecodable callable ran";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "this callable refuses to be loaded");
  }
  expect_value(
      "apply of a good callable after a bad one",
      [&] { return guarded(pool, "apply after", [&] { return pool.apply(LoadRefusingAdder{1}, 1); }).get(); }, 2);
  expect_value(
      "map after a bad callable",
      [&] { return guarded(pool, "map after", [&] { return pool.map(sqr, std::vector{1, 2, 3}); }).get(); },
      std::vector{1, 4, 9});
}

// ====================================================== initializers ===

// _TestPoolWorkerLifetime with an initializer: each fresh worker (one per
// chunk with maxtasksperchild=1) runs the initializer before its task.
TEST_P(CPythonAuditPool, MaxTasksPerChildRunsTheInitializerInEveryNewWorker) {
  g_audit_init = 0;
  mproc::Pool pool(mproc::PoolOptions{.processes = 2,
                                      .initializer = audit_set_init,
                                      .initargs = std::make_tuple(41),
                                      .maxtasksperchild = 1,
                                      .start_method = GetParam()});
  const auto got = guarded(pool, "map", [&] { return pool.map(pid_and_init, std::views::iota(0, 12), 1); }).get();
  ASSERT_EQ(got.size(), 12u);
  std::set<int> pids;
  for (const auto& [pid, init] : got) {
    EXPECT_EQ(init, 41) << "a worker ran a task without its initializer";
    pids.insert(pid);
  }
  EXPECT_EQ(pids.size(), 12u);
  EXPECT_EQ(g_audit_init, 0);
}

// An initializer that kills its worker (CPython restarts such workers for
// ever and the pool hangs). mproc breaks the pool after a few: the pending
// task and later submissions fail with WorkerLostError, and the pool still
// closes.
TEST_P(CPythonAuditPool, AnInitializerThatExitsBreaksThePoolInsteadOfRestartingForever) {
  mproc::Pool pool(mproc::PoolOptions<void (*)()>{
      .processes = 2, .initializer = init_exits_3, .start_method = GetParam()});
  auto fut = guarded(pool, "apply on a pool whose workers exit in the initializer", [&] { return pool.apply(sqr, 3); });
  EXPECT_THROW((void)fut.get(), mproc::WorkerLostError);
  EXPECT_THROW((void)pool.apply_async(sqr, 4), mproc::WorkerLostError);
  pool.close();
  guarded(pool, "join", [&] { pool.join(); }).get();
}

// The same with exit code 0: a worker that leaves with status 0 from its
// initializer never ran a task either; it must not be restarted for ever.
TEST_P(CPythonAuditPool, AnInitializerThatExitsWithStatusZeroBreaksThePoolToo) {
  mproc::Pool pool(mproc::PoolOptions<void (*)()>{
      .processes = 2, .initializer = init_exits_0, .start_method = GetParam()});
  auto fut = guarded(pool, "apply on a pool whose workers _exit(0) in the initializer", [&] { return pool.apply(sqr, 3); });
  EXPECT_THROW((void)fut.get(), mproc::WorkerLostError);
  pool.close();
  guarded(pool, "join", [&] { pool.join(); }).get();
}

// ================================================= invalid arguments ===

// _TestPoolWorkerLifetime.test_pool_maxtasksperchild_invalid: -1 is
// refused (0 means "no limit" in mproc, pool.hpp). A task_timeout that is
// not positive is refused too.
TEST_P(CPythonAuditPool, InvalidMaxTasksPerChildAndTaskTimeoutAreRefused) {
  auto o = options();
  o.maxtasksperchild = static_cast<std::size_t>(-1);
  EXPECT_THROW({ mproc::Pool p(o); }, mproc::Error);
  o.maxtasksperchild = 0;
  o.task_timeout = 0ns;
  EXPECT_THROW({ mproc::Pool p(o); }, mproc::Error);
  o.task_timeout = -1s;
  EXPECT_THROW({ mproc::Pool p(o); }, mproc::Error);
}

// Pool.imap refuses chunksize < 1 (ValueError "Chunksize must be 1+"). In
// C++ a negative chunksize is a huge std::size_t; whatever mproc makes of
// it (an mproc::Error, as Python's ValueError, or some bounded chunk), an
// endless input must still work (API.md: "at most a bounded number of
// tasks is in flight, so an endless input range works"): the input must
// not be read without bound before the first result.
template <class AnyPool>
void check_huge_imap_chunksize(AnyPool& pool) {
  std::atomic<std::size_t> pulls{0};
  constexpr std::size_t kLimit = 100000;
  try {
    auto it = pool.imap(sqr, limited_endless(pulls, kLimit), static_cast<std::size_t>(-1));
    EXPECT_EQ(it.next(kGuard), 0);
  } catch (const PullLimit&) {
    ADD_FAILURE() << "imap with chunksize size_t(-1) read " << pulls.load()
                  << " items of an endless input before yielding anything (Python refuses chunksize < 1)";
  } catch (const mproc::TimeoutError&) {
    ADD_FAILURE() << "no first result";
  } catch (const mproc::Error&) {
    // Refused, like Python's ValueError: fine.
  }
  EXPECT_LT(pulls.load(), kLimit);
}

TEST_P(CPythonAuditPool, ImapWithANegativeChunksizeDoesNotReadAnEndlessInputWithoutBound) {
  mproc::Pool pool(options());
  check_huge_imap_chunksize(pool);
  EXPECT_EQ(pool.apply(sqr, 3), 9);
}

// ========================================================== lifecycle ===

// Python: close() then terminate() is allowed; terminate() twice and join()
// twice are harmless; what was running or queued fails (never hangs).
TEST_P(CPythonAuditPool, CloseThenTerminateTwiceThenJoinTwice) {
  mproc::Pool pool(options(1));
  TempDir dir;
  auto hung = pool.apply_async(hang_after_marking, dir.file("started"));
  ASSERT_TRUE(wait_for_file(dir.file("started")));
  // The queued task's error callback runs once, with the PoolClosedError,
  // by the time join() returns; its result callback never does.
  std::atomic<int> results{0}, errors{0}, closed_errors{0};
  auto queued = pool.apply_async(sqr, mproc::args(5), mproc::on_result([&](int) { ++results; }),
                                 mproc::on_error([&](std::exception_ptr e) {
                                   ++errors;
                                   try {
                                     std::rethrow_exception(e);
                                   } catch (const mproc::PoolClosedError&) {
                                     ++closed_errors;
                                   } catch (...) {
                                   }
                                 }));
  pool.close();
  pool.terminate();
  pool.terminate();
  guarded(pool, "join", [&] { pool.join(); }).get();
  guarded(pool, "second join", [&] { pool.join(); }).get();
  EXPECT_THROW((void)hung.get(kGuard), mproc::PoolClosedError);
  EXPECT_THROW((void)queued.get(kGuard), mproc::PoolClosedError);
  EXPECT_EQ(results.load(), 0);
  EXPECT_EQ(errors.load(), 1);
  EXPECT_EQ(closed_errors.load(), 1);
  EXPECT_THROW((void)pool.apply_async(sqr, 1), mproc::PoolClosedError);
}

// A task that ends its worker with status 0 (Python: sys.exit() in a task,
// whose SystemExit kills the worker and loses the task for ever) fails
// with WorkerLostError naming the exit code; the other tasks complete.
int exit_zero_at_three(int x) {
  if (x == 3) ::_exit(0);
  return x * x;
}

TEST_P(CPythonAuditPool, ATaskThatExitsWithStatusZeroFailsWithWorkerLostError) {
  mproc::Pool pool(options());
  auto it = pool.imap(exit_zero_at_three, std::views::iota(0, 8));
  std::vector<int> got;
  std::string lost;
  for (int i = 0; i < 8; ++i) {
    try {
      auto v = it.next(kGuard);
      ASSERT_TRUE(v.has_value());
      got.push_back(*v);
    } catch (const mproc::WorkerLostError& e) {
      lost = e.what();
      got.push_back(-1);
    }
  }
  EXPECT_EQ(got, (std::vector{0, 1, 4, -1, 16, 25, 36, 49}));
  EXPECT_NE(lost.find("exit code 0"), std::string::npos) << lost;
  EXPECT_EQ(pool.apply(sqr, 9), 81);
}

// A consumer blocked in an imap's next() while another thread terminates
// the pool gets PoolClosedError instead of waiting for ever.
TEST_P(CPythonAuditPool, TerminateEndsAConsumerBlockedInImapNext) {
  mproc::Pool pool(options(1));
  TempDir dir;
  auto it = pool.imap(hang_after_marking, std::vector<std::string>{dir.file("started")});
  ASSERT_TRUE(wait_for_file(dir.file("started")));
  auto fut = std::async(std::launch::async, [&] { return it.next(); });
  pool.terminate();  // whether next() is blocked already or not yet
  if (fut.wait_for(kGuard) != std::future_status::ready) {
    std::fprintf(stderr, "imap next() still blocked after terminate()\n");
    std::abort();
  }
  EXPECT_THROW((void)fut.get(), mproc::PoolClosedError);
  guarded(pool, "join", [&] { pool.join(); }).get();
}

// Python: an imap's tasks are all submitted at the call, so after close()
// the workers finish them and join() returns; the results are then read
// from the iterator. (Here the input is longer than the imap window, which
// mproc reads only as results are consumed: API.md section 4.)
TEST_P(CPythonAuditPool, ImapResultsCanBeReadAfterCloseAndJoin) {
  mproc::Pool pool(options());
  auto it = pool.imap(sqr, std::views::iota(0, 200));
  pool.close();
  guarded(pool, "join after close, with an imap not yet read", [&] { pool.join(); }).get();
  const auto [got, how] = drain(it);
  EXPECT_EQ(how, "end");
  EXPECT_EQ(got, squares(0, 200));
}

// Pool methods may be called from any thread (pool.hpp): maps, an imap and
// applies from four threads at once each get their own results.
TEST_P(CPythonAuditPool, CallsFromSeveralThreadsAtOnce) {
  mproc::Pool pool(options());
  std::vector<std::future<std::vector<int>>> futs;
  for (int t = 0; t < 4; ++t) {
    futs.push_back(std::async(std::launch::async, [&pool, t] {
      std::vector<int> out;
      if (t == 3) {
        for (int v : pool.imap(sqr, std::views::iota(300, 400))) out.push_back(v);
      } else if (t == 2) {
        for (int x = 200; x < 300; ++x) out.push_back(pool.apply(sqr, x));
      } else {
        out = pool.map(sqr, std::views::iota(t * 100, t * 100 + 100), t == 0 ? std::size_t{0} : std::size_t{7});
      }
      return out;
    }));
  }
  for (int t = 0; t < 4; ++t) {
    auto& f = futs[static_cast<std::size_t>(t)];
    if (f.wait_for(kGuard) != std::future_status::ready) {
      std::fprintf(stderr, "concurrent pool calls hang\n");
      std::abort();
    }
    EXPECT_EQ(f.get(), squares(t * 100, t * 100 + 100)) << "thread " << t;
  }
}

// Python's callbacks may submit more work to their pool (they run on a
// pool thread, which must not be the one that dispatches tasks).
TEST_P(CPythonAuditPool, ACallbackMaySubmitMoreWork) {
  mproc::Pool pool(options());
  std::promise<mproc::AsyncResult<int>> inner;
  auto outer = pool.apply_async(sqr, mproc::args(3),
                                mproc::on_result([&](int v) { inner.set_value(pool.apply_async(sqr, v)); }));
  EXPECT_EQ(outer.get(kGuard), 9);
  auto f = inner.get_future();
  ASSERT_EQ(f.wait_for(kGuard), std::future_status::ready) << "the callback had not run when get() returned";
  EXPECT_EQ(f.get().get(kGuard), 81);
}

// ========================================================= AsyncResult ===

// A timeout of duration::max() means "wait as long as it takes" (Python:
// res.get(timeout=1e9) just waits; mproc's own deadlines saturate too,
// detail/futex.hpp deadline_after). It must not overflow into "already
// expired".
template <class AnyPool>
void check_endless_timeouts(AnyPool& pool) {
  auto r = pool.apply_async(slow_sqr, 4);
  expect_value("get(nanoseconds::max())", [&] { return r.get(std::chrono::nanoseconds::max()); }, 16);
  auto r2 = pool.apply_async(slow_sqr, 5);
  EXPECT_TRUE(r2.wait(std::chrono::seconds::max())) << "wait(seconds::max()) returned before the result";
  EXPECT_EQ(r2.get(kGuard), 25);
  auto r3 = pool.apply_async(slow_sqr, 6);
  expect_value("get(hours::max())", [&] { return r3.get(std::chrono::hours::max()); }, 36);
  auto it = pool.imap(slow_sqr, std::vector{7});
  expect_value("imap next(nanoseconds::max())", [&] { return it.next(std::chrono::nanoseconds::max()); },
               std::optional<int>(49));
}

TEST_P(CPythonAuditPool, EndlessTimeoutsWaitForTheResult) {
  mproc::Pool pool(options());
  check_endless_timeouts(pool);
}

// ================================================================ imap ===

// Python: iter(it) is it, so a second loop over an exhausted imap yields
// nothing, and next() keeps saying "end".
TEST_P(CPythonAuditPool, AnExhaustedImapYieldsNothingTheSecondTime) {
  mproc::Pool pool(options());
  auto it = pool.imap(sqr, std::views::iota(0, 5));
  std::vector<int> first, second;
  for (int v : it) first.push_back(v);
  for (int v : it) second.push_back(v);
  EXPECT_EQ(first, squares(0, 5));
  EXPECT_TRUE(second.empty());
  EXPECT_EQ(it.next(), std::nullopt);
}

// Python's idiom `head = next(it); for x in it: ...` goes on where next()
// stopped. (pool.hpp documents "Do not mix [next()] with range-for on the
// same range"; a Python user does it all the time.)
TEST_P(CPythonAuditPool, RangeForAfterNextGoesOnWhereNextStopped) {
  mproc::Pool pool(options());
  auto it = pool.imap(sqr, std::views::iota(0, 5));
  EXPECT_EQ(it.next(kGuard), 0);
  std::vector<int> rest;
  for (int v : it) rest.push_back(v);
  EXPECT_EQ(rest, squares(1, 5));
  EXPECT_EQ(it.next(), std::nullopt);
}

// A loop left by `break` goes on after the value it stopped at, as a
// Python for loop over the same iterator does.
TEST_P(CPythonAuditPool, ASecondLoopGoesOnAfterTheBreakOfTheFirst) {
  mproc::Pool pool(options());
  auto it = pool.imap(sqr, std::views::iota(0, 6));
  std::vector<int> first, second;
  for (int v : it) {
    first.push_back(v);
    if (first.size() == 2) break;
  }
  for (int v : it) second.push_back(v);
  EXPECT_EQ(first, squares(0, 2));
  EXPECT_EQ(second, squares(2, 6));
}

// API.md: "R is the decayed return type of f": a function that returns a
// reference gives its caller a copy of the value.
const std::string& name_of(int i) {
  static const std::string names[] = {"zero", "one", "two"};
  return names[i];
}

TEST_P(CPythonAuditPool, ATaskReturningAReferenceGivesACopyOfTheValue) {
  mproc::Pool pool(options());
  EXPECT_EQ(pool.apply(name_of, 1), "one");
  EXPECT_EQ(pool.apply_async(name_of, 2).get(kGuard), "two");
  EXPECT_EQ(pool.map(name_of, std::vector{0, 2}), (std::vector<std::string>{"zero", "two"}));
}

INSTANTIATE_TEST_SUITE_P(CPythonAudit, CPythonAuditPool, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

// ========================================================== ThreadPool ===

class CPythonAuditThreadPool : public ::testing::Test {
 protected:
  mproc_test::HangGuard hang_guard_;
};

// ThreadPool has "the same methods and semantics as mproc::Pool"
// (thread_pool.hpp), and the Pool fails tasks with the exception of an
// initializer that throws (test_pool.cpp,
// ThrowingInitializerFailsTasksWithItsException). CPython's ThreadPool never
// runs a task in a thread whose initializer raised. Here a task must not
// run as if the worker had been initialized.
TEST_F(CPythonAuditThreadPool, AThrowingInitializerFailsTasksAsInThePool) {
  mproc_test::StderrCapture quiet;
  mproc::ThreadPool tp(mproc::PoolOptions<void (*)()>{.processes = 2, .initializer = init_throws});
  auto fut = guarded(tp, "apply on a thread pool whose initializer throws", [&] { return tp.apply(sqr, 3); });
  try {
    const int v = fut.get();
    ADD_FAILURE() << "a task ran (and gave " << v << ") although the initializer threw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "the initializer refused");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "apply threw " << e.what() << ", not the initializer's exception";
  }
}

// As for the Pool: the results of an imap whose input is longer than its
// window can be read after close() and join() (Python: they are all
// computed by then). Reading them after close() must never hang.
TEST_F(CPythonAuditThreadPool, ImapResultsCanBeReadAfterCloseAndJoin) {
  mproc::ThreadPool tp(2);
  auto it = tp.imap(sqr, std::views::iota(0, 200));
  tp.close();
  guarded(tp, "join after close, with an imap not yet read", [&] { tp.join(); }).get();
  const auto [got, how] = drain(it);
  EXPECT_EQ(how, "end");
  EXPECT_EQ(got.size(), 200u);
  EXPECT_EQ(got, squares(0, static_cast<int>(got.size())));
}

// The same without join(): close() and then read.
TEST_F(CPythonAuditThreadPool, ImapResultsCanBeReadAfterClose) {
  mproc::ThreadPool tp(2);
  std::atomic<std::size_t> done{0};
  auto it = tp.imap(
      [&done](int x) {
        ++done;
        return x * x;
      },
      std::views::iota(0, 200));
  // The window's tasks are done (and, since nobody reads, no more are
  // taken) before close().
  ASSERT_TRUE(wait_until([&] { return done.load() >= mproc::imap_window(tp.processes(), 1); }));
  tp.close();
  auto fut = guarded(tp, "reading an imap after close", [&] { return drain(it); });
  const auto [got, how] = fut.get();
  EXPECT_EQ(how, "end");
  EXPECT_EQ(got.size(), 200u);
}

TEST_F(CPythonAuditThreadPool, ImapWithANegativeChunksizeDoesNotReadAnEndlessInputWithoutBound) {
  mproc::ThreadPool tp(2);
  check_huge_imap_chunksize(tp);
  EXPECT_EQ(tp.apply(sqr, 3), 9);
}

// test_pool_maxtasksperchild_invalid applies to CPython's ThreadPool too
// (it is a Pool); mproc's ThreadPool accepts maxtasksperchild and ignores
// it, but should refuse what mproc::Pool refuses.
TEST_F(CPythonAuditThreadPool, NegativeMaxTasksPerChildIsRefusedAsByThePool) {
  mproc::PoolOptions<> o;
  o.processes = 2;
  o.maxtasksperchild = static_cast<std::size_t>(-1);
  EXPECT_THROW({ mproc::ThreadPool tp(o); }, mproc::Error);
}

// test_release_task_refs on threads: the callable, the inputs and the
// callbacks are let go once the calls are done.
TEST_F(CPythonAuditThreadPool, ReleasesTaskArgumentsAndCallbacksOnceDone) {
  mproc::ThreadPool tp(2);
  auto token = std::make_shared<int>(5);
  {
    EXPECT_EQ(tp.apply([token] { return *token; }), 5);
    std::vector<std::shared_ptr<int>> items(6, token);
    auto deref = [](const std::shared_ptr<int>& p) { return *p; };
    EXPECT_EQ(tp.map(deref, items, 2), std::vector<int>(6, 5));
    auto r = tp.map_async(deref, items, mproc::on_result([token](const std::vector<int>&) {}));
    EXPECT_EQ(r.get(kGuard), std::vector<int>(6, 5));
    auto it = tp.imap(deref, items);
    int n = 0;
    while (auto v = it.next(kGuard)) n += *v;
    EXPECT_EQ(n, 30);
  }
  EXPECT_TRUE(wait_until([&] { return token.use_count() == 1; }))
      << token.use_count() - 1 << " copies are still held by the thread pool";
}

TEST_F(CPythonAuditThreadPool, ACallbackMaySubmitMoreWork) {
  mproc::ThreadPool tp(2);
  std::promise<mproc::AsyncResult<int>> inner;
  auto outer =
      tp.apply_async(sqr, mproc::args(3), mproc::on_result([&](int v) { inner.set_value(tp.apply_async(sqr, v)); }));
  EXPECT_EQ(outer.get(kGuard), 9);
  auto f = inner.get_future();
  ASSERT_EQ(f.wait_for(kGuard), std::future_status::ready);
  EXPECT_EQ(f.get().get(kGuard), 81);
}

TEST_F(CPythonAuditThreadPool, EndlessTimeoutsWaitForTheResult) {
  mproc::ThreadPool tp(2);
  check_endless_timeouts(tp);
}

TEST_F(CPythonAuditThreadPool, ATaskReturningAReferenceGivesACopyOfTheValue) {
  mproc::ThreadPool tp(2);
  EXPECT_EQ(tp.apply(name_of, 1), "one");
  EXPECT_EQ(tp.apply_async(name_of, 2).get(kGuard), "two");
  EXPECT_EQ(tp.map(name_of, std::vector{0, 2}), (std::vector<std::string>{"zero", "two"}));
}

}  // namespace
