// expect-error: std::string_view and std::span cannot be sent
// A std::string_view is trivially copyable but points into the sender's
// memory: sent bitwise it would dangle in the child. Rejected.
#include <mproc/mproc.hpp>

#include <string_view>

void worker(std::string_view) {}

int main() {
  mproc::Process p(worker, std::string_view("text"));
  p.start();
}
