// Pool::map sends its callable to worker processes. A lambda that captures
// a std::string is not trivially copyable, so it cannot be sent bitwise;
// the diagnostic must say that it cannot cross a process boundary (and,
// in the same message, to pass the string as an argument instead).
// expect-error: cannot cross a process boundary
#include <string>
#include <vector>

#include <mproc/mproc.hpp>

int main() {
  std::string prefix = "item-";
  mproc::Pool pool(2);
  auto out = pool.map([prefix](int x) { return prefix.size() + static_cast<std::size_t>(x); }, std::vector{1, 2, 3});
  return static_cast<int>(out.size());
}
