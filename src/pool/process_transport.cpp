// process_transport.cpp: pool workers as local processes.
//
// Each slot is one mproc::Process running pool_worker_main, started with the
// pool's start method, joined to the pool by a MailLink (detail/
// mail_link.hpp): messages through rings in shared memory, a Unix stream
// socket for those that carry descriptors (SCM_RIGHTS), an eventfd per
// worker and one for the pool to wake a side that sleeps. A worker that
// ends shows up on its sentinel; before reporting it dead, everything it
// managed to send is drained from its link, so no finished result is ever
// mistaken for a lost one. Progress slots (which item each worker runs),
// the rings and the pool's sleeping word live in one shared memory region
// for the whole pool (PoolLayout, detail/pool_worker.hpp); its rings are
// sparse: a pool keeps only the pages it touched (at most 2 x 32 MiB of big
// bodies and 2 x 256 KiB of small messages per worker) until it ends.
//
// The supervisor waits here (wait()): it looks at every worker's ring,
// spins a little while work flows (detail/spin.hpp), and then sleeps in
// ppoll on the pool's bell and the workers' sentinels.
//
// A birth watchdog: a worker that has not reached its loop (the `ready`
// flag of its progress slot) within 20 s of its start (the environment
// variable MPROC_WORKER_START_TIMEOUT_MS changes that) is killed, and
// the pool treats it like any worker that died before its first task (it
// starts another; a pool whose workers keep dying so is broken). A child
// forked from a multithreaded parent can deadlock before it runs anything
// of ours, on a lock some other parent thread held at the fork (a fork-
// unsafe library, a sanitizer runtime: TRAPS.md); without the watchdog the
// pool would wait on it for ever.

#include "process_transport.hpp"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>

#include "mproc/detail/mail_link.hpp"
#include "mproc/detail/spin.hpp"

namespace mproc::detail {
namespace {

Transport::Event event_of(Transport::Event::Kind kind) {
  Transport::Event e;
  e.kind = kind;
  return e;
}

std::string describe_exit(int code) {
  if (code < 0) {
    const char* abbrev = sigabbrev_np(-code);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(-code);
  }
  return "exit code " + std::to_string(code);
}

class ProcessTransport final : public Transport {
 public:
  explicit ProcessTransport(const ProcessTransportOptions& o)
      : options_(o),
        layout_{std::max<std::size_t>(o.processes, 1)},
        slots_(o.processes),
        region_(SharedRegion::create(layout_.bytes(), "pool")),
        bell_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
        sleeping_(region_->as<std::atomic<std::uint32_t>>(layout_.pool_sleeping())),
        spin_ns_(spin_ns_from_env()),
        spin_(spin_ns_) {
    if (!bell_) throw_errno("mproc::Pool: eventfd");
  }

  ~ProcessTransport() override {
    for (auto& s : slots_) {
      if (s.process.pid() != 0 && s.process.is_alive()) s.process.kill();
    }
  }

  std::size_t slots() const noexcept override { return slots_.size(); }

