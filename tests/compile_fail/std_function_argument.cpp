// A std::function cannot cross a process boundary (it may hold anything,
// including pointers into this process): Process must reject it at compile
// time with a message that says so.
// expect-error: cannot cross a process boundary
#include <functional>

#include <mproc/mproc.hpp>

void target(std::function<int()> f) { (void)f; }

int main() {
  mproc::Process p(target, std::function<int()>([] { return 1; }));
  p.start();
  p.join();
}
