// pidfd_child.hpp: a Child that is a direct child of this process (fork and
// spawn), watched through a pidfd: pollable, and immune to pid reuse.
#pragma once

#include <sys/types.h>

#include "mproc/detail/fd.hpp"
#include "mproc/detail/launch.hpp"

namespace mproc::detail {

class PidfdChild final : public Child {
 public:
  explicit PidfdChild(pid_t pid);
  int pid() const noexcept override { return pid_; }
  int sentinel() const noexcept override { return pidfd_.get(); }
  std::optional<int> poll() override;
  void send_signal(int sig) override;

 private:
  pid_t pid_;
  UniqueFd pidfd_;
  std::optional<int> code_;
};

// Python's convention: the exit status, or -N for death by signal N.
int exit_code_from_status(int status) noexcept;

}  // namespace mproc::detail
