// test_pool_faults.cpp: a Pool under faults (API.md section 4): workers
// that die while running a task (SIGKILL, SIGSEGV, abort(), _exit), tasks
// that exceed task_timeout, terminate() with hung workers, and SIGINT in a
// process that is running a map. Under every start method.
//
// What is asserted is the contract, not timing: the dying task fails with
// mproc::WorkerLostError naming the signal or exit code, every other task
// of the call completes (checked by the files they leave and by their
// values), and afterwards the pool is usable with all its workers live
// (checked by a rendezvous task that only returns once `processes()`
// different workers run it at the same time). Hangs are turned into
// failures by guards (pool_support.hpp).

#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/pool.hpp"
#include "mproc/process.hpp"

// PoolOptions/ProcessOptions are filled with designated initializers that
// leave fields at their defaults; g++ 12's -Wextra warns about each one.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

using mproc::StartMethod;
using mproc_test::guarded;
using mproc_test::kGuard;
using mproc_test::pid_gone;
using mproc_test::TempDir;
using mproc_test::wait_until;
using namespace std::chrono_literals;

// How a task dies.
enum class Death { sigkill, sigsegv, abort, exit3 };

[[noreturn]] void die(Death how) {
  switch (how) {
    case Death::sigkill:
      mproc_test::prepare_to_die(SIGKILL);
      ::raise(SIGKILL);
      break;
    case Death::sigsegv:
      mproc_test::prepare_to_die(SIGSEGV);
      ::raise(SIGSEGV);
      break;
    case Death::abort:
      mproc_test::prepare_to_die(SIGABRT);
      std::abort();
    case Death::exit3:
      ::_exit(3);
  }
  ::_exit(99);  // not reached
}

// Item x of a call: dies if x == victim, else leaves dir/item-x and
// returns x*x.
int die_or_square(std::string dir, Death how, int victim, int x) {
  if (x == victim) die(how);
  mproc_test::write_file(dir + "/item-" + std::to_string(x), "done");
  return x * x;
}

int square(int x) { return x * x; }

// die_or_square with SIGKILL as a function object of one int (a cereal
// type: its directory cannot be a lambda capture).
struct DieOrSquare {
  std::string dir;
  int victim = -1;
  int operator()(int x) const { return die_or_square(dir, Death::sigkill, victim, x); }
  template <class Archive>
  void serialize(Archive& a) {
    a(dir, victim);
  }
};

// Leaves dir/started-<x> holding this worker's pid, then runs until killed
// (bounded all the same).
int hang(std::string dir, int x) {
  mproc_test::write_file(dir + "/started-" + std::to_string(x), std::to_string(::getpid()));
  for (int i = 0; i < 1200; ++i) ::usleep(50 * 1000);
  return -1;
}

int rendezvous(std::string dir, int n) { return mproc_test::rendezvous_in(dir, n); }

class PoolFaults : public ::testing::TestWithParam<StartMethod> {
 protected:
  void SetUp() override {
    if (mproc_test::fork_pool_unsafe_under_sanitizers(GetParam())) {
      GTEST_SKIP() << "fork-started pool workers under GCC 12's sanitizers (see pool_support.hpp)";
    }
  }
 protected:
  mproc::PoolOptions<> options() const {
    mproc::PoolOptions<> o;
    o.processes = 2;
    o.start_method = GetParam();
    return o;
  }

  // Asserts that `pool` has processes() live workers: as many tasks as
  // workers must run at the same time for any of them to return.
  void expect_all_workers_live(mproc::Pool& pool) {
    TempDir dir;
    const int n = static_cast<int>(pool.processes());
    std::vector<std::tuple<std::string, int>> args(static_cast<std::size_t>(n), {dir.path(), n});
    auto fut = guarded(pool, "rendezvous of all workers", [&] { return pool.starmap(rendezvous, args, 1); });
    const auto pids = fut.get();
    std::set<int> distinct;
    for (int p : pids) {
      EXPECT_GT(p, 0) << "a worker waited in vain for the others: fewer than " << n << " live workers";
      distinct.insert(p);
    }
    EXPECT_EQ(distinct.size(), static_cast<std::size_t>(n));
  }

