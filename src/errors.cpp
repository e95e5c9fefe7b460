// errors.cpp: rebuilding a task's exception in the parent (errors.hpp,
// detail/remote_error.hpp), and the registry of exception types that are
// rebuilt as themselves.

#include <cxxabi.h>
#include <pthread.h>

#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <new>
#include <system_error>
#include <vector>

#include "mproc/detail/remote_error.hpp"
#include "mproc/errors.hpp"
#include "mproc/serialize.hpp"

namespace mproc::detail {

std::string captured_traceback();  // traceback.cpp

namespace {

// std::bad_alloc cannot be built from a message; this one can.
class RemoteBadAlloc final : public std::bad_alloc, public RemoteError {
 public:
  RemoteBadAlloc(std::string type_name, const std::string& message, std::string traceback)
      : RemoteError(std::move(type_name), message, std::move(traceback)) {}
  const char* what() const noexcept override { return message().c_str(); }
};

template <class E>
ExceptionKind builtin_kind(const char* name) {
  return ExceptionKind{
      name,
      [](const std::exception_ptr& p) {
        try {
          std::rethrow_exception(p);
        } catch (const E&) {
          return true;
        } catch (...) {
          return false;
        }
      },
      [](const std::string& type_name, const std::string& message, const std::string& traceback) {
        throw RemoteException<E>(type_name, message, traceback);
      }};
}

struct Kinds {
  std::mutex mu;
  // Most specific first: user registrations are put in front, and the
  // built-in list is ordered derived-before-base.
  std::vector<ExceptionKind> list;
};

Kinds& kinds() {
  static Kinds* k = [] {
    auto* created = new Kinds;
    // A child forked while another thread held the lock (rethrowing a
    // task's error, say) must not inherit it locked: give it a fresh one.
    pthread_atfork(nullptr, nullptr, [] { new (&kinds().mu) std::mutex; });
    created->list = {
        builtin_kind<std::invalid_argument>("std::invalid_argument"),
        builtin_kind<std::domain_error>("std::domain_error"),
        builtin_kind<std::length_error>("std::length_error"),
        builtin_kind<std::out_of_range>("std::out_of_range"),
        builtin_kind<std::logic_error>("std::logic_error"),
        builtin_kind<std::range_error>("std::range_error"),
        builtin_kind<std::overflow_error>("std::overflow_error"),
        builtin_kind<std::underflow_error>("std::underflow_error"),
        builtin_kind<std::runtime_error>("std::runtime_error"),
    };
    return created;
  }();
  return *k;
}

// Made before main, while the program has one thread. A function-local
// static is guarded: were a thread still making it when another forks, the
// child would wait for ever on the guard of a maker that does not exist there.
[[maybe_unused]] const Kinds& g_kinds_at_load = kinds();

}  // namespace

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                             std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(mangled);
}

void register_exception_kind(ExceptionKind kind) {
  Kinds& k = kinds();
  std::lock_guard lock(k.mu);
  for (auto& existing : k.list) {
    if (existing.type_name == kind.type_name) {
      existing = std::move(kind);
      return;
    }
  }
  k.list.insert(k.list.begin(), std::move(kind));
}

RemoteFacts describe_current_exception() noexcept {
  RemoteFacts f;
  try {
    const std::type_info* t = abi::__cxa_current_exception_type();
    f.type_name = t ? demangle(t->name()) : "unknown exception";
    f.traceback = captured_traceback();
    const std::exception_ptr p = std::current_exception();
    try {
      std::rethrow_exception(p);
    } catch (const std::bad_alloc& e) {
      f.message = e.what();
      f.rebuild_as = "std::bad_alloc";
      return f;
    } catch (const std::exception& e) {
      f.message = e.what();
    } catch (...) {
      f.message = "non-standard exception of type " + f.type_name;
    }
    Kinds& k = kinds();
    std::lock_guard lock(k.mu);
    for (const auto& kind : k.list) {
      if (kind.type_name == f.type_name) {
        f.rebuild_as = kind.type_name;
        return f;
      }
    }
    for (const auto& kind : k.list) {
      if (kind.matches(p)) {
        f.rebuild_as = kind.type_name;
        return f;
      }
    }
  } catch (...) {
    // Out of memory while describing: send what we have.
  }
  return f;
}

std::exception_ptr make_remote_exception(const RemoteFacts& f) {
  try {
    if (f.rebuild_as == "std::bad_alloc") throw RemoteBadAlloc(f.type_name, f.message, f.traceback);
    {
      // The exact type if this process registered it (the worker may not
      // have: under spawn it runs main() only up to init()), else the
      // nearest registered type the worker found.
      std::function<void(const std::string&, const std::string&, const std::string&)> rethrow;
      {
        Kinds& k = kinds();
        std::lock_guard lock(k.mu);
        for (const auto& kind : k.list) {
          if (kind.type_name == f.type_name) {
            rethrow = kind.rethrow;
            break;
          }
        }
        for (const auto& kind : k.list) {
          if (rethrow || f.rebuild_as.empty()) break;
          if (kind.type_name == f.rebuild_as) rethrow = kind.rethrow;
        }
      }
      // Rebuilt as the nearest registered type; type_name() still reports
      // the original dynamic type, which may be more derived.
      if (rethrow) rethrow(f.type_name, f.message, f.traceback);
    }
    throw RemoteException<std::runtime_error>(f.type_name, f.message, f.traceback);
  } catch (...) {
    return std::current_exception();
  }
}

void encode_facts(Writer& w, const RemoteFacts& f) {
  encode(w, std::tuple<std::string, std::string, std::string, std::string>(f.type_name, f.message,
                                                                        f.traceback, f.rebuild_as));
}

RemoteFacts decode_facts(Reader& r) {
  auto [t, m, tb, as] = decode<std::tuple<std::string, std::string, std::string, std::string>>(r);
  return RemoteFacts{std::move(t), std::move(m), std::move(tb), std::move(as)};
}

}  // namespace mproc::detail
