// The number of arguments must match the target's parameters; the
// static_assert says so before any unreadable template error.
// expect-error: number of arguments
#include <mproc/mproc.hpp>

void target(int a, int b) { (void)a; (void)b; }

int main() {
  mproc::Process p(target, 1);
  p.start();
  p.join();
}
