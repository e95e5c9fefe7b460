// test_fork_safety.cpp: a fork from a parent whose other threads are in the
// middle of mproc's process-wide state (TRAPS.md: fork with threads). The
// child has only the forking thread; whatever another thread had half made
// or held locked must not hang it or leak into it.

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/process_support.hpp"
#include "helpers/test_support.hpp"
#include "mproc/detail/function_id.hpp"
#include "mproc/detail/launch.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/detail/buffer.hpp"
#include "mproc/mproc.hpp"

namespace {

using mproc::StartMethod;
using mproc_test::join_guarded;
using mproc_test::process_options;

// A function whose pointer is sent (encode_function identifies it).
void a_task_function() {}

void encode_a_function_pointer() {
  mproc::detail::Writer w;
  mproc::detail::encode_function(w, reinterpret_cast<mproc::detail::AnyFunction>(&a_task_function));
}

// Raw children, each meant to exit 0 at once: how many did not end within
// 10 s (killed then) and how many ended otherwise. Reaps every one.
struct Reaped {
  int hung = 0;
  int failed = 0;
};

Reaped reap_all(const std::vector<pid_t>& children) {
  Reaped r;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (const pid_t pid : children) {
    int status = 0;
    bool ended = true;
    while (ended && ::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > give_up) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        ended = false;
      } else {
        ::usleep(1000);
      }
    }
    if (!ended) {
      ++r.hung;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++r.failed;
    }
  }
  return r;
}

// In a fresh (spawned) process, where mproc's state has seen only what the
// program's loading did: a thread makes its first use of the function-id
// cache while the main thread forks back to back, and every child uses the
// cache too. glibc holds its fork-handler lock across each fork, and making
// the cache once registered a fork handler (taking that lock): the maker
// waited out a fork with the cache half made, and that fork's child hung
// for ever on the static's guard. Throws if a child hung or failed.
void first_use_of_mproc_state_during_forks() {
  std::atomic<bool> go{false}, done{false};
  std::thread user([&] {
    while (!go.load()) ::sched_yield();
    encode_a_function_pointer();
    done.store(true);
  });
  std::vector<pid_t> children;
  go.store(true);
  for (int after_done = 0; after_done < 3 && children.size() < 400;) {
    if (done.load()) ++after_done;
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      encode_a_function_pointer();
      ::syscall(SYS_exit_group, 0);  // no sanitizer exit checks: the parent's threads were not joined
    }
    if (pid < 0) break;
    children.push_back(pid);
  }
  user.join();
  const Reaped r = reap_all(children);
  if (r.hung != 0 || r.failed != 0) {
    throw std::runtime_error(std::to_string(r.hung) + " of " + std::to_string(children.size()) +
                             " children forked during the first use hung; " + std::to_string(r.failed) + " failed");
  }
}

TEST(ForkSafety, AChildForkedDuringAThreadsFirstUseOfMprocStateDoesNotHang) {
  if (mproc_test::fork_pool_unsafe_under_sanitizers(StartMethod::fork)) {
    // Raw forks while another thread allocates: GCC 12's sanitizer
    // allocators are not fork-safe (pool_support.hpp).
    GTEST_SKIP() << "forks from a thread that races an allocating thread, under GCC 12's sanitizers";
  }
  // Spawn: a fresh process, whose statics no earlier test has touched. (A
  // lambda: a function pointer as the target would itself be decoded
  // through the cache before the target runs.)
  mproc::Process p(process_options(StartMethod::spawn), [] { first_use_of_mproc_state_during_forks(); });
  p.start();
  EXPECT_EQ(join_guarded(p), 0);
}

// What a task's exception goes through in a worker: its facts, found in
// the table of exception kinds (under that table's lock).
void describe_an_exception() {
  try {
    throw std::out_of_range("index 7");
  } catch (...) {
    const mproc::detail::RemoteFacts f = mproc::detail::describe_current_exception();
    if (f.rebuild_as != "std::out_of_range") ::_exit(3);
  }
}

TEST(ForkSafety, AChildForkedWhileAnotherThreadTurnsRemoteErrorsIntoExceptionsDoesNotHang) {
  if (mproc_test::fork_pool_unsafe_under_sanitizers(StartMethod::fork)) {
    GTEST_SKIP() << "forks from a thread that races an allocating thread, under GCC 12's sanitizers";
  }
  // The parent's side of a failed task (get() rethrowing it) holds the same
  // lock as the worker's side; a pool forks replacement workers meanwhile.
  std::atomic<bool> stop{false};
  std::thread rethrower([&] {
    mproc::detail::RemoteFacts f;
    f.type_name = "std::invalid_argument";
    f.message = "bad";
    f.rebuild_as = "std::invalid_argument";
    while (!stop.load()) (void)mproc::detail::make_remote_exception(f);
  });
  std::vector<pid_t> children;
  for (int i = 0; i < 500; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      describe_an_exception();
      ::syscall(SYS_exit_group, 0);  // as above: no exit checks
    }
    ASSERT_GT(pid, 0);
    children.push_back(pid);
  }
  stop.store(true);
  rethrower.join();
  const Reaped r = reap_all(children);
  EXPECT_EQ(r.hung, 0) << "children forked while the parent held the exception-kinds lock hung on it";
  EXPECT_EQ(r.failed, 0);
}

