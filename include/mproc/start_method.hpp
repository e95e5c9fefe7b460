// start_method.hpp: how new processes begin, and mproc::init.
//
//   int main(int argc, char** argv) {
//     mproc::init(argc, argv);          // children started with spawn or
//     mproc::set_start_method(          // forkserver do their work inside
//         mproc::StartMethod::spawn);   // this call and never return
//     ...
//   }
//
// - fork: the child is a copy of the parent made by fork(). Fastest start;
//   the child inherits all memory (cost grows with the parent's touched
//   memory, about 20 ms per GiB) and, in a threaded parent, only the thread
//   that forked. Default, as in Python on Linux before 3.14.
// - spawn: the child is a fresh run of the program's own binary
//   (/proc/self/exe with the same argv); main() runs up to mproc::init(),
//   which receives the work and runs it. Safe with threads; pays for exec.
// - forkserver: a clean single-threaded server (itself a spawned copy of the
//   program, started on first use) forks each child. Fork's speed without
//   inheriting the parent's threads or memory.
#pragma once

#include <string_view>
#include <vector>

namespace mproc {

enum class StartMethod { fork, spawn, forkserver };

// Like Python's `if __name__ == "__main__":` plus freeze_support(). Call it
// first thing in main(). In a child started with spawn or forkserver (and in
// the forkserver itself) it runs that process's work and exits; in the
// parent it records argv and returns. Without it, spawn and forkserver throw
// mproc::Error; fork works either way.
void init(int argc, char** argv);

// True once init() has run in this process.
bool initialized() noexcept;

// Sets the process-wide default start method. A second call without
// `force` throws mproc::Error, as in Python.
void set_start_method(StartMethod method, bool force = false);
StartMethod get_start_method() noexcept;
std::vector<StartMethod> get_all_start_methods();

std::string_view to_string(StartMethod method) noexcept;

}  // namespace mproc
