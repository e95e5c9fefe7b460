// A bare raw pointer means nothing in another process: rejected at compile
// time.
// expect-error: cannot cross a process boundary
#include <mproc/mproc.hpp>

void target(int* out) { *out = 1; }

int main() {
  int x = 0;
  mproc::Process p(target, &x);
  p.start();
  p.join();
}
