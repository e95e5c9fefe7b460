// owner.cpp: who holds a lock, and whether that process still lives
// (detail/sync_core.hpp: OwnerId, self_owner_id, self_tid, owner_dead).
//
// A lock word names its holder by pid plus start time (field 22 of
// /proc/<pid>/stat, clock ticks since boot). Both are cached: this process's
// OwnerId in a global, the thread id per thread. A forked child is another
// process with another pid and another start time, so a pthread_atfork
// handler drops both caches in the child (it runs in the one thread the
// child has, the one that called fork).

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "mproc/detail/sync_core.hpp"

namespace mproc::detail {

std::atomic<std::uint64_t> g_self_owner_id{0};

std::atomic<std::uint32_t> g_fork_generation{0};
__thread std::uint64_t t_tid_cache = 0;

namespace {

void forget_identity_in_child() noexcept {
  g_self_owner_id.store(0, std::memory_order_relaxed);
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

// Registered the first time an identity is cached: a process that never
// cached one has nothing to forget at fork.
void register_fork_handler() noexcept {
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(nullptr, nullptr, forget_identity_in_child); });
}

enum class ProcState { running, gone, unknown };

struct ProcStat {
  ProcState state = ProcState::unknown;
  bool missing = false;  // gone because /proc has no entry for the pid
  std::uint64_t start_time = 0;
};

// Reads /proc/<pid>/stat with plain system calls (no allocation, so it is
// also fine in a freshly forked child) and extracts the state letter and
// the start time.
ProcStat read_proc_stat(std::uint32_t pid) noexcept {
  ProcStat out;
  char path[48];
  if (pid == 0) {
    std::memcpy(path, "/proc/self/stat", sizeof "/proc/self/stat");
  } else {
    // Hand-rolled formatting: snprintf is not guaranteed allocation-free.
    char digits[16];
    int n = 0;
    for (std::uint32_t v = pid; v != 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
    char* p = path;
    for (const char* s = "/proc/"; *s != '\0'; ++s) *p++ = *s;
    while (n > 0) *p++ = digits[--n];
    for (const char* s = "/stat"; *s != '\0'; ++s) *p++ = *s;
    *p = '\0';
  }
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // ENOENT: no such process. ESRCH can come from a process that is
    // being torn down. Anything else (EMFILE, EACCES) proves nothing.
    if (errno == ENOENT || errno == ESRCH) {
      out.state = ProcState::gone;
      out.missing = true;
    }
    return out;
  }
  char buf[1024];
  std::size_t len = 0;
  for (;;) {
    const ssize_t r = ::read(fd, buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r < 0 && errno == ESRCH) out.state = ProcState::gone;
      break;
    }
    len += static_cast<std::size_t>(r);
    if (len == sizeof buf - 1) break;
  }
  ::close(fd);
  if (len == 0) return out;
  buf[len] = '\0';
  // The command name (field 2) is in parentheses and may itself contain
  // ") ", so the fields that follow start after the *last* ')'.
  const char* close_paren = nullptr;
  for (std::size_t i = 0; i < len; ++i) {
    if (buf[i] == ')') close_paren = buf + i;
  }
  if (close_paren == nullptr || close_paren + 2 >= buf + len) return out;
  const char* p = close_paren + 2;  // field 3: the state letter
  const char state = *p;
  // Skip to field 22 (starttime): 19 separators after field 3.
  for (int field = 3; field < 22; ++field) {
    while (*p != '\0' && *p != ' ') ++p;
    if (*p == '\0') return out;
    ++p;
  }
  std::uint64_t start = 0;
  while (*p >= '0' && *p <= '9') start = start * 10 + static_cast<std::uint64_t>(*p++ - '0');
  out.start_time = start;
  // Z: a zombie (dead, not yet reaped); X: being reaped.
  out.state = (state == 'Z' || state == 'X') ? ProcState::gone : ProcState::running;
  return out;
}

}  // namespace

OwnerId compute_self_owner_id() noexcept {
  register_fork_handler();
  const auto pid = static_cast<std::uint32_t>(::getpid());
  const ProcStat st = read_proc_stat(0);
  // Without /proc the start time reads 0: ownership still works, only the
  // defence against pid reuse is lost.
  const OwnerId id = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(st.start_time)) << 32) |
                     (pid & kOwnerPidMask);
  g_self_owner_id.store(id, std::memory_order_relaxed);
  return id;
}

std::uint32_t self_tid_slow() noexcept {
  register_fork_handler();
  const auto tid = static_cast<std::uint32_t>(::syscall(SYS_gettid));
  const std::uint64_t generation = g_fork_generation.load(std::memory_order_relaxed);
  t_tid_cache = ((generation + 1) << 32) | tid;
  return tid;
}

bool owner_dead(OwnerId owner) noexcept {
  const auto pid = static_cast<std::uint32_t>(owner & kOwnerPidMask);
  if (pid == 0) return false;
  const ProcStat st = read_proc_stat(pid);
  switch (st.state) {
    case ProcState::gone:
      // A missing /proc entry is confirmed with kill(pid, 0), so that a
      // system without /proc mounted does not take every holder for dead.
      if (st.missing) return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
      return true;
    case ProcState::unknown:
      return false;
    case ProcState::running:
      return static_cast<std::uint32_t>(st.start_time) != static_cast<std::uint32_t>(owner >> 32);
  }
  return false;
}

bool process_running(std::uint32_t pid) noexcept {
  if (pid == 0) return false;
  const ProcStat st = read_proc_stat(pid);
  switch (st.state) {
    case ProcState::gone:
      return st.missing && ::kill(static_cast<pid_t>(pid), 0) == 0;  // no /proc mounted
    case ProcState::running:
      return true;
    case ProcState::unknown:
      return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
  }
  return false;
}

}  // namespace mproc::detail
