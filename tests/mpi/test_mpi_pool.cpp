// test_mpi_pool.cpp: mproc::mpi::Pool under mpirun (API.md section 9), run
// by ctest as `mpirun -n 4 mproc_mpi_tests`: rank 0 runs these tests, ranks
// 1-3 serve as workers (mproc::mpi::init never returns on them).
//
// The same contract as the local pool's tests, across ranks: results,
// errors as their own types, callbacks, lazy imap, one crashed or hung
// task failing alone (with its rank and host in the error), handles
// refused, pools one after another. Nothing depends on timing: hangs are
// bounded by get(timeout) and the ctest timeout.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/errors.hpp"
#include "mproc/mpi.hpp"
#include "mproc/queue.hpp"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

using namespace std::chrono_literals;
constexpr auto kGuard = 30s;

int square(int x) { return x * x; }
int power(int base, int exp) {
  int r = 1;
  for (int i = 0; i < exp; ++i) r *= base;
  return r;
}
// Where a task ran: its rank (in the local worker process of that rank).
int where(int) { return mproc::mpi::rank(); }
std::string host(int) { return mproc::mpi::processor_name(); }

int throw_invalid(int x) {
  if (x == 3) throw std::invalid_argument("three is not allowed");
  return x;
}

// Item `victim` kills its own process (the rank's local worker) with
// SIGKILL; the others square. Blocks until every worker has a task, so that
// the victim's death surely hits a busy pool.
int kill_self_at(int victim, int x) {
  if (x == victim) ::raise(SIGKILL);
  return x * x;
}

int hang_at(int victim, int x) {
  if (x == victim) {
    for (;;) ::pause();
  }
  return x * x;
}

int count_ranks() { return mproc::mpi::size(); }

TEST(MpiPool, MapSquaresAcrossTheRanks) {
  mproc::mpi::Pool pool;
  EXPECT_EQ(pool.processes(), static_cast<std::size_t>(mproc::mpi::size() - 1));
  const auto out = pool.map(square, std::views::iota(0, 100));
  ASSERT_EQ(out.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], i * i);
}

TEST(MpiPool, EveryWorkerRankRunsTasks) {
  // One item per worker with chunksize 1: the pool hands each idle worker
  // one chunk before it waits for anything, so each rank > 0 gets one.
  mproc::mpi::Pool pool;
  const int n = static_cast<int>(pool.processes());
  const auto ranks = pool.map(where, std::views::iota(0, n), 1);
  const std::set<int> seen(ranks.begin(), ranks.end());
  std::set<int> expected;
  for (int r = 1; r <= n; ++r) expected.insert(r);
  EXPECT_EQ(seen, expected);
  const auto hosts = pool.map(host, std::views::iota(0, n), 1);
  for (const auto& h : hosts) EXPECT_FALSE(h.empty());
}

TEST(MpiPool, StarmapApplyAndLambdasWithCaptures) {
  mproc::mpi::Pool pool;
  const auto p = pool.starmap(power, std::vector<std::tuple<int, int>>{{2, 2}, {3, 3}, {4, 4}});
  EXPECT_EQ(p, (std::vector<int>{4, 27, 256}));
  EXPECT_EQ(pool.apply(square, 7), 49);
  const int offset = 1000;
  const char tag = 'x';
  const auto got = pool.map([offset, tag](int v) { return tag + std::to_string(v + offset); }, std::vector{1, 2});
  EXPECT_EQ(got, (std::vector<std::string>{"x1001", "x1002"}));
}

TEST(MpiPool, ApplyAsyncRunsItsCallbackInRankZero) {
  mproc::mpi::Pool pool;
  std::atomic<int> seen{0};
  std::atomic<int> on_rank{-1};
  auto r = pool.apply_async(square, mproc::args(9), mproc::on_result([&](int v) {
                              on_rank = mproc::mpi::rank();
                              seen = v;
                            }));
  ASSERT_TRUE(r.wait(kGuard));
  EXPECT_EQ(r.get(), 81);
  pool.close();
  pool.join();  // callbacks have run once join returns
  EXPECT_EQ(seen.load(), 81);
  EXPECT_EQ(on_rank.load(), 0);
}

