// start_method.cpp: mproc::init and the process-wide start method.

#include "mproc/start_method.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "mproc/detail/launch.hpp"
#include "mproc/errors.hpp"

namespace mproc {
namespace detail {

// Entry points of the processes init() may turn into (launch_spawn.cpp,
// forkserver.cpp). Neither returns.
[[noreturn]] void spawned_child_main(int fd);
[[noreturn]] void forkserver_main(int fd);

namespace {

std::atomic<bool> g_initialized{false};
std::vector<std::string> g_argv;

// Atomics rather than a mutex: a child forked while another thread was in
// set_start_method() must not inherit a held lock.
std::atomic<StartMethod> g_method{StartMethod::fork};
std::atomic<bool> g_method_set{false};

// Takes an inherited descriptor number from the environment and removes the
// variable, so that the child's own children do not see it.
int take_env_fd(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return -1;
  char* end = nullptr;
  const long fd = std::strtol(v, &end, 10);
  ::unsetenv(name);
  if (end == v || *end != '\0' || fd < 0 || fd > 1 << 20) return -1;
  return static_cast<int>(fd);
}

}  // namespace

void require_init(const char* what) {
  if (!g_initialized.load()) {
    throw Error(std::string("mproc: ") + what +
                " needs mproc::init(argc, argv) to have been called at the start of main()");
  }
}

const std::vector<std::string>& saved_argv() { return g_argv; }

}  // namespace detail

void init(int argc, char** argv) {
  // Recorded first: a spawned child (or the forkserver's children) may
  // itself start spawn/forkserver processes and pools.
  if (!detail::g_initialized.exchange(true)) {
    for (int i = 0; i < argc; ++i) detail::g_argv.emplace_back(argv[i] ? argv[i] : "");
  }
  if (const int fd = detail::take_env_fd("MPROC_FORKSERVER_FD"); fd >= 0) {
    detail::forkserver_main(fd);
  }
  if (const int fd = detail::take_env_fd("MPROC_SPAWN_FD"); fd >= 0) {
    detail::spawned_child_main(fd);
  }
}

bool initialized() noexcept { return detail::g_initialized.load(); }

void set_start_method(StartMethod method, bool force) {
  if (detail::g_method_set.exchange(true) && !force) {
    throw Error("mproc::set_start_method: context has already been set (pass force = true)");
  }
  detail::g_method.store(method);
}

StartMethod get_start_method() noexcept {
  return detail::g_method.load();
}

std::vector<StartMethod> get_all_start_methods() {
  return {StartMethod::fork, StartMethod::spawn, StartMethod::forkserver};
}

std::string_view to_string(StartMethod method) noexcept {
  switch (method) {
    case StartMethod::fork:
      return "fork";
    case StartMethod::spawn:
      return "spawn";
    case StartMethod::forkserver:
      return "forkserver";
  }
  return "unknown";
}

}  // namespace mproc