  void start(std::size_t slot, std::span<const std::byte> init, std::span<const int> init_fds) override {
    Slot& s = slots_[slot];
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("mproc::Pool: socketpair");
    UniqueFd mine(sv[0]);
    FdHandle theirs(sv[1]);
    UniqueFd worker_bell(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!worker_bell) throw_errno("mproc::Pool: eventfd");
    FdHandle their_bell(::dup(worker_bell.get()));
    FdHandle pool_bell(::dup(bell_.get()));
    if (their_bell.get() < 0 || pool_bell.get() < 0) throw_errno("mproc::Pool: dup");
    // Only messages with descriptors (or ones that found no room in
    // shared memory) use the socket; big buffers let those move in few calls.
    const int buf = 4 << 20;
    ::setsockopt(mine.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    ::setsockopt(mine.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    ::setsockopt(theirs.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    ::setsockopt(theirs.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    WorkerConfig config{static_cast<std::uint32_t>(slot), options_.maxtasksperchild, options_.flush_each_item,
                        static_cast<std::uint32_t>(layout_.processes), spin_ns_};
    // Whatever the last worker of this slot left in its rings is gone. (A
    // fresh region reads as zero: the first worker of a slot needs no
    // reset, which would fault in four pages of shared memory.)
    std::byte* base = region_->as<std::byte>(0);
    MailRing to_mail = layout_.mail_to_worker(base, slot), from_mail = layout_.mail_from_worker(base, slot);
    BulkRing to_bulk = layout_.bulk_to_worker(base, slot), from_bulk = layout_.bulk_from_worker(base, slot);
    if (s.process.pid() != 0) {
      to_mail.reset();
      from_mail.reset();
      to_bulk.reset();
      from_bulk.reset();
    }
    ProcessOptions po;
    po.daemon = true;
    po.start_method = options_.start_method;
    // The target is a captureless lambda: it is identified by its type, so
    // pools work even in a stripped binary.
    Process p(po,
              [](FdHandle sock, FdHandle bell, FdHandle pool_bell, RegionHandle region, WorkerConfig cfg) {
                pool_worker_main(std::move(sock), std::move(bell), std::move(pool_bell), std::move(region), cfg);
              },
              theirs, their_bell, pool_bell, RegionHandle(region_), config);
    // Python's names: the Process's number with "PoolWorker" for "Process"
    // (ForkPoolWorker-3, SpawnPoolWorker-1:4, ForkServerPoolWorker-7).
    static constexpr const char* kPrefix[] = {"ForkPoolWorker", "SpawnPoolWorker", "ForkServerPoolWorker"};
    p.set_name(kPrefix[static_cast<int>(options_.start_method)] + p.name().substr(std::strlen("Process")));
    WorkerProgress* progress = region_->as<WorkerProgress>(layout_.progress(slot));
    progress->running.store(0);
    progress->chunk_id.store(0);
    progress->ready.store(0);
    p.start();
    s.born = std::chrono::steady_clock::now();
    if (!s.watched) ++watched_;
    s.watched = true;
    theirs.reset();
    their_bell.reset();
    pool_bell.reset();
    s.process = std::move(p);
    s.sock = std::move(mine);
    s.bell = std::move(worker_bell);
    s.link = MailLink(s.sock.get(), from_mail, to_mail, from_bulk, to_bulk,
                      MailLink::Peer{&to_mail.sleeping(), s.bell.get()});
    s.alive = true;
    s.eof = false;
    send_to(slot, init, init_fds);
  }

  void send(std::size_t slot, std::span<const std::byte> bytes, std::span<const int> fds) override {
    send_to(slot, bytes, fds);
    flowing_until_ns_ = monotonic_ns() + kFlowingNs;  // a task: its answer comes soon
  }

  Event wait(Deadline deadline) override {
    const Deadline user_deadline = deadline;
    for (;;) {
      // Wake up for the birth watchdog too.
      deadline = user_deadline;
      if (const Deadline birth = check_births()) {
        if (!deadline || *birth < *deadline) deadline = birth;
      }
      Event e;
      if (ready_event(e)) return e;
      // (A deadline of time_point::min() asks only for what is there: no clock read.)
      if (user_deadline && (*user_deadline == std::chrono::steady_clock::time_point::min() ||
                            std::chrono::steady_clock::now() >= *user_deadline)) {
        return event_of(Event::Kind::timeout);
      }
      // While work flows the next message comes within microseconds. (Not
      // while workers start or exit, with no task out: a spinner would
      // only take a core from them.)
      const std::uint64_t stop = deadline ? static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                                          deadline->time_since_epoch())
                                                                          .count())
                                          : ~std::uint64_t{0};
      if (monotonic_ns() < flowing_until_ns_ &&
          spin_.until([&] { return wake_pending_.load(std::memory_order_relaxed) || any_message(); }, stop)) {
        continue;
      }
      // Sleep: announce it, look once more, then ppoll on the bell (rung
      // by a worker that wrote to a ring, or by wake()) and the sentinels.
      MailLink::begin_sleep(*sleeping_);
      if (wake_pending_.load(std::memory_order_seq_cst) || any_message_after_announce()) {
        sleeping_->store(0, std::memory_order_relaxed);
        continue;
      }
      std::vector<pollfd>& pfds = pfds_;
      std::vector<std::size_t>& who = who_;
      pfds.clear();
      who.clear();
      pfds.push_back({bell_.get(), POLLIN, 0});
      for (std::size_t k = 0; k < slots_.size(); ++k) {
        if (!slots_[k].alive) continue;
        pfds.push_back({slots_[k].process.sentinel(), POLLIN, 0});
        who.push_back(k);
      }
      // ppoll, not poll: a deadline microseconds away (the MPI rank server
      // sleeps here for its polling pauses, from 10 us up) must not become
      // a whole millisecond.
      timespec ts{};
      const timespec* timeout = nullptr;
      if (deadline) {
        const auto left = std::clamp<std::chrono::nanoseconds>(*deadline - std::chrono::steady_clock::now(),
                                                               std::chrono::nanoseconds(0), std::chrono::milliseconds(1 << 30));
        ts.tv_sec = static_cast<time_t>(left.count() / 1000000000);
        ts.tv_nsec = static_cast<long>(left.count() % 1000000000);
        timeout = &ts;
      }
      const int r = retry_eintr([&] { return ::ppoll(pfds.data(), pfds.size(), timeout, nullptr); });
      sleeping_->store(0, std::memory_order_relaxed);
      spin_.woke();
      if (r < 0) throw_errno("mproc::Pool: poll");
      if (pfds[0].revents != 0) drain_bell(bell_.get());
      // Messages first (the next turn): a worker's last results must be
      // read before its death is reported.
      for (std::size_t i = 0; i < who.size(); ++i) {
        if (pfds[i + 1].revents == 0) continue;
        Slot& s = slots_[who[i]];
        if (!s.eof && s.link.has_message()) continue;
        s.process.join();
        const int code = s.process.exitcode().value_or(-SIGKILL);
        s.alive = false;
        s.link = MailLink();
        s.sock.reset();
        s.bell.reset();
        Event d = event_of(Event::Kind::died);
        d.slot = who[i];
        d.exit_code = code;
        d.death = describe_exit(code);
        d.never_started = std::exchange(s.killed_unborn, false);
        return d;
      }
    }
  }

  void wake() override {
    wake_pending_.store(true, std::memory_order_seq_cst);
    MailLink::wake(MailLink::Peer{sleeping_, bell_.get()});
  }

  void kill(std::size_t slot) override {
    Slot& s = slots_[slot];
    if (s.alive) s.process.kill();
  }

  void retire(std::size_t slot) override {
    Writer w;
    w.write_pod(PoolMsg::exit);
    send_to(slot, w.bytes(), {});
  }

  bool alive(std::size_t slot) const override { return slots_[slot].alive; }
  int pid(std::size_t slot) const override { return slots_[slot].process.pid(); }
  void recycle(Message&& m) override {
    m.fds.clear();  // descriptors close now, not when the buffer is reused
    if (m.bytes.capacity() > spare_.bytes.capacity() && m.bytes.capacity() <= (std::size_t{64} << 20)) {
      spare_ = std::move(m);
    }
  }
  const WorkerProgress* progress(std::size_t slot) const override {
    return region_->as<WorkerProgress>(layout_.progress(slot));
  }

 private:
  struct Slot {
    Process process;
    UniqueFd sock;
    UniqueFd bell;  // the worker's eventfd
    MailLink link;
    bool alive = false;
    bool eof = false;  // the socket ended (the worker is dying)
    std::chrono::steady_clock::time_point born;
    bool watched = false;  // not known to be ready yet
    bool killed_unborn = false;  // the birth watchdog killed it
  };

  void send_to(std::size_t slot, std::span<const std::byte> bytes, std::span<const int> fds) {
    Slot& s = slots_[slot];
    if (!s.alive || s.eof) return;
    try {
      s.link.send(bytes, fds);
    } catch (const EOFError&) {
      s.eof = true;  // the worker died; its sentinel will say how
    }
  }

  // A message that has arrived (round robin over the workers), or a wake
  // request; false if neither.
  bool ready_event(Event& e) {
    if (wake_pending_.load(std::memory_order_relaxed) && wake_pending_.exchange(false)) {
      e = event_of(Event::Kind::wake);
      return true;
    }
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      const std::size_t k = (next_ + i) % slots_.size();
      Slot& s = slots_[k];
      if (!s.alive || s.eof || !s.link.has_message()) continue;
      next_ = (k + 1) % slots_.size();
      if (read_message(k, e)) return true;
    }
    return false;
  }

  bool any_message() const noexcept {
    for (const Slot& s : slots_) {
      if (s.alive && !s.eof && s.link.has_message()) return true;
    }
    return false;
  }
  bool any_message_after_announce() const noexcept {
    for (const Slot& s : slots_) {
      if (s.alive && !s.eof && s.link.has_message_after_announce()) return true;
    }
    return false;
  }

  // Kills workers that did not get ready within birth_limit_; returns when to
  // look again (nullopt: every live worker is ready).
  Deadline check_births() {
    Deadline next;
    if (watched_ == 0) return next;
    const auto now = std::chrono::steady_clock::now();
    for (std::size_t k = 0; k < slots_.size(); ++k) {
      Slot& s = slots_[k];
      if (!s.watched) continue;
      if (!s.alive || region_->as<WorkerProgress>(layout_.progress(k))->ready.load(std::memory_order_acquire) != 0) {
        s.watched = false;
        --watched_;
        continue;
      }
      const auto limit = s.born + birth_limit_;
      if (now >= limit) {
        s.watched = false;
        --watched_;
        s.killed_unborn = true;
        s.process.kill();  // its death is reported like any other
        continue;
      }
      // Look often at first (a normal start takes milliseconds), then
      // rarely.
      const auto at = std::min(limit, now + std::chrono::milliseconds(100));
      if (!next || at < *next) next = at;
    }
    return next;
  }

  // Reads the message that has arrived from worker `k`; false if its
  // socket ended in the middle (the worker died sending it).
  bool read_message(std::size_t k, Event& e) {
    Slot& s = slots_[k];
    try {
      e.message = std::move(spare_);
      spare_ = Message{};
      s.link.try_next(e.message);
      flowing_until_ns_ = monotonic_ns() + kFlowingNs;
      e.kind = Event::Kind::message;
      e.slot = k;
      return true;
    } catch (const EOFError&) {
      s.eof = true;
      return false;
    }
  }

  // A message buffer handed back by the core (recycle()), reused by the
  // next read so that big result messages do not fault in fresh pages.
  Message spare_;
  ProcessTransportOptions options_;
  PoolLayout layout_;
  std::vector<Slot> slots_;
  std::shared_ptr<SharedRegion> region_;
  UniqueFd bell_;  // the pool's eventfd: workers and wake() ring it
  std::atomic<std::uint32_t>* sleeping_;  // the pool's sleeping word (in region_)
  std::atomic<bool> wake_pending_{false};
  std::uint64_t spin_ns_;
  AdaptiveSpin spin_;
  std::vector<pollfd> pfds_;  // wait()'s, reused
  std::vector<std::size_t> who_;
  std::size_t next_ = 0;
  std::size_t watched_ = 0;  // slots whose worker is not known to be ready
  // Spin only until then (CLOCK_MONOTONIC): a task went out or a message
  // came in shortly before.
  std::uint64_t flowing_until_ns_ = 0;
  static constexpr std::uint64_t kFlowingNs = 1000000;
  std::chrono::milliseconds birth_limit_ = birth_limit();

  static std::chrono::milliseconds birth_limit() {
    if (const char* v = std::getenv("MPROC_WORKER_START_TIMEOUT_MS")) {
      char* end = nullptr;
      const long long ms = std::strtoll(v, &end, 10);
      if (end != v && *end == '\0' && ms > 0) return std::chrono::milliseconds(ms);
    }
    return std::chrono::seconds(20);
  }
};

}  // namespace

std::unique_ptr<Transport> make_process_transport(const ProcessTransportOptions& options) {
  return std::make_unique<ProcessTransport>(options);
}

}  // namespace mproc::detail
