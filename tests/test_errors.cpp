// test_errors.cpp: tests of errors.hpp and detail/remote_error.hpp: how an
// exception raised in one process is described, sent, and rebuilt in
// another as the same type with the original facts (API.md section 8).
//
// The two halves run in this one process here (describe in a catch block,
// encode, decode, rebuild): that is exactly what a worker and the parent do
// on either side of a pipe, without the pipe.

#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>
#include <typeinfo>

#include "mproc/detail/buffer.hpp"
#include "mproc/detail/remote_error.hpp"
#include "mproc/errors.hpp"

// Outside any namespace and not static or inline, so that it has a plain,
// recognisable symbol in the traceback ("mproc" in a frame's name marks it
// as library plumbing, which the traceback leaves out).
[[gnu::noinline]] void errors_test_function_that_throws(int depth);
[[gnu::noinline]] void errors_test_function_that_throws(int depth) {
  if (depth > 0) {
    errors_test_function_that_throws(depth - 1);
    asm volatile("");  // not a tail call: keep the frame
    return;
  }
  throw std::range_error("thrown deep down");
}

namespace {

using mproc::detail::RemoteFacts;

// Runs `thrower` and returns the facts a worker would send for what it
// threw, after a trip through the wire encoding.
template <class F>
RemoteFacts facts_of(F&& thrower) {
  RemoteFacts facts;
  try {
    thrower();
    ADD_FAILURE() << "the thrower did not throw";
  } catch (...) {
    facts = mproc::detail::describe_current_exception();
  }
  mproc::detail::Writer w;
  mproc::detail::encode_facts(w, facts);
  mproc::detail::Reader r(w.bytes());
  RemoteFacts back = mproc::detail::decode_facts(r);
  EXPECT_TRUE(r.at_end());
  EXPECT_EQ(back.type_name, facts.type_name);
  EXPECT_EQ(back.message, facts.message);
  EXPECT_EQ(back.traceback, facts.traceback);
  EXPECT_EQ(back.rebuild_as, facts.rebuild_as);
  return back;
}

// Throws E(message) remotely, rethrows the rebuilt exception locally and
// checks that it is exactly RemoteException<E> with the original facts.
template <class E>
void expect_round_trip(const std::string& type_name, const std::string& message) {
  SCOPED_TRACE(type_name);
  const RemoteFacts facts = facts_of([&] { throw E(message); });
  EXPECT_EQ(facts.type_name, type_name);
  EXPECT_EQ(facts.message, message);
  const std::exception_ptr rebuilt = mproc::detail::make_remote_exception(facts);
  ASSERT_TRUE(rebuilt);
  try {
    std::rethrow_exception(rebuilt);
  } catch (const E& e) {
    EXPECT_EQ(typeid(e), typeid(mproc::RemoteException<E>)) << "rebuilt as a different type";
    EXPECT_EQ(std::string(e.what()), message);
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), type_name);
    EXPECT_EQ(remote->message(), message);
  } catch (...) {
    ADD_FAILURE() << "not rebuilt as " << type_name;
  }
}

TEST(RemoteError, StdexceptTypesComeBackAsThemselves) {
  expect_round_trip<std::logic_error>("std::logic_error", "logic");
  expect_round_trip<std::invalid_argument>("std::invalid_argument", "bad argument: 'x'");
  expect_round_trip<std::domain_error>("std::domain_error", "outside the domain");
  expect_round_trip<std::length_error>("std::length_error", "too long");
  expect_round_trip<std::out_of_range>("std::out_of_range", "index 7 of 3");
  expect_round_trip<std::runtime_error>("std::runtime_error", "it ran badly");
  expect_round_trip<std::range_error>("std::range_error", "range");
  expect_round_trip<std::overflow_error>("std::overflow_error", "overflow");
  expect_round_trip<std::underflow_error>("std::underflow_error", "underflow");
}

TEST(RemoteError, MessageIsKeptExactly) {
  expect_round_trip<std::runtime_error>("std::runtime_error", "");
  expect_round_trip<std::runtime_error>("std::runtime_error", "two\nlines, a tab\t, \"quotes\" and \xc3\xa9");
  expect_round_trip<std::invalid_argument>("std::invalid_argument", std::string(100000, 'm'));
}

TEST(RemoteError, BadAllocComesBackAsBadAlloc) {
  const RemoteFacts facts = facts_of([] { throw std::bad_alloc(); });
  EXPECT_EQ(facts.type_name, "std::bad_alloc");
  const std::string original = std::bad_alloc().what();
  try {
    std::rethrow_exception(mproc::detail::make_remote_exception(facts));
  } catch (const std::bad_alloc& e) {
    EXPECT_EQ(std::string(e.what()), original);
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), "std::bad_alloc");
    EXPECT_EQ(remote->message(), original);
  } catch (...) {
    ADD_FAILURE() << "std::bad_alloc was not rebuilt as std::bad_alloc";
  }
}

struct RegisteredError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

TEST(RemoteError, RegisteredTypeComesBackAsItself) {
  mproc::register_exception<RegisteredError>();
  const std::string name = mproc::detail::demangle(typeid(RegisteredError).name());
  expect_round_trip<RegisteredError>(name, "a registered failure");
}

// Derives from std::exception only, and is not registered.
struct UnknownError : std::exception {
  const char* what() const noexcept override { return "something unknown went wrong"; }
};

