// queue_producer_consumer.cpp: a pipeline of processes joined by queues.
//
// A producer puts the numbers 1..N into a bounded Queue, then a sentinel
// (-1) per consumer. Two consumers square what they get, pass the squares
// on through a second queue, and stop at their sentinel. The parent sums
// the squares and checks the total against the formula.
//
//   producer --numbers--> consumer x2 --squares--> parent
//
// The bounded first queue (maxsize 64) keeps the producer from running far
// ahead of the consumers: put() blocks while it is full. Run it as
// `example_queue_producer_consumer [fork|spawn|forkserver]`.
// ctest-start-methods: fork spawn forkserver

#include <mproc/mproc.hpp>

#include "support/self_check.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

constexpr int kN = 10000;
constexpr int kConsumers = 2;

void producer(mproc::Queue<int> numbers) {
  for (int i = 1; i <= kN; ++i) numbers.put(i);
  for (int c = 0; c < kConsumers; ++c) numbers.put(-1);  // one stop sign per consumer
}

void consumer(mproc::Queue<int> numbers, mproc::Queue<std::int64_t> squares) {
  for (;;) {
    const int n = numbers.get(std::chrono::seconds(60));
    if (n < 0) break;
    squares.put(std::int64_t{n} * n);
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  example_check::choose_start_method(argc, argv);  // optional argv[1]: fork|spawn|forkserver

  mproc::Queue<int> numbers(64);
  mproc::Queue<std::int64_t> squares;
  std::vector<mproc::Process> workers;
  workers.emplace_back(producer, numbers);
  for (int c = 0; c < kConsumers; ++c) workers.emplace_back(consumer, numbers, squares);
  for (auto& w : workers) w.start();

  std::int64_t sum = 0;
  for (int i = 0; i < kN; ++i) sum += squares.get(std::chrono::seconds(60));
  for (auto& w : workers) w.join();

  const std::int64_t expect = std::int64_t{kN} * (kN + 1) * (2 * kN + 1) / 6;
  std::printf("sum of squares of 1..%d = %lld (expected %lld)\n", kN, static_cast<long long>(sum),
              static_cast<long long>(expect));
  return sum == expect ? 0 : 1;
}
