// A struct with a std::string member is not trivially copyable and has no
// serialize(): it cannot be sent, and the diagnostic says how to fix that
// (give it a cereal serialize function).
// expect-error: cannot cross a process boundary
#include <string>

#include <mproc/mproc.hpp>

struct Config {
  std::string name;
  int level = 0;
};

void target(Config c) { (void)c; }

int main() {
  mproc::Process p(target, Config{"x", 1});
  p.start();
  p.join();
}
