// launcher_thread.cpp: where children are created when the caller is not
// the main thread.
//
// PR_SET_PDEATHSIG, which kills our children when we die, fires when the
// *thread* that created the child exits, not the process (TRAPS.md). A
// Process started from a short-lived worker thread would be killed when
// that thread ends. So such calls hand the fork/spawn to one long-lived
// launcher thread, created on first need and never stopped; the main thread
// (which lives as long as the process) launches directly.

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "mproc/detail/launch.hpp"

namespace mproc::detail {
namespace {

struct Request {
  const std::function<void()>* fn;
  std::exception_ptr error;
  bool done = false;
  Request* next = nullptr;  // the queue's link
};

struct Launcher {
  std::mutex mu;
  std::condition_variable cv;
  // Requests in order, linked through Request::next: nothing to free, so
  // a forked child drops the parent's by forgetting the ends.
  Request* head = nullptr;
  Request* tail = nullptr;
  bool started = false;

  void push(Request* r) noexcept {
    (tail != nullptr ? tail->next : head) = r;
    tail = r;
  }
  Request* pop() noexcept {
    Request* r = head;
    head = r->next;
    if (head == nullptr) tail = nullptr;
    return r;
  }
};

Launcher& launcher() {
  static Launcher* l = [] {
    auto* created = new Launcher;
    // The launcher thread does not exist in a forked child: start afresh.
    pthread_atfork(nullptr, nullptr, [] {
      Launcher& me = launcher();
      new (&me.mu) std::mutex;
      new (&me.cv) std::condition_variable;
      me.head = me.tail = nullptr;
      me.started = false;
    });
    return created;
  }();
  return *l;
}

// Made before main, while the program has one thread. A function-local
// static is guarded: were a thread still making it when another forks, the
// child would wait for ever on the guard of a maker that does not exist there.
[[maybe_unused]] const Launcher& g_launcher_at_load = launcher();

void serve(Launcher* l) {
  // Process-directed signals must go to the program's own threads.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, nullptr);
  std::unique_lock lock(l->mu);
  for (;;) {
    l->cv.wait(lock, [l] { return l->head != nullptr; });
    Request* r = l->pop();
    lock.unlock();
    try {
      (*r->fn)();
    } catch (...) {
      r->error = std::current_exception();
    }
    lock.lock();
    r->done = true;
    l->cv.notify_all();
  }
}

thread_local bool t_outlives_children = false;

}  // namespace

void launch_from_this_thread() noexcept { t_outlives_children = true; }

void on_launcher_thread(const std::function<void()>& fn) {
  if (t_outlives_children || static_cast<pid_t>(::syscall(SYS_gettid)) == ::getpid()) {
    fn();
    return;
  }
  Launcher& l = launcher();
  Request r{&fn, nullptr, false};
  std::unique_lock lock(l.mu);
  if (!l.started) {
    std::thread(serve, &l).detach();
    l.started = true;
  }
  l.push(&r);
  l.cv.notify_all();
  l.cv.wait(lock, [&r] { return r.done; });
  if (r.error) std::rethrow_exception(r.error);
}

}  // namespace mproc::detail
