// forkserver.cpp: the `forkserver` start method.
//
// The server is a spawned copy of this program (so: single-threaded, no
// inherited memory, started with the same argv), created on first use. Its
// mproc::init() turns into forkserver_main(): it waits for child frames on
// a Unix socket, forks one child per frame, answers with the child's pid and
// the read end of a status pipe, reaps children (SIGCHLD through a
// signalfd) and writes each one's exit code into its status pipe. In the
// parent, that pipe is the child's sentinel.
//
// Death: the server dies with the parent (PR_SET_PDEATHSIG), and the
// children die with the server, so nothing outlives the parent. If the
// server is found dead, the next launch starts a new one. (Python lets a
// dead server's children run on; here they could then outlive the parent,
// which API.md rules out.) The server ignores SIGINT, as Python's does: a
// ^C at the terminal reaches the whole process group, and the server going
// down would take with it children that handle SIGINT themselves. Its
// children get back the SIGINT disposition the server started with.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

#include "mproc/detail/launch.hpp"
#include "mproc/detail/wire.hpp"
#include "mproc/serialize.hpp"
#include "pidfd_child.hpp"

namespace mproc::detail {

pid_t spawn_self(int child_end, const char* env_name);  // launch_spawn.cpp

namespace {

class ForkserverChild final : public Child {
 public:
  ForkserverChild(pid_t pid, UniqueFd status) : pid_(pid), status_(std::move(status)) {}
  int pid() const noexcept override { return pid_; }
  int sentinel() const noexcept override { return status_.get(); }
  std::optional<int> poll() override {
    if (code_) return code_;
    if (!wait_readable(status_.get(), 0)) return std::nullopt;
    std::int32_t code = 0;
    const ssize_t r = retry_eintr([&] { return ::read(status_.get(), &code, sizeof code); });
    // Nothing written before the pipe closed: the server died, and took the
    // child with it.
    code_ = r == static_cast<ssize_t>(sizeof code) ? code : -SIGKILL;
    return code_;
  }
  void send_signal(int sig) override {
    if (!poll()) ::kill(pid_, sig);
  }

 private:
  pid_t pid_;
  UniqueFd status_;
  std::optional<int> code_;
};

struct Server {
  std::mutex mu;
  UniqueFd sock;
  std::unique_ptr<PidfdChild> process;
};

Server& server() {
  static auto* s = new Server;
  return *s;
}

// Made before main, while the program has one thread. A function-local
// static is guarded: were a thread still making it when another forks, the
// child would wait for ever on the guard of a maker that does not exist there.
[[maybe_unused]] const Server& g_server_at_load = server();

void start_server(Server& s) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("mproc: socketpair");
  UniqueFd mine(sv[0]), theirs(sv[1]);
  on_launcher_thread([&] {
    s.process = std::make_unique<PidfdChild>(spawn_self(theirs.get(), "MPROC_FORKSERVER_FD"));
  });
  s.sock = std::move(mine);
}

}  // namespace

void forget_parent_forkserver() noexcept {
  Server& s = server();
  // Free at the fork, the state is whole: close the parent's descriptors
  // (the server is not ours to stop). Held by a parent thread that does not
  // exist here, it may be half-changed: leave it alone (a descriptor or two
  // stay open until this child ends).
  if (s.mu.try_lock()) {
    s.sock.reset();
    s.process.reset();
    s.mu.unlock();
  } else {
    new (&s) Server;
  }
}

int forkserver_pid() noexcept {
  Server& s = server();
  std::lock_guard lock(s.mu);
  return s.process && !s.process->poll() ? s.process->pid() : 0;
}

std::vector<int> forkserver_fds() {
  Server& s = server();
  std::lock_guard lock(s.mu);
  std::vector<int> out;
  if (s.sock) out.push_back(s.sock.get());
  if (s.process) out.push_back(s.process->sentinel());
  return out;
}

