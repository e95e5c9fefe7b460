// thread_pool.cpp: the threads behind mproc::ThreadPool (thread_pool.hpp).

#include "mproc/thread_pool.hpp"

#include <cstdio>

namespace mproc::detail {

ThreadExecutor::ThreadExecutor(std::size_t threads, std::function<void()> initializer,
                               std::function<void(std::exception_ptr)> on_callback_error)
    : n_(threads), initializer_(std::move(initializer)), callbacks_("mproc::ThreadPool", std::move(on_callback_error)) {
  check_pool_size(n_, "mproc::ThreadPool");
  for (std::size_t i = 0; i < n_; ++i) workers_.emplace_back([this] { worker(); });
}

ThreadExecutor::~ThreadExecutor() {
  terminate();
  try {
    join();
  } catch (...) {
  }
}

bool ThreadExecutor::accepting() {
  std::lock_guard lock(mu_);
  return state_ == State::run;
}

void ThreadExecutor::submit(Task task) {
  {
    std::lock_guard lock(mu_);
    if (state_ != State::run) throw PoolClosedError("mproc::ThreadPool: the pool is closed; no more tasks can be submitted");
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void ThreadExecutor::submit_internal(Task task) {
  {
    std::lock_guard lock(mu_);
    if (state_ == State::terminate) {
      // Dropped like every queued task at terminate().
      auto cancel = std::move(task.cancel);
      if (cancel) cancel(std::make_exception_ptr(PoolClosedError("mproc::ThreadPool: terminated")));
      return;
    }
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void ThreadExecutor::close() {
  {
    std::lock_guard lock(mu_);
    if (state_ == State::run) state_ = State::close;
  }
  cv_.notify_all();
}

void ThreadExecutor::terminate() {
  std::deque<Task> dropped;
  {
    std::lock_guard lock(mu_);
    state_ = State::terminate;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  const auto why = std::make_exception_ptr(PoolClosedError("mproc::ThreadPool: terminated before the task ran"));
  for (auto& t : dropped) {
    if (t.cancel) t.cancel(why);
  }
}

void ThreadExecutor::join() {
  {
    std::lock_guard lock(mu_);
    if (state_ == State::run) throw Error("mproc::ThreadPool::join: call close() or terminate() first");
  }
  std::lock_guard lock(join_mu_);
  if (joined_) return;
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  callbacks_.stop_and_join();
  joined_ = true;
}

void ThreadExecutor::post_callback(std::function<void()> fn) { callbacks_.post(std::move(fn)); }

void ThreadExecutor::worker() noexcept {
  if (initializer_) {
    try {
      initializer_();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mproc::ThreadPool: initializer failed: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "mproc::ThreadPool: initializer failed\n");
    }
  }
  std::unique_lock lock(mu_);
  for (;;) {
    // A closed pool still runs what was queued (and what running jobs add),
    // and stops when nothing is queued or running.
    cv_.wait(lock, [this] {
      return !queue_.empty() || state_ == State::terminate || (state_ == State::close && busy_ == 0);
    });
    if (queue_.empty()) {
      if (state_ == State::terminate || (state_ == State::close && busy_ == 0)) {
        cv_.notify_all();
        return;
      }
      continue;
    }
    Task t = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    try {
      t.run();
    } catch (...) {
      // Tasks catch their own exceptions; this is a last resort.
    }
    lock.lock();
    --busy_;
    cv_.notify_all();
  }
}

}  // namespace mproc::detail