TEST(MpiPool, MapAsyncAndImapUnordered) {
  mproc::mpi::Pool pool;
  auto r = pool.map_async(square, std::vector{1, 2, 3});
  EXPECT_EQ(r.get(kGuard), (std::vector<int>{1, 4, 9}));
  std::multiset<int> got;
  for (int v : pool.imap_unordered(square, std::views::iota(0, 20))) got.insert(v);
  std::multiset<int> want;
  for (int i = 0; i < 20; ++i) want.insert(i * i);
  EXPECT_EQ(got, want);
}

TEST(MpiPool, ImapOverAnEndlessInputIsLazy) {
  mproc::mpi::Pool pool;
  std::vector<int> first;
  for (int v : pool.imap(square, std::views::iota(0))) {
    first.push_back(v);
    if (first.size() == 50) break;
  }
  ASSERT_EQ(first.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(first[static_cast<std::size_t>(i)], i * i);
  EXPECT_EQ(pool.apply(square, 3), 9);  // still usable after leaving an imap early
}

TEST(MpiPool, ATaskExceptionArrivesAsItsOwnType) {
  mproc::mpi::Pool pool;
  auto r = pool.apply_async(throw_invalid, 3);
  try {
    (void)r.get(kGuard);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "three is not allowed");
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), "std::invalid_argument");
  }
  EXPECT_THROW((void)pool.map(throw_invalid, std::vector{1, 2, 3, 4}), std::invalid_argument);
  EXPECT_EQ(pool.apply(square, 5), 25);
}

TEST(MpiPool, ACrashedTaskFailsAloneAndNamesItsRankAndHost) {
  mproc::mpi::Pool pool;
  std::vector<mproc::AsyncResult<int>> rs;
  for (int x = 0; x < 12; ++x) rs.push_back(pool.apply_async(kill_self_at, 5, x));
  for (int x = 0; x < 12; ++x) {
    if (x == 5) {
      try {
        (void)rs[5].get(kGuard);
        ADD_FAILURE() << "the killed task returned";
      } catch (const mproc::WorkerLostError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("SIGKILL"), std::string::npos) << what;
        EXPECT_NE(what.find("on rank "), std::string::npos) << what;
        EXPECT_NE(what.find("(host "), std::string::npos) << what;
      }
    } else {
      EXPECT_EQ(rs[static_cast<std::size_t>(x)].get(kGuard), x * x);
    }
  }
  // The rank restarted its worker: every rank still serves.
  const int n = static_cast<int>(pool.processes());
  const auto ranks = pool.map(where, std::views::iota(0, n), 1);
  EXPECT_EQ(std::set<int>(ranks.begin(), ranks.end()).size(), static_cast<std::size_t>(n));
}

TEST(MpiPool, ATaskPastTaskTimeoutFailsAndTheOthersComplete) {
  mproc::PoolOptions<> o;
  o.task_timeout = 1s;
  mproc::mpi::Pool pool(o);
  const auto out = [&] {
    std::vector<mproc::AsyncResult<int>> rs;
    for (int x = 0; x < 8; ++x) rs.push_back(pool.apply_async(hang_at, 2, x));
    return rs;
  }();
  for (int x = 0; x < 8; ++x) {
    if (x == 2) {
      EXPECT_THROW((void)out[2].get(kGuard), mproc::TimeoutError);
    } else {
      EXPECT_EQ(out[static_cast<std::size_t>(x)].get(kGuard), x * x);
    }
  }
  EXPECT_EQ(pool.apply(square, 4), 16);
}

TEST(MpiPool, TerminateWithAHungTaskReturns) {
  mproc::mpi::Pool pool;
  auto r = pool.apply_async(hang_at, 0, 0);
  EXPECT_FALSE(r.wait(200ms));
  pool.terminate();
  pool.join();
  EXPECT_THROW((void)r.get(kGuard), mproc::PoolClosedError);
}

