// detail/callable.hpp: what a target's parameters are, so the arguments can
// be converted to them before they are sent.
//
// Process(f, "text") with `void f(std::string)` sends a std::string, not a
// const char*: arguments are stored as the decayed parameter types of f
// when f's signature is known (functions, function pointers, lambdas and
// function objects with one non-template operator()). For generic lambdas
// the decayed argument types are used, with string literals as std::string.
#pragma once

#include <string>
#include <tuple>
#include <type_traits>

namespace mproc::detail {

template <class F, class = void>
struct signature {
  static constexpr bool known = false;
};

template <class R, class... A>
struct signature<R (*)(A...)> {
  static constexpr bool known = true;
  using result = R;
  using params = std::tuple<std::decay_t<A>...>;
};
template <class R, class... A>
struct signature<R (*)(A...) noexcept> : signature<R (*)(A...)> {};
template <class R, class... A>
struct signature<R(A...)> : signature<R (*)(A...)> {};
template <class R, class... A>
struct signature<R(A...) noexcept> : signature<R (*)(A...)> {};

template <class M>
struct member_signature {
  static constexpr bool known = false;
};
#define MPROC_MEMBER_SIGNATURE(QUALS)                        \
  template <class R, class C, class... A>                    \
  struct member_signature<R (C::*)(A...) QUALS> {            \
    static constexpr bool known = true;                      \
    using result = R;                                        \
    using params = std::tuple<std::decay_t<A>...>;           \
  };
MPROC_MEMBER_SIGNATURE()
MPROC_MEMBER_SIGNATURE(const)
MPROC_MEMBER_SIGNATURE(noexcept)
MPROC_MEMBER_SIGNATURE(const noexcept)
MPROC_MEMBER_SIGNATURE(&)
MPROC_MEMBER_SIGNATURE(const&)
#undef MPROC_MEMBER_SIGNATURE

template <class F>
struct signature<F, std::void_t<decltype(&F::operator())>> : member_signature<decltype(&F::operator())> {};

// A string literal or char pointer argument to a generic callable travels as
// a std::string.
template <class A>
using arg_storage_t =
    std::conditional_t<std::is_same_v<std::decay_t<A>, const char*> || std::is_same_v<std::decay_t<A>, char*>,
                       std::string, std::decay_t<A>>;

// The tuple type the arguments of a call to F are stored (and sent) as.
template <class F, class... Args>
struct stored_args {
  using type = std::tuple<arg_storage_t<Args>...>;
};
template <class F, class... Args>
  requires signature<F>::known
struct stored_args<F, Args...> {
  using type = typename signature<F>::params;
};
template <class F, class... Args>
using stored_args_t = typename stored_args<std::decay_t<F>, Args...>::type;

// Checks at compile time that F can be called with the stored arguments.
template <class F, class Tuple>
inline constexpr bool invocable_with_v = false;
template <class F, class... T>
inline constexpr bool invocable_with_v<F, std::tuple<T...>> = std::is_invocable_v<F&, T&...>;

// What a task returns to its caller: the decayed result (a function that
// returns a reference gives a copy of the referred value, as API.md's "R is
// the decayed return type of f").
template <class F, class Tuple>
struct apply_result;
template <class F, class... T>
struct apply_result<F, std::tuple<T...>> {
  using type = std::decay_t<std::invoke_result_t<F&, T&...>>;
};
template <class F, class Tuple>
using apply_result_t = typename apply_result<F, Tuple>::type;

}  // namespace mproc::detail