  // The whole check for one way of dying.
  void check_death(Death how, const std::string& expected) {
    mproc::Pool pool(options());
    const int n = 8, victim = 3;

    // 1. map-style: the call throws WorkerLostError once every other item
    //    has completed (their files are there).
    {
      TempDir dir;
      std::vector<std::tuple<std::string, Death, int, int>> args;
      for (int x = 0; x < n; ++x) args.emplace_back(dir.path(), how, victim, x);
      auto fut = guarded(pool, "starmap with a dying task", [&] { return pool.starmap(die_or_square, args, 1); });
      try {
        (void)fut.get();
        ADD_FAILURE() << "starmap did not report the lost worker";
      } catch (const mproc::WorkerLostError& e) {
        EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      }
      for (int x = 0; x < n; ++x) {
        if (x == victim) continue;
        EXPECT_TRUE(mproc_test::read_file(dir.file("item-" + std::to_string(x))).has_value())
            << "item " << x << " did not complete before starmap threw";
      }
    }

    // 2. apply_async: exactly that task fails; every other one has its value.
    {
      TempDir dir;
      std::vector<mproc::AsyncResult<int>> rs;
      for (int x = 0; x < n; ++x) rs.push_back(pool.apply_async(die_or_square, dir.path(), how, victim, x));
      for (int x = 0; x < n; ++x) {
        if (x == victim) {
          try {
            (void)rs[x].get(kGuard);
            ADD_FAILURE() << "the dying task returned";
          } catch (const mproc::WorkerLostError& e) {
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
          } catch (const mproc::TimeoutError&) {
            ADD_FAILURE() << "the dying task never got an outcome";
          }
        } else {
          EXPECT_EQ(rs[x].get(kGuard), x * x) << "item " << x;
        }
      }
    }

    // 3. The pool goes on with all its workers.
    EXPECT_EQ(pool.map(square, std::views::iota(0, 20), 1), ([] {
                std::vector<int> v;
                for (int i = 0; i < 20; ++i) v.push_back(i * i);
                return v;
              }()));
    expect_all_workers_live(pool);
    pool.close();
    guarded(pool, "join after a worker died", [&] { pool.join(); }).get();
  }

  mproc_test::HangGuard hang_guard_;
};

TEST_P(PoolFaults, TaskKilledBySigkillFailsWithWorkerLostError) { check_death(Death::sigkill, "SIGKILL"); }
TEST_P(PoolFaults, TaskKilledBySigsegvFailsWithWorkerLostError) { check_death(Death::sigsegv, "SIGSEGV"); }
TEST_P(PoolFaults, TaskThatAbortsFailsWithWorkerLostError) { check_death(Death::abort, "SIGABRT"); }
TEST_P(PoolFaults, TaskThatExitsFailsWithWorkerLostError) { check_death(Death::exit3, "exit code 3"); }

TEST_P(PoolFaults, ImapReportsTheLostItemAtItsPositionAndTheRestComplete) {
  mproc::Pool pool(options());
  TempDir dir;
  std::vector<std::tuple<std::string, Death, int, int>> args;
  for (int x = 0; x < 10; ++x) args.emplace_back(dir.path(), Death::sigkill, 6, x);
  auto fut = guarded(pool, "imap with a dying task", [&] {
    std::vector<std::string> outcomes;
    auto range = pool.imap([](std::tuple<std::string, Death, int, int> a) { return std::apply(die_or_square, a); },
                           args);
    for (int i = 0; i < 10; ++i) {
      try {
        auto v = range.next();
        outcomes.push_back(v ? std::to_string(*v) : "end");
      } catch (const mproc::WorkerLostError&) {
        outcomes.push_back("lost");
      }
    }
    return outcomes;
  });
  EXPECT_EQ(fut.get(), (std::vector<std::string>{"0", "1", "4", "9", "16", "25", "lost", "49", "64", "81"}));
}

