// A Value<T> of a type that is not trivially copyable (its bytes cannot be
// shared as they are) must be rejected at compile time with a message that
// says why and what to do.
// expect-error: T must be trivially copyable
#include <mproc/shared_value.hpp>

#include <string>

int main() {
  mproc::Value<std::string> v;
  (void)v;
}
