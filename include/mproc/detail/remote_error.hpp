// detail/remote_error.hpp: an exception as facts that can travel, and back.
//
// In the worker, describe_current_exception() (inside a catch) records the
// exception's dynamic type, message, the stack captured at the throw, and
// which registered type the parent should rebuild it as. In the parent,
// make_remote_exception() turns those facts into an exception_ptr holding a
// RemoteException<E> (or a RemoteBadAlloc), see errors.hpp.
#pragma once

#include <exception>
#include <string>

#include "mproc/detail/buffer.hpp"

namespace mproc::detail {

struct RemoteFacts {
  std::string type_name;   // demangled dynamic type, e.g. "std::invalid_argument"
  std::string message;     // what()
  std::string traceback;   // one frame a line, innermost first; may be empty
  std::string rebuild_as;  // registered type to rebuild as; "" = std::runtime_error
};

// Call inside a catch block.
RemoteFacts describe_current_exception() noexcept;
std::exception_ptr make_remote_exception(const RemoteFacts& facts);

void encode_facts(Writer& w, const RemoteFacts& f);
RemoteFacts decode_facts(Reader& r);

// While a guard is alive on a thread, every throw on that thread records the
// stack at the throw (for RemoteError::traceback). Off elsewhere: ordinary
// throws cost nothing extra.
class TracebackScope {
 public:
  TracebackScope() noexcept;
  ~TracebackScope();
  TracebackScope(const TracebackScope&) = delete;
  TracebackScope& operator=(const TracebackScope&) = delete;

 private:
  bool previous_;
};

}  // namespace mproc::detail