TEST(MpiPool, AHandleInTheArgumentsIsRefused) {
  mproc::mpi::Pool pool;
  mproc::Queue<int> q;
  auto r = pool.apply_async([](mproc::Queue<int> qq) { return static_cast<int>(qq.qsize()); }, q);
  EXPECT_THROW((void)r.get(kGuard), mproc::SerializationError);
  EXPECT_EQ(pool.apply(square, 2), 4);
}

TEST(MpiPool, OnlyOnePoolAtATimeAndPoolsFollowEachOther) {
  {
    mproc::mpi::Pool a;
    EXPECT_THROW(mproc::mpi::Pool b, mproc::Error);
    EXPECT_EQ(a.apply(square, 3), 9);
  }
  mproc::mpi::Pool c(1);
  EXPECT_EQ(c.processes(), 1u);
  EXPECT_EQ(c.apply(where, 0), 1);
}

TEST(MpiPool, BadWorkerCountsAreErrors) {
  EXPECT_THROW(mproc::mpi::Pool(0), mproc::Error);
  EXPECT_THROW(mproc::mpi::Pool(static_cast<std::size_t>(count_ranks())), mproc::Error);
}

TEST(MpiPool, CloseLetsQueuedTasksFinish) {
  mproc::mpi::Pool pool;
  auto r = pool.map_async(square, std::views::iota(0, 30));
  pool.close();
  EXPECT_THROW((void)pool.apply_async(square, 1), mproc::PoolClosedError);
  pool.join();
  EXPECT_EQ(r.get(kGuard).size(), 30u);
}

std::vector<std::uint8_t> add_one(std::vector<std::uint8_t> v) {
  for (auto& b : v) b = static_cast<std::uint8_t>(b + 1);
  return v;
}

// Big messages both ways at once (rendezvous sized, many in flight): a
// rank and rank 0 sending each other one must not wait for each other.
TEST(MpiPool, BigPayloadsTravelBothWaysAtOnce) {
  mproc::mpi::Pool pool;
  std::vector<std::vector<std::uint8_t>> in;
  for (int i = 0; i < 12; ++i) in.emplace_back(std::size_t{4} << 20, static_cast<std::uint8_t>(i));
  const auto out = pool.map(add_one, in, 1);
  ASSERT_EQ(out.size(), in.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i].size(), in[i].size());
    EXPECT_EQ(out[i].front(), static_cast<std::uint8_t>(i + 1));
    EXPECT_EQ(out[i].back(), static_cast<std::uint8_t>(i + 1));
  }
}

// A function written once against mproc::Pool& takes either pool.
int sum_of_squares(mproc::Pool& pool, int n) {
  int s = 0;
  for (int v : pool.map(square, std::views::iota(0, n))) s += v;
  return s;
}

TEST(MpiPool, CodeWrittenForPoolTakesAnMpiPool) {
  mproc::mpi::Pool remote;
  const int a = sum_of_squares(remote, 10);
  mproc::Pool local(2);
  const int b = sum_of_squares(local, 10);
  EXPECT_EQ(a, 285);
  EXPECT_EQ(a, b);
}

// Stops the rank this task runs on (the parent of its local worker) after
// writing the rank's pid to `path`, as a hung or unreachable host would
// look to rank 0; returns, but its result can never be relayed.
int stop_my_rank(std::string path, int x) {
  const pid_t rank_pid = ::getppid();
  if (FILE* f = std::fopen(path.c_str(), "w")) {
    std::fprintf(f, "%d\n", static_cast<int>(rank_pid));
    std::fclose(f);
  }
  ::kill(rank_pid, SIGSTOP);
  return x;
}

int slow_square(int x) {
  std::this_thread::sleep_for(50ms);
  return x * x;
}