TEST_P(PoolFaults, OnlyTheRunningItemOfAChunkIsLost) {
  // Chunks of 4: the victim (item 5) is the second item of the second
  // chunk. The issue's contract is that the worker's death fails that
  // task only; the items of the chunk that had not started are re-queued.
  mproc::Pool pool(options());
  TempDir dir;
  std::vector<std::tuple<std::string, Death, int, int>> args;
  for (int x = 0; x < 12; ++x) args.emplace_back(dir.path(), Death::sigkill, 5, x);
  auto fut = guarded(pool, "imap with chunks and a dying task", [&] {
    std::vector<std::string> outcomes;
    auto range = pool.imap([](std::tuple<std::string, Death, int, int> a) { return std::apply(die_or_square, a); },
                           args, 4);
    for (int i = 0; i < 12; ++i) {
      try {
        auto v = range.next();
        outcomes.push_back(v ? std::to_string(*v) : "end");
      } catch (const mproc::WorkerLostError&) {
        outcomes.push_back("lost");
      }
    }
    return outcomes;
  });
  const auto outcomes = fut.get();
  EXPECT_EQ(outcomes[5], "lost");
  for (int x = 0; x < 12; ++x) {
    if (x == 5) continue;
    EXPECT_EQ(outcomes[x], std::to_string(x * x)) << "item " << x << " of the dead worker's chunk";
  }
}

TEST_P(PoolFaults, MapOfPlainValuesLosesOnlyTheRunningItemOfAChunk) {
  // ints in, ints out: the map's chunks hold the items as bare bytes
  // (pool_jobs.hpp), so re-queueing the unstarted rest of the dead
  // worker's chunk takes the fixed-size path of Chunk::slice. Chunks of 10:
  // item 7 dies; 8 and 9 were not started and must run again.
  mproc::Pool pool(options());
  TempDir dir;
  std::vector<int> xs(20);
  for (int x = 0; x < 20; ++x) xs[static_cast<std::size_t>(x)] = x;
  DieOrSquare task{dir.path(), 7};
  auto fut = guarded(pool, "map of ints with a dying task", [&] { return pool.map(task, xs, 10); });
  try {
    (void)fut.get();
    ADD_FAILURE() << "map did not report the lost worker";
  } catch (const mproc::WorkerLostError& e) {
    EXPECT_NE(std::string(e.what()).find("task #7"), std::string::npos) << e.what();
  }
  for (int x = 0; x < 20; ++x) {
    if (x == 7) continue;
    EXPECT_TRUE(mproc_test::read_file(dir.file("item-" + std::to_string(x))).has_value())
        << "item " << x << " did not run";
  }
  // The same map without the victim gives every value, in order.
  DieOrSquare ok{dir.path(), -1};
  std::vector<int> expected;
  for (int x = 0; x < 20; ++x) expected.push_back(x * x);
  EXPECT_EQ(guarded(pool, "map of ints", [&] { return pool.map(ok, xs, 10); }).get(), expected);
}

// Item x leaves one file per run (dir/run-<x>-<pid>-<n>) and returns x*x;
// item `victim` SIGKILLs its worker.
struct RecordRuns {
  std::string dir;
  int victim = -1;
  int operator()(int x) const {
    if (x == victim) die(Death::sigkill);
    static int runs = 0;
    mproc_test::write_file(dir + "/run-" + std::to_string(x) + "-" + std::to_string(::getpid()) + "-" +
                               std::to_string(runs++),
                           "ran");
    return x * x;
  }
  template <class Archive>
  void serialize(Archive& a) {
    a(dir, victim);
  }
};

TEST_P(PoolFaults, WithChunksizeOneNoFinishedTaskRunsTwiceWhenItsWorkerDies) {
  // chunksize=1: each result leaves before the next task starts (a worker
  // never defers it), so a worker's death re-runs only tasks it had not
  // started: every task but the victim runs exactly once.
  mproc::Pool pool(options());
  TempDir dir;
  constexpr int kN = 200, kVictim = 120;
  auto fut = guarded(pool, "imap_unordered, chunksize 1, a dying task", [&] {
    int lost = 0, values = 0;
    auto range = pool.imap_unordered(RecordRuns{dir.path(), kVictim}, std::views::iota(0, kN), 1);
    for (;;) {
      try {
        if (!range.next()) break;
        ++values;
      } catch (const mproc::WorkerLostError&) {
        ++lost;
      }
    }
    return std::make_pair(values, lost);
  });
  const auto [values, lost] = fut.get();
  EXPECT_EQ(values, kN - 1);
  EXPECT_EQ(lost, 1);
  std::map<int, int> runs;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("run-", 0) == 0) runs[std::stoi(name.substr(4))] += 1;
  }
  for (int x = 0; x < kN; ++x) {
    if (x == kVictim) continue;
    EXPECT_EQ(runs[x], 1) << "task " << x << " ran " << runs[x] << " times";
  }
}