std::unique_ptr<Child> launch_forkserver(const Job& job) {
  require_init("the forkserver start method");
  Writer frame;
  encode_child_frame(frame, job, StartMethod::forkserver);
  Server& s = server();
  std::lock_guard lock(s.mu);
  for (int attempt = 0;; ++attempt) {
    if (!s.sock || (s.process && s.process->poll())) start_server(s);
    try {
      send_message(s.sock.get(), frame.bytes(), frame.fds());
      Message reply = recv_message(s.sock.get(), 1 << 16);
      Reader r(reply.bytes.bytes());
      const auto pid = decode<std::int32_t>(r);
      if (pid <= 0 || reply.fds.size() != 1) {
        throw Error("mproc: forkserver could not start the child: " + decode<std::string>(r));
      }
      return std::make_unique<ForkserverChild>(pid, std::move(reply.fds[0]));
    } catch (const EOFError&) {
      // The server died (killed from outside?): start a new one, once.
      s.sock.reset();
      if (s.process) {
        s.process->send_signal(SIGKILL);
        while (!s.process->poll()) wait_readable(s.process->sentinel(), -1);
      }
      if (attempt > 0) throw Error("mproc: the forkserver died while starting a child");
    }
  }
}

[[noreturn]] void forkserver_main(int fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  const pid_t parent = ::getppid();
  UniqueFd sock(fd);
  become_child("ForkServer", true, parent, "MainProcess", {});
  struct sigaction ignore{}, sigint_at_start{};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGINT, &ignore, &sigint_at_start);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  UniqueFd sigfd(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd) std::_Exit(1);
  std::map<pid_t, UniqueFd> status_pipes;
  for (;;) {
    pollfd p[2] = {{sock.get(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
    if (retry_eintr([&] { return ::poll(p, 2, -1); }) < 0) std::_Exit(1);
    if (p[1].revents) {
      signalfd_siginfo info;
      while (::read(sigfd.get(), &info, sizeof info) > 0) {
      }
      int status = 0;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        auto it = status_pipes.find(pid);
        if (it == status_pipes.end()) continue;
        const std::int32_t code = exit_code_from_status(status);
        [[maybe_unused]] ssize_t w = ::write(it->second.get(), &code, sizeof code);
        status_pipes.erase(it);
      }
    }
    if (p[0].revents) {
      Message m;
      try {
        m = recv_message(sock.get());
      } catch (...) {
        std::_Exit(0);  // the parent closed the socket (or died): we are done
      }
      int pipefd[2];
      Writer reply;
      if (::pipe2(pipefd, O_CLOEXEC) != 0) {
        encode(reply, std::int32_t{-1});
        encode(reply, std::string("pipe2 failed"));
        send_message(sock.get(), reply.bytes());
        continue;
      }
      UniqueFd status_read(pipefd[0]), status_write(pipefd[1]);
      const pid_t server_pid = ::getpid();
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != server_pid) std::_Exit(1);
        ::sigaction(SIGINT, &sigint_at_start, nullptr);
        sigprocmask(SIG_UNBLOCK, &chld, nullptr);
        sock.reset();
        sigfd.reset();
        status_read.reset();
        status_write.reset();
        status_pipes.clear();
        const std::vector<int> fds = m.raw_fds();
        const int code = run_child_frame(m.bytes.bytes(), fds, /*direct=*/false);
        std::exit(code);
      }
      if (pid < 0) {
        encode(reply, std::int32_t{-1});
        encode(reply, std::string("fork failed"));
        send_message(sock.get(), reply.bytes());
        continue;
      }
      encode(reply, static_cast<std::int32_t>(pid));
      const int give[1] = {status_read.get()};
      try {
        send_message(sock.get(), reply.bytes(), give);
      } catch (...) {
        std::_Exit(0);
      }
      status_pipes.emplace(pid, std::move(status_write));
    }
  }
}

}  // namespace mproc::detail
