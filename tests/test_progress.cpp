// test_progress.cpp: the opt-in progress line of map-style calls
// (PoolOptions::progress, detail/progress.hpp), driven through a
// pseudo-terminal as a user's terminal would see it.

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/mproc.hpp"

namespace {

int plus_one(int x) { return x + 1; }

// Runs `body` in a forked child whose stderr is the slave side of a new
// pseudo-terminal (or a pipe if `tty` is false), and returns everything the
// child wrote to it.
template <class Body>
std::string stderr_of_child(bool tty, Body body) {
  int master = -1, slave = -1;
  if (tty) {
    EXPECT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  } else {
    int p[2];
    EXPECT_EQ(::pipe(p), 0);
    master = p[0];
    slave = p[1];
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(slave, STDERR_FILENO);
    ::close(master);
    ::close(slave);
    int code = 0;
    try {
      body();
    } catch (...) {
      code = 2;
    }
    ::_exit(code);
  }
  ::close(slave);
  std::string out;
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + mproc_test::kGuard;
  for (;;) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      const ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) break;  // EOF (pipe) or EIO (pty with no more writers)
      out.append(buf, static_cast<std::size_t>(n));
    }
    if (std::chrono::steady_clock::now() > deadline) break;
  }
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  return out;
}

// fork, except under GCC 12's sanitizers (see pool_support.hpp), where the
// workers are spawned.
mproc::StartMethod pool_start_method() {
  return mproc_test::fork_pool_unsafe_under_sanitizers(mproc::StartMethod::fork) ? mproc::StartMethod::spawn
                                                                                   : mproc::StartMethod::fork;
}

}  // namespace

TEST(Progress, RenderShowsCountPercentRateAndEta) {
  const std::string line = mproc::detail::Progress::render(50, 200, 2.0, "mproc");
  EXPECT_NE(line.find("[mproc] 50/200"), std::string::npos) << line;
  EXPECT_NE(line.find("25.0%"), std::string::npos) << line;
  EXPECT_NE(line.find("25.0 it/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0:06"), std::string::npos) << line;
}

TEST(Progress, RenderWithoutTotalShowsCountAndRate) {
  const std::string line = mproc::detail::Progress::render(30, std::nullopt, 3.0, "mproc");
  EXPECT_NE(line.find("[mproc] 30"), std::string::npos) << line;
  EXPECT_NE(line.find("10.0 it/s"), std::string::npos) << line;
  EXPECT_EQ(line.find("ETA"), std::string::npos) << line;
}

TEST(Progress, MapDrawsOnATerminal) {
  const std::string out = stderr_of_child(true, [] {
    mproc::PoolOptions<> o;
    o.processes = 2;
    o.progress = true;
    o.start_method = pool_start_method();
    mproc::Pool pool(o);
    auto r = pool.map(plus_one, std::views::iota(0, 500), 10);
    if (r.size() != 500 || r.back() != 500) throw std::runtime_error("wrong result");
    pool.close();
    pool.join();
  });
  EXPECT_NE(out.find("[mproc] 500/500 100.0%"), std::string::npos) << out;
  EXPECT_NE(out.find("ETA"), std::string::npos) << out;
}

TEST(Progress, ImapOfUnknownLengthDrawsCount) {
  const std::string out = stderr_of_child(true, [] {
    mproc::PoolOptions<> o;
    o.processes = 2;
    o.progress = true;
    o.start_method = pool_start_method();
    mproc::Pool pool(o);
    auto odd = std::views::iota(0, 100) | std::views::filter([](int x) { return x % 2 == 1; });
    int n = 0;
    for (int v : pool.imap_unordered(plus_one, odd)) n += v > 0;
    if (n != 50) throw std::runtime_error("wrong count");
    pool.close();
    pool.join();
  });
  EXPECT_NE(out.find("[mproc] 50 "), std::string::npos) << out;
}

TEST(Progress, SilentWhenStderrIsNotATerminal) {
  const std::string out = stderr_of_child(false, [] {
    mproc::PoolOptions<> o;
    o.processes = 2;
    o.progress = true;
    o.start_method = pool_start_method();
    mproc::Pool pool(o);
    auto r = pool.map(plus_one, std::views::iota(0, 100));
    if (r.size() != 100) throw std::runtime_error("wrong result");
    pool.close();
    pool.join();
  });
  EXPECT_EQ(out, "");
}

TEST(Progress, OffByDefault) {
  const std::string out = stderr_of_child(true, [] {
    mproc::PoolOptions<> o;
    o.processes = 2;
    o.start_method = pool_start_method();
    mproc::Pool pool(o);
    auto r = pool.map(plus_one, std::views::iota(0, 100));
    if (r.size() != 100) throw std::runtime_error("wrong result");
  });
  EXPECT_EQ(out.find("[mproc]"), std::string::npos) << out;
}
