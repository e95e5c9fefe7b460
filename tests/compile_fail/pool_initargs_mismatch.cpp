// PoolOptions::initargs must fit the initializer's parameters: here the
// initializer takes an int and initargs hold a std::string. The mismatch is
// caught when the Pool is constructed, at compile time, with a message that
// names the initializer and initargs.
// expect-error: initializer cannot be called with initargs
#include <string>
#include <tuple>

#include <mproc/mproc.hpp>

void set_level(int level) { (void)level; }

int main() {
  mproc::PoolOptions<void (*)(int), std::tuple<std::string>> options;
  options.processes = 2;
  options.initializer = set_level;
  options.initargs = std::make_tuple(std::string("high"));
  mproc::Pool pool(options);
  pool.close();
  pool.join();
}
