// mpi_main.cpp: the consumer of the optional mproc::mpi component, run by
// scripts/check.sh under mpirun with 2 ranks when it was built.
#include <mproc/mpi.hpp>

#include <cstdio>
#include <vector>

int square(int x) { return x * x; }

int main(int argc, char** argv) {
  mproc::mpi::init(argc, argv);
  mproc::mpi::Pool pool;
  const auto out = pool.map(square, std::vector{1, 2, 3});
  if (out != std::vector{1, 4, 9}) {
    std::fprintf(stderr, "mproc_consumer_mpi: wrong result\n");
    return 1;
  }
  std::printf("mproc_consumer_mpi: ok on %d ranks\n", mproc::mpi::size());
  return 0;
}
