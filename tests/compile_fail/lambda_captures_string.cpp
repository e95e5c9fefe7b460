// A lambda that captures a std::string is not trivially copyable, so it
// cannot be sent bitwise; the diagnostic must tell the user to pass the
// string as an argument instead.
// expect-error: cannot cross a process boundary
#include <string>

#include <mproc/mproc.hpp>

int main() {
  std::string greeting = "hello";
  mproc::Process p([greeting] { (void)greeting.size(); });
  p.start();
  p.join();
}
