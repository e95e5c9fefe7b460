// thread_pool.cpp: the threads behind mproc::ThreadPool (thread_pool.hpp).

#include "mproc/thread_pool.hpp"

#include <vector>

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
  // An imap range may outlive the pool: it takes no more input and never
  // calls back into this executor.
  std::vector<std::shared_ptr<ImapSource>> open;
  {
    std::lock_guard lock(mu_);
    open.swap(sources_);
  }
  for (auto& source : open) source->detach();
}

bool ThreadExecutor::accepting() {
  std::lock_guard lock(mu_);
  return state_ == State::run;
}

void ThreadExecutor::submit(Task task) {
  {
    std::lock_guard lock(mu_);
    if (state_ != State::run) throw PoolClosedError("mproc::ThreadPool: the pool is closed; no more tasks can be submitted");
    if (init_error_) std::rethrow_exception(init_error_);
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

void ThreadExecutor::add_source(std::shared_ptr<ImapSource> source) {
  std::lock_guard lock(mu_);
  sources_.push_back(std::move(source));
}

void ThreadExecutor::source_done(const ImapSource* source) {
  {
    std::lock_guard lock(mu_);
    std::erase_if(sources_, [source](const std::shared_ptr<ImapSource>& s) { return s.get() == source; });
  }
  cv_.notify_all();
}

void ThreadExecutor::join() {
  std::vector<std::shared_ptr<ImapSource>> open;
  {
    std::lock_guard lock(mu_);
    if (state_ == State::run) throw Error("mproc::ThreadPool::join: call close() or terminate() first");
    if (state_ == State::close) open = sources_;
  }
  // Every task of a closed pool runs before join() returns, an imap's
  // included (as in Python, whose pool has taken its whole input by then):
  // the rest of its input is taken now, past its window.
  for (auto& source : open) source->drain();
  open.clear();
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
    } catch (...) {
      // The pool is broken, as a process Pool whose initializer throws:
      // every task fails with this exception (below, and in submit()).
      std::lock_guard lock(mu_);
      if (!init_error_) init_error_ = std::current_exception();
    }
  }
  std::unique_lock lock(mu_);
  for (;;) {
    // A closed pool still runs what was queued, what running jobs add and
    // what an open imap's reader lets in; it stops when none is left.
    const auto finished = [this] { return state_ == State::close && busy_ == 0 && sources_.empty(); };
    cv_.wait(lock, [&] { return !queue_.empty() || state_ == State::terminate || finished(); });
    if (queue_.empty()) {
      if (state_ == State::terminate || finished()) {
        cv_.notify_all();
        return;
      }
      continue;
    }
    Task t = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    const std::exception_ptr broken = init_error_;
    lock.unlock();
    try {
      if (broken) {
        if (t.cancel) t.cancel(broken);
      } else {
        t.run();
      }
    } catch (...) {
      // Tasks catch their own exceptions; this is a last resort.
    }
    lock.lock();
    --busy_;
    cv_.notify_all();
  }
}

}  // namespace mproc::detail
