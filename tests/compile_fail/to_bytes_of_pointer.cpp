// mproc::to_bytes / encode reject what cannot be sent, with the same
// diagnostic as Process.
// expect-error: cannot cross a process boundary
#include <mproc/mproc.hpp>

int main() {
  int x = 0;
  int* p = &x;
  auto bytes = mproc::to_bytes(p);
  return static_cast<int>(bytes.size());
}