std::size_t big_size_or_die(const std::string& payload) {
  if (payload[0] == 'f') ::raise(SIGKILL);  // the sixth payload
  return payload.size();
}

TEST_P(PoolFaults, WorkerKilledWithABigPayloadLosesOnlyThatTask) {
  // Payloads of 1-3 MiB cross through the workers' shared-memory rings; a
  // worker killed while holding one fails that task only, and its
  // replacement (whose rings start over) takes the rest.
  mproc::Pool pool(options());
  std::vector<std::string> payloads;
  for (int i = 0; i < 12; ++i) payloads.push_back(std::string((std::size_t{1} << 20) + static_cast<std::size_t>(i) * 100000, static_cast<char>('a' + i)));
  auto fut = guarded(pool, "imap over big payloads with a dying task", [&] {
    std::vector<long long> outcome;  // size, or -1 for a lost task
    auto range = pool.imap(big_size_or_die, payloads);
    for (;;) {
      try {
        const auto v = range.next();
        if (!v) break;
        outcome.push_back(static_cast<long long>(*v));
      } catch (const mproc::WorkerLostError& e) {
        EXPECT_NE(std::string(e.what()).find("SIGKILL"), std::string::npos) << e.what();
        outcome.push_back(-1);
      }
    }
    return outcome;
  });
  const std::vector<long long> outcome = fut.get();
  ASSERT_EQ(outcome.size(), payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(outcome[i], i == 5 ? -1 : static_cast<long long>(payloads[i].size())) << "task " << i;
  }
  // The pool, with the replacement worker, still moves big payloads.
  EXPECT_EQ(pool.map(big_size_or_die, std::vector<std::string>(3, std::string(2u << 20, 'z'))),
            (std::vector<std::size_t>(3, 2u << 20)));
}

TEST_P(PoolFaults, ManyTinyChunksLoseOnlyTheDyingItem) {
  // Tiny chunks of two: a worker holds many chunks at once and may defer
  // the results of finished ones while it runs the next (item_sink.hpp),
  // so when it dies the running item need not be in its oldest unanswered
  // chunk. Whatever the interleaving, exactly the dying item fails and
  // every other one gives its value.
  mproc::Pool pool(options());
  TempDir dir;
  constexpr int kN = 400, kVictim = 250;
  DieOrSquare task{dir.path(), kVictim};
  auto fut = guarded(pool, "imap_unordered of tiny chunks with a dying task", [&] {
    std::map<int, int> values;
    int lost = 0;
    auto range = pool.imap_unordered(task, std::views::iota(0, kN), 2);
    for (;;) {
      try {
        auto v = range.next();
        if (!v) break;
        values[*v] += 1;
      } catch (const mproc::WorkerLostError& e) {
        EXPECT_NE(std::string(e.what()).find("task #" + std::to_string(kVictim)), std::string::npos) << e.what();
        ++lost;
      }
    }
    return std::make_pair(values, lost);
  });
  const auto [values, lost] = fut.get();
  EXPECT_EQ(lost, 1);
  EXPECT_EQ(values.size(), static_cast<std::size_t>(kN - 1));
  for (int x = 0; x < kN; ++x) {
    if (x == kVictim) continue;
    auto it = values.find(x * x);
    EXPECT_TRUE(it != values.end() && it->second == 1) << "item " << x;
  }
  expect_all_workers_live(pool);
}

