// process_support.cpp: see process_support.hpp.

#include "helpers/process_support.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include "helpers/pool_support.hpp"
#include "helpers/test_support.hpp"

namespace mproc_test {

mproc::ProcessOptions process_options(mproc::StartMethod m, std::string name) {
  mproc::ProcessOptions o;
  o.start_method = m;
  o.name = std::move(name);
  return o;
}

std::optional<int> join_guarded(mproc::Process& p) {
  if (!p.join(kGuard)) {
    ADD_FAILURE() << "child did not end within " << kGuard.count() << " s";
    p.kill();
    p.join(kGuard);
    return std::nullopt;
  }
  return p.exitcode();
}

KillAtScopeEnd::~KillAtScopeEnd() {
  for (auto& p : ps_) {
    try {
      if (p.pid() != 0 && p.is_alive()) p.kill();
    } catch (...) {
    }
  }
}

void wait_for_go(std::string go) {
  if (!wait_for_path(go, 2 * kGuard)) ::_exit(98);
}

}  // namespace mproc_test
