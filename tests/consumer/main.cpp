// Downstream smoke test: the installed headers and library link and run.
#include <mproc/mproc.hpp>

#include <iostream>

int main() {
    const auto n = mproc::cpu_count();
    std::cout << "mproc::cpu_count() = " << n << '\n';
    return n > 0 ? 0 : 1;
}