TEST(RemoteError, UnknownTypeComesBackAsRuntimeErrorWithItsName) {
  const RemoteFacts facts = facts_of([] { throw UnknownError(); });
  const std::string name = mproc::detail::demangle(typeid(UnknownError).name());
  EXPECT_NE(name.find("UnknownError"), std::string::npos) << name;
  try {
    std::rethrow_exception(mproc::detail::make_remote_exception(facts));
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(typeid(e), typeid(mproc::RemoteException<std::runtime_error>));
    EXPECT_EQ(std::string(e.what()), "something unknown went wrong");
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), name);
    EXPECT_EQ(remote->message(), "something unknown went wrong");
  } catch (...) {
    ADD_FAILURE() << "an unknown std::exception was not rebuilt as std::runtime_error";
  }
}

// Not registered, but derived from a type that is rebuilt as itself.
struct DerivedOutOfRange : std::out_of_range {
  using std::out_of_range::out_of_range;
};

TEST(RemoteError, UnregisteredDerivedTypeComesBackAsItsKnownBase) {
  const RemoteFacts facts = facts_of([] { throw DerivedOutOfRange("index 12 of 4"); });
  const std::string name = mproc::detail::demangle(typeid(DerivedOutOfRange).name());
  try {
    std::rethrow_exception(mproc::detail::make_remote_exception(facts));
  } catch (const std::out_of_range& e) {
    EXPECT_EQ(typeid(e), typeid(mproc::RemoteException<std::out_of_range>));
    EXPECT_EQ(std::string(e.what()), "index 12 of 4");
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), name) << "type_name() must be the original, derived type";
  } catch (...) {
    ADD_FAILURE() << "a type derived from std::out_of_range was not rebuilt as std::out_of_range";
  }
}

TEST(RemoteError, NonExceptionValueComesBackAsRuntimeError) {
  const RemoteFacts facts = facts_of([] { throw 42; });
  EXPECT_EQ(facts.type_name, "int");
  try {
    std::rethrow_exception(mproc::detail::make_remote_exception(facts));
  } catch (const std::runtime_error& e) {
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->type_name(), "int");
    EXPECT_EQ(std::string(e.what()), remote->message());
    EXPECT_NE(remote->message().find("int"), std::string::npos) << remote->message();
  } catch (...) {
    ADD_FAILURE() << "a thrown int was not rebuilt as std::runtime_error";
  }
}

TEST(RemoteError, RemoteErrorIsNotAnMprocError) {
  // Remote exceptions are the user's, not mproc's: catch (mproc::Error&)
  // must not swallow them.
  const RemoteFacts facts = facts_of([] { throw std::runtime_error("user's"); });
  try {
    std::rethrow_exception(mproc::detail::make_remote_exception(facts));
  } catch (const mproc::Error&) {
    ADD_FAILURE() << "a remote std::runtime_error was caught as mproc::Error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "user's");
  }
}

TEST(RemoteError, TracebackNamesTheThrowingFunctionInsideAScope) {
  RemoteFacts facts;
  {
    mproc::detail::TracebackScope scope;
    try {
      errors_test_function_that_throws(3);
    } catch (...) {
      facts = mproc::detail::describe_current_exception();
    }
  }
  EXPECT_EQ(facts.type_name, "std::range_error");
  EXPECT_NE(facts.traceback.find("errors_test_function_that_throws"), std::string::npos)
      << "traceback:\n"
      << facts.traceback;
  try {
    std::rethrow_exception(mproc::detail::make_remote_exception(facts));
  } catch (const std::range_error& e) {
    const auto* remote = dynamic_cast<const mproc::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr);
    EXPECT_EQ(remote->traceback(), facts.traceback);
  }
}

TEST(RemoteError, NoTracebackOutsideAScope) {
  RemoteFacts facts;
  try {
    errors_test_function_that_throws(0);
  } catch (...) {
    facts = mproc::detail::describe_current_exception();
  }
  EXPECT_EQ(facts.type_name, "std::range_error");
  EXPECT_EQ(facts.traceback, "");
}

TEST(RemoteError, TruncatedFactsAreASerializationError) {
  mproc::detail::Writer w;
  mproc::detail::encode_facts(w, RemoteFacts{"std::invalid_argument", "msg", "  #0 f\n", "std::invalid_argument"});
  const auto bytes = w.bytes();
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    mproc::detail::Reader r(bytes.first(n));
    EXPECT_THROW(mproc::detail::decode_facts(r), mproc::SerializationError) << "prefix of " << n << " bytes";
  }
}

TEST(Errors, EveryMprocErrorIsAnErrorAndARuntimeError) {
  // One catch (const mproc::Error&) catches everything mproc raises about
  // itself (API.md section 8).
  auto check = [](auto e) {
    using E = decltype(e);
    static_assert(std::is_base_of_v<mproc::Error, E>);
    static_assert(std::is_base_of_v<std::runtime_error, E>);
    EXPECT_EQ(std::string(e.what()), "why");
  };
  check(mproc::TimeoutError("why"));
  check(mproc::WorkerLostError("why"));
  check(mproc::PoolClosedError("why"));
  check(mproc::SerializationError("why"));
  check(mproc::AuthenticationError("why"));
  check(mproc::BrokenBarrierError("why"));
  check(mproc::EOFError("why"));
  check(mproc::Empty("why"));
  check(mproc::Full("why"));
  static_assert(!std::is_base_of_v<std::exception, mproc::RemoteError>,
                "RemoteError is a mixin, not itself a std::exception");
  static_assert(std::has_virtual_destructor_v<mproc::RemoteError>, "RemoteError is polymorphic");
}

}  // namespace
