// bench/reference/pthread_mutex.cpp: a process-shared pthread_mutex
// guarding an increment, hammered by two processes (2 x 100,000), the
// reference for W9's Value<int> incremented under its lock.
//
//   RESULT ops_per_s <locked increments per second, both processes> ops/s

#include <pthread.h>

#include "contended_loop.hpp"

namespace {

struct Shared {
  pthread_mutex_t mutex;
  alignas(64) long counter = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv);
  const int per_child = 100000;
  const int rounds = args.quick ? 3 : 7;
  Shared* s = bench::raw::shared_new<Shared>();
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (pthread_mutex_init(&s->mutex, &attr) != 0) bench::fail("pthread_mutex_init failed");
  pthread_mutexattr_destroy(&attr);

  const double rate = bench::raw::contended_rate(
      per_child, rounds,
      [s] {
        pthread_mutex_lock(&s->mutex);
        ++s->counter;
        pthread_mutex_unlock(&s->mutex);
      },
      [s] { s->counter = 0; }, [s, per_child] { return s->counter == 2L * per_child; });
  bench::result("ops_per_s", rate, "ops/s");
}
