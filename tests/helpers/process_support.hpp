// process_support.hpp: what the tests that start Processes of their own
// share (the CPython-mirroring files): options for a start method, a
// bounded join, a guard that kills what an early ASSERT left running, and
// a target that waits for a file to appear.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mproc/process.hpp"

namespace mproc_test {

// ProcessOptions for start method `m` (and a name, if not empty).
mproc::ProcessOptions process_options(mproc::StartMethod m, std::string name = {});

// Joins `p` within kGuard (killing it if it does not end) and returns its
// exit code; nullopt, and a test failure, if it hung.
std::optional<int> join_guarded(mproc::Process& p);

// Kills still-running children when the scope ends (an early ASSERT return
// must not leave ~Process joining a child that waits forever).
class KillAtScopeEnd {
 public:
  explicit KillAtScopeEnd(std::vector<mproc::Process>& ps) : ps_(ps) {}
  ~KillAtScopeEnd();
  KillAtScopeEnd(const KillAtScopeEnd&) = delete;
  KillAtScopeEnd& operator=(const KillAtScopeEnd&) = delete;

 private:
  std::vector<mproc::Process>& ps_;
};

// A Process target: waits until the file `go` exists (the test's signal),
// then returns; exits with 98 if it never comes.
void wait_for_go(std::string go);

}  // namespace mproc_test