// A walk of the loaded modules that stays inside its callback until told
// to go on: dl_iterate_phdr holds the loader's list lock all that time.
std::atomic<int> g_walk_state{0};  // 1: inside, 2: go on

int wait_inside_the_walk(dl_phdr_info*, std::size_t, void*) {
  g_walk_state.store(1);
  for (int i = 0; i < 20000 && g_walk_state.load() != 2; ++i) ::usleep(1000);
  return 1;
}

void a_function_sent_only_by_the_child() {}

// Whether `f` survives a trip through the wire format in this process.
bool sends_and_receives(mproc::detail::AnyFunction f) {
  mproc::detail::Writer w;
  mproc::detail::encode_function(w, f);
  mproc::detail::Reader r(w.bytes());
  return mproc::detail::decode_function(r) == f;
}

TEST(ForkSafety, AChildForkedWhileAnotherThreadWalksTheLoadedModulesDoesNotHang) {
  // What a worker does with modules: symbolize the stack of its task's
  // exception, identify a function it sends, find a function it receives
  // (of a module known at start, and of one loaded later).
  // glibc's fork does not reset the lock dl_iterate_phdr holds; none of
  // these may walk with it.
  void* library = ::dlopen(MPROC_TEST_LATE_MODULE, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(library, nullptr) << ::dlerror();
  const auto late = reinterpret_cast<mproc::detail::AnyFunction>(::dlsym(library, "mproc_test_late_function"));
  ASSERT_NE(late, nullptr);
  g_walk_state.store(0);
  std::thread walker([] { dl_iterate_phdr(wait_inside_the_walk, nullptr); });
  while (g_walk_state.load() != 1) ::sched_yield();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    {
      mproc::detail::TracebackScope scope;
      try {
        throw std::out_of_range("index 7");
      } catch (...) {
        if (mproc::detail::describe_current_exception().traceback.empty()) ::_exit(3);
      }
    }
    if (!sends_and_receives(reinterpret_cast<mproc::detail::AnyFunction>(&a_function_sent_only_by_the_child))) {
      ::_exit(4);
    }
    // A function of a library loaded after start: the cache learns its
    // module only now.
    if (late != nullptr && !sends_and_receives(late)) ::_exit(5);
    ::syscall(SYS_exit_group, 0);
  }
  const Reaped r = pid > 0 ? reap_all({pid}) : Reaped{};
  g_walk_state.store(2);
  walker.join();
  ::dlclose(library);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(r.hung, 0) << "the child waited for the loader's lock held by a parent thread at the fork";
  EXPECT_EQ(r.failed, 0);
}

void exit_with(int code) { ::_exit(code); }

// A fork child that starts forkserver children of its own, while its
// parent does the same: it must get its own server, not share the socket
// of its parent's (whose requests and replies would cross).
void start_children_through_a_forkserver(int parents_server) {
  if (mproc::detail::forkserver_pid() != 0) {
    throw std::runtime_error("a fork child sees its parent's forkserver as its own");
  }
  for (int i = 0; i < 5; ++i) {
    mproc::Process p(process_options(StartMethod::forkserver), exit_with, 10 + i);
    p.start();
    if (join_guarded(p) != 10 + i) throw std::runtime_error("a forkserver child ended with the wrong code");
  }
  const int mine = mproc::detail::forkserver_pid();
  if (mine == 0 || mine == parents_server) throw std::runtime_error("the fork child has no server of its own");
}

TEST(ForkSafety, AForkChildStartsItsOwnForkserver) {
  mproc::Process first(process_options(StartMethod::forkserver), exit_with, 3);
  first.start();
  ASSERT_EQ(join_guarded(first), 3);
  const int server = mproc::detail::forkserver_pid();
  ASSERT_NE(server, 0);

  mproc::Process child(process_options(StartMethod::fork), start_children_through_a_forkserver, server);
  child.start();
  for (int i = 0; i < 5; ++i) {
    mproc::Process p(process_options(StartMethod::forkserver), exit_with, 20 + i);
    p.start();
    EXPECT_EQ(join_guarded(p), 20 + i);
  }
  EXPECT_EQ(join_guarded(child), 0);
  EXPECT_EQ(mproc::detail::forkserver_pid(), server) << "the parent's forkserver changed";
}

}  // namespace