// Last in this file: the rank it stops is lost for the rest of the run.
TEST(MpiPoolZLast, ARankThatGoesSilentIsLostItsTaskFailsAndThePoolGoesOn) {
  mproc::mpi::set_rank_silence_limit(3s);
  char path[] = "/tmp/mproc-mpi-stop-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  pid_t stopped = 0;
  {
    mproc::mpi::Pool pool;
    const std::size_t before = pool.processes();
    ASSERT_GE(before, 2u);
    auto victim = pool.apply_async(stop_my_rank, std::string(path), 7);
    std::vector<mproc::AsyncResult<int>> others;
    for (int x = 0; x < 12; ++x) others.push_back(pool.apply_async(slow_square, x));
    try {
      (void)victim.get(kGuard);
      ADD_FAILURE() << "the task on the stopped rank returned";
    } catch (const mproc::WorkerLostError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("silence: rank "), std::string::npos) << what;
      EXPECT_NE(what.find("(host "), std::string::npos) << what;
    }
    for (int x = 0; x < 12; ++x) EXPECT_EQ(others[static_cast<std::size_t>(x)].get(kGuard), x * x);
    EXPECT_EQ(pool.apply(square, 6), 36);
    if (FILE* f = std::fopen(path, "r")) {
      int pid = 0;
      if (std::fscanf(f, "%d", &pid) == 1) stopped = pid;
      std::fclose(f);
    }
  }
  ::unlink(path);
  ASSERT_GT(stopped, 0) << "the task never said which rank it stopped";
  // A new pool leaves the lost rank out.
  {
    mproc::mpi::Pool pool;
    EXPECT_EQ(pool.processes(), static_cast<std::size_t>(mproc::mpi::size() - 2));
    EXPECT_EQ(pool.apply(square, 8), 64);
  }
  // Let it go on, so that it can take part in MPI_Finalize at the end.
  ::kill(stopped, SIGCONT);
}

// Kills the rank this task runs on (the parent of its local worker).
int kill_my_rank(int x) {
  ::kill(::getppid(), SIGKILL);
  return x;
}

// Run by hand under `mpirun --enable-recovery` with MPROC_MPI_RECOVERY=1
// (tests/mpi/CMakeLists.txt says why not by ctest): by default Open MPI
// ends the whole job when a rank dies, so rank 0 cannot hang; with recovery
// enabled the job goes on, and the silence limit is what turns the dead
// rank into a failed task.
TEST(MpiRecovery, ARankKilledUnderEnableRecoveryIsLostAndThePoolGoesOn) {
  if (std::getenv("MPROC_MPI_RECOVERY") == nullptr) GTEST_SKIP() << "run by hand under mpirun --enable-recovery (tests/mpi/CMakeLists.txt)";
  mproc::mpi::set_rank_silence_limit(2s);
  mproc::mpi::Pool pool;
  auto victim = pool.apply_async(kill_my_rank, 1);
  std::vector<mproc::AsyncResult<int>> others;
  for (int x = 0; x < 12; ++x) others.push_back(pool.apply_async(slow_square, x));
  try {
    (void)victim.get(kGuard);
    ADD_FAILURE() << "the task on the killed rank returned";
  } catch (const mproc::WorkerLostError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("silence: rank "), std::string::npos) << what;
  }
  for (int x = 0; x < 12; ++x) EXPECT_EQ(others[static_cast<std::size_t>(x)].get(kGuard), x * x);
  EXPECT_EQ(pool.apply(square, 5), 25);
}

// No child process of rank 0 is left (each test's pools are gone).
bool no_children() {
  return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::mpi::init(argc, argv);  // ranks > 0 serve here and never return
  ::testing::InitGoogleTest(&argc, argv);
  if (mproc::mpi::size() < 3) {
    std::fprintf(stderr, "mproc_mpi_tests: run under mpirun with at least 3 ranks (got %d)\n", mproc::mpi::size());
    return 1;
  }
  int rc = RUN_ALL_TESTS();
  if (!no_children()) {
    std::fprintf(stderr, "mproc_mpi_tests: child processes of rank 0 left behind\n");
    rc = 1;
  }
  return rc;
}
