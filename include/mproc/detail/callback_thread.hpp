// detail/callback_thread.hpp: the one thread on which a pool runs its
// on_result / on_error callbacks, one at a time, in the order posted.
//
// An exception escaping a callback must not kill this thread (later
// callbacks and results depend on it): it goes to the `on_error` handler
// given at construction, or is printed to stderr naming the owner. The
// thread starts with the first callback.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace mproc::detail {

class CallbackThread {
 public:
  CallbackThread(std::string owner, std::function<void(std::exception_ptr)> on_error);
  ~CallbackThread();  // stop_and_join()
  CallbackThread(const CallbackThread&) = delete;
  CallbackThread& operator=(const CallbackThread&) = delete;

  // Queues `fn`. Any thread.
  void post(std::function<void()> fn);
  // Runs what is queued, then ends the thread. Idempotent; never call it
  // from a callback.
  void stop_and_join();

 private:
  void run() noexcept;

  std::string owner_;
  std::function<void(std::exception_ptr)> on_error_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  bool started_ = false;
  std::thread thread_;  // started by the first post()
};

}  // namespace mproc::detail