TEST_P(PoolFaults, TaskTimeoutFailsTheTaskAndTheOthersSucceed) {
  auto o = options();
  o.task_timeout = 500ms;
  mproc::Pool pool(o);
  TempDir dir;
  auto slow = pool.apply_async(hang, dir.path(), 0);
  std::vector<mproc::AsyncResult<int>> quick;
  for (int x = 0; x < 10; ++x) quick.push_back(pool.apply_async(square, x));
  try {
    (void)slow.get(kGuard);
    ADD_FAILURE() << "the hung task returned";
  } catch (const mproc::TimeoutError& e) {
    // Not the TimeoutError of get(kGuard): the task's own.
    EXPECT_NE(std::string(e.what()).find("task_timeout"), std::string::npos) << e.what();
  }
  for (int x = 0; x < 10; ++x) EXPECT_EQ(quick[x].get(kGuard), x * x);
  // The worker that ran it was killed.
  const auto pid_text = mproc_test::read_file(dir.file("started-0"));
  ASSERT_TRUE(pid_text.has_value());
  EXPECT_TRUE(wait_until([&] { return pid_gone(std::stoi(*pid_text)); })) << "the timed-out worker still runs";
  // And the pool goes on, with all its workers.
  EXPECT_EQ(pool.map(square, std::vector{1, 2, 3}), (std::vector{1, 4, 9}));
  expect_all_workers_live(pool);
  // A map in which one task times out throws the TimeoutError after the rest.
  TempDir dir2;
  auto fut = guarded(pool, "starmap with a task that times out", [&] {
    return pool.starmap([](std::string d, int x) { return x == 2 ? hang(d, x) : x; },
                        std::vector<std::tuple<std::string, int>>{{dir2.path(), 1}, {dir2.path(), 2}, {dir2.path(), 3}},
                        1);
  });
  EXPECT_THROW((void)fut.get(), mproc::TimeoutError);
  pool.close();
  guarded(pool, "join after a timeout", [&] { pool.join(); }).get();
}

TEST_P(PoolFaults, TerminateWithHungWorkersReturnsAndLeavesNoChildren) {
  mproc::Pool pool(options());
  TempDir dir;
  auto a = pool.apply_async(hang, dir.path(), 1);
  auto b = pool.apply_async(hang, dir.path(), 2);
  const auto pa = mproc_test::wait_for_file(dir.file("started-1"));
  const auto pb = mproc_test::wait_for_file(dir.file("started-2"));
  ASSERT_TRUE(pa && pb) << "the hung tasks never started";
  auto fut = std::async(std::launch::async, [&] {
    pool.terminate();
    pool.join();
  });
  if (fut.wait_for(10s) != std::future_status::ready) {
    std::fprintf(stderr, "terminate()+join() with hung workers did not return within 10 s\n");
    std::abort();
  }
  fut.get();
  EXPECT_TRUE(pid_gone(std::stoi(*pa)));
  EXPECT_TRUE(pid_gone(std::stoi(*pb)));
  EXPECT_TRUE(mproc_test::worker_pids().empty()) << "children left after terminate()+join()";
  EXPECT_THROW((void)a.get(kGuard), mproc::PoolClosedError);
  EXPECT_THROW((void)b.get(kGuard), mproc::PoolClosedError);
}

// ------------------------------------------------------------------ SIGINT ---

// The child process: runs a map of tasks that hang, with a pool of the
// given start method. Never returns normally.
void child_runs_a_long_map(std::string dir, StartMethod method) {
  // Ctrl-C's default action, whatever this process inherited: a shell that
  // runs the suite in the background without job control starts it with
  // SIGINT ignored, and the ignore would pass down to here.
  ::signal(SIGINT, SIG_DFL);
  mproc::PoolOptions<> o;
  o.processes = 2;
  o.start_method = method;
  mproc::Pool pool(o);
  std::vector<std::tuple<std::string, int>> args;
  for (int i = 0; i < 4; ++i) args.emplace_back(dir, i);
  (void)pool.starmap(hang, args, 1);
  mproc_test::write_file(dir + "/map-returned", "1");
}

