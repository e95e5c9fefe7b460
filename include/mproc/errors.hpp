// errors.hpp: every exception mproc throws, and how a task's exception
// travels back to the parent.
//
// All of mproc's own exceptions derive from mproc::Error, itself a
// std::runtime_error, so `catch (const mproc::Error&)` catches everything the
// library raises about itself. Exceptions raised *by user code in another
// process* are different: they are rebuilt in the parent as the same type
// where that type is known (the <stdexcept> family, std::bad_alloc, and types
// registered with register_exception<T>()), otherwise as std::runtime_error,
// and in both cases the rebuilt object also derives from mproc::RemoteError,
// which keeps the original type name, message and the worker's stack.
//
//   try { pool.apply(parse, "x"); }
//   catch (const std::invalid_argument& e) {
//     auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
//     std::cerr << remote->type_name() << ": " << e.what() << "\n"
//               << remote->traceback();
//   }
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>

namespace mproc {

// The base of every exception mproc raises about its own operation.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A wait ran out of time: AsyncResult::get(timeout), a task that exceeded
// PoolOptions::task_timeout, Queue::get(timeout) and friends.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

// The worker running a task died (signal, _exit, OOM kill) before answering.
// what() names the signal ("SIGKILL") or the exit code.
class WorkerLostError : public Error {
 public:
  using Error::Error;
};

// A task was submitted to a pool after close() or terminate().
class PoolClosedError : public Error {
 public:
  using Error::Error;
};

// Bytes from another process could not be decoded: malformed, truncated,
// hostile, or of another type than the receiver expects.
class SerializationError : public Error {
 public:
  using Error::Error;
};

// The peer of a Listener/Client handshake does not know the authkey.
class AuthenticationError : public Error {
 public:
  using Error::Error;
};

// A Barrier was aborted, reset while waited on, or a wait on it timed out.
class BrokenBarrierError : public Error {
 public:
  using Error::Error;
};

// The other end of a connection is closed and nothing is left to read.
class EOFError : public Error {
 public:
  using Error::Error;
};

// get_nowait()/get(timeout) on an empty queue.
class Empty : public Error {
 public:
  using Error::Error;
};

// put_nowait()/put(timeout) on a full bounded queue.
class Full : public Error {
 public:
  using Error::Error;
};

// The facts of an exception raised in another process. It is a mixin, not a
// std::exception: the object thrown in the parent derives from both this and
// the rebuilt exception type, so `catch (const std::out_of_range&)` and
// `dynamic_cast<const mproc::RemoteError*>(&e)` both work.
class RemoteError {
 public:
  RemoteError(std::string type_name, std::string message, std::string traceback)
      : type_name_(std::move(type_name)),
        message_(std::move(message)),
        traceback_(std::move(traceback)) {}
  virtual ~RemoteError() = default;

  // Demangled type of the original exception, e.g. "std::invalid_argument".
  const std::string& type_name() const noexcept { return type_name_; }
  // The original what().
  const std::string& message() const noexcept { return message_; }
  // The worker's stack at the throw, one frame a line, innermost first;
  // empty when it could not be captured.
  const std::string& traceback() const noexcept { return traceback_; }

 private:
  std::string type_name_;
  std::string message_;
  std::string traceback_;
};

// The concrete type thrown in the parent: the rebuilt exception E plus the
// remote facts. E must be constructible from a std::string message.
template <class E>
class RemoteException final : public E, public RemoteError {
 public:
  RemoteException(std::string type_name, const std::string& message, std::string traceback)
      : E(message), RemoteError(std::move(type_name), message, std::move(traceback)) {}
};

namespace detail {
// Registry of exception types that are rebuilt as themselves in the parent.
// `matches` tells whether an exception_ptr holds this type; `rethrow` throws
// a RemoteException<E>.
struct ExceptionKind {
  std::string type_name;
  std::function<bool(const std::exception_ptr&)> matches;
  // Throws RemoteException<E> reporting `type_name` (the original dynamic
  // type, which may be derived from E).
  std::function<void(const std::string& type_name, const std::string& message,
                     const std::string& traceback)>
      rethrow;
};
void register_exception_kind(ExceptionKind kind);
std::string demangle(const char* mangled);
}  // namespace detail

// Make exceptions of type T travel as T: a T thrown by a task is rethrown in
// the parent as a T (that also derives from RemoteError). T must be
// constructible from a std::string. Call it in every process that may throw
// or catch T, before the pool starts: with `spawn` and `forkserver` the child
// runs main() up to mproc::init(), so call it before init().
template <class T>
void register_exception() {
  static_assert(std::is_constructible_v<T, std::string>,
                "mproc::register_exception<T>: T must be constructible from a std::string "
                "message (the original what() is passed to it)");
  static_assert(std::is_base_of_v<std::exception, T>,
                "mproc::register_exception<T>: T must derive from std::exception");
  detail::register_exception_kind(detail::ExceptionKind{
      detail::demangle(typeid(T).name()),
      [](const std::exception_ptr& p) {
        try {
          std::rethrow_exception(p);
        } catch (const T&) {
          return true;
        } catch (...) {
          return false;
        }
      },
      [](const std::string& type_name, const std::string& message, const std::string& traceback) {
        throw RemoteException<T>(type_name, message, traceback);
      }});
}

}  // namespace mproc
