// callback_thread.cpp: a pool's callback thread (detail/callback_thread.hpp).

#include "mproc/detail/callback_thread.hpp"

#include <cstdio>

namespace mproc::detail {

CallbackThread::CallbackThread(std::string owner, std::function<void(std::exception_ptr)> on_error)
    : owner_(std::move(owner)), on_error_(std::move(on_error)) {}

CallbackThread::~CallbackThread() { stop_and_join(); }

void CallbackThread::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(fn));
    // Started on first use: most pools never run a callback, and a thread
    // costs as much as a quarter of a pool's start.
    if (!started_) {
      started_ = true;
      thread_ = std::thread([this] { run(); });
    }
  }
  cv_.notify_one();
}

void CallbackThread::stop_and_join() {
  std::thread t;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

void CallbackThread::run() noexcept {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopped and drained
    auto fn = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    try {
      fn();
    } catch (...) {
      if (on_error_) {
        try {
          on_error_(std::current_exception());
        } catch (...) {
        }
      } else {
        try {
          throw;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "%s: exception in a callback: %s\n", owner_.c_str(), e.what());
        } catch (...) {
          std::fprintf(stderr, "%s: non-standard exception in a callback\n", owner_.c_str());
        }
      }
    }
    lock.lock();
  }
}

}  // namespace mproc::detail