TEST_P(PoolFaults, SigintDuringMapEndsTheProcessAndItsWorkers) {
  // The process that gets SIGINT (as from Ctrl-C) is a forked child of the
  // test, so that SIGINT does not hit the test itself; its pool uses the
  // start method under test. (Which method starts that child does not
  // matter here: any child can start pools of any method.)
  TempDir dir;
  mproc::ProcessOptions po;
  po.start_method = StartMethod::fork;
  mproc::Process child(po, child_runs_a_long_map, dir.path(), GetParam());
  child.start();
  // If an assertion below ends the test early, the child (whose map never
  // returns) must not be left for the Process destructor to join.
  struct KillOnExit {
    mproc::Process& p;
    ~KillOnExit() {
      if (p.is_alive()) {
        p.kill();
        (void)p.join(kGuard);
      }
    }
  } kill_on_exit{child};
  // Two tasks are running: both workers are up and busy. (A file is
  // created before its pid is written into it: wait for the content.)
  std::vector<pid_t> workers;
  const auto read_workers = [&] {
    workers.clear();
    for (int i = 0; i < 4; ++i) {
      if (auto text = mproc_test::read_file(dir.file("started-" + std::to_string(i))); text && !text->empty()) {
        workers.push_back(std::stoi(*text));
      }
    }
    return workers.size() >= 2;
  };
  ASSERT_TRUE(wait_until(read_workers)) << "the child's pool never started its tasks";
  ASSERT_EQ(workers.size(), 2u);
  ASSERT_EQ(::kill(child.pid(), SIGINT), 0);
  ASSERT_TRUE(child.join(kGuard)) << "the child survived SIGINT";
  EXPECT_EQ(child.exitcode(), -SIGINT);
  for (pid_t w : workers) {
    EXPECT_TRUE(wait_until([&] { return pid_gone(w); })) << "worker " << w << " outlived its pool's process";
  }
  EXPECT_FALSE(mproc_test::read_file(dir.file("map-returned")).has_value());
}

INSTANTIATE_TEST_SUITE_P(StartMethod, PoolFaults, mproc_test::all_start_methods(), mproc_test::start_method_name);

// Forks whose child hangs before it runs anything of mproc's, as a child of
// a fork-unsafe library would (a lock held by another thread at the fork).
std::atomic<int> g_hang_next_forks{0};

void install_hang_at_fork() {
  static const bool installed = [] {
    ::pthread_atfork(
        nullptr, [] { if (g_hang_next_forks.load() > 0) g_hang_next_forks.fetch_sub(1); },
        [] {
          if (g_hang_next_forks.load() == 0) return;
          // Bounded: the watchdog should have killed it long before.
          for (int i = 0; i < 600; ++i) ::usleep(50 * 1000);
          ::_exit(97);
        });
    return true;
  }();
  (void)installed;
}

TEST(PoolWatchdog, WorkerHungBeforeItsLoopIsKilledAndReplaced) {
  if (mproc_test::fork_pool_unsafe_under_sanitizers(StartMethod::fork)) {
    GTEST_SKIP() << "fork-started pool workers under GCC 12's sanitizers (see pool_support.hpp)";
  }
  mproc_test::HangGuard hang_guard;
  install_hang_at_fork();
  // The only worker of the pool hangs at birth; the watchdog (300 ms here,
  // 20 s by default) kills it and the pool starts another.
  const char* before = std::getenv("MPROC_WORKER_START_TIMEOUT_MS");
  const std::string saved = before ? before : "";
  ::setenv("MPROC_WORKER_START_TIMEOUT_MS", "300", 1);
  g_hang_next_forks.store(1);
  mproc::PoolOptions<> o;
  o.processes = 1;
  o.start_method = StartMethod::fork;
  mproc::Pool pool(o);
  if (before) {
    ::setenv("MPROC_WORKER_START_TIMEOUT_MS", saved.c_str(), 1);
  } else {
    ::unsetenv("MPROC_WORKER_START_TIMEOUT_MS");
  }
  auto fut = guarded(pool, "map behind a worker hung at birth", [&] { return pool.map(square, std::vector{1, 2, 3}); });
  EXPECT_EQ(fut.get(), (std::vector{1, 4, 9}));
  EXPECT_EQ(g_hang_next_forks.load(), 0) << "no worker was forked hung: the test proves nothing";
  pool.close();
  guarded(pool, "join", [&] { pool.join(); }).get();
}

}  // namespace
