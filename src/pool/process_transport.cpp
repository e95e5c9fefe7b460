// process_transport.cpp: pool workers as local processes.
//
// Each slot is one mproc::Process running pool_worker_main, started with the
// pool's start method, joined to the pool by a Unix stream socket (tasks in,
// results out, descriptors of handles riding along as SCM_RIGHTS). A worker
// that ends shows up on its sentinel; before reporting it dead, everything
// it managed to send is drained from its socket, so no finished result is
// ever mistaken for a lost one. Progress slots (which item each worker
// runs) live in one shared memory region for the whole pool.
//
// Big bodies (64 KiB and more) cross through two shared-memory rings per
// worker (detail/bulk_ring.hpp), in the same region as the progress slots:
// one memcpy in and one out instead of a socket's kernel copies, in pages
// that stay warm for the life of the pool. The rings are sparse: a pool
// that never sends a big message touches none of them; one that did keeps
// what it touched (at most 2 x kRingBytes per worker) until it ends.
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
#include <optional>

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
        slots_(o.processes),
        progress_(SharedRegion::create(rings_offset(o.processes) + o.processes * 2 * kRingSpan, "pool")),
        wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!wake_) throw_errno("mproc::Pool: eventfd");
    for (std::size_t k = 0; k < slots_.size(); ++k) {
      auto* rings = progress_->as<std::byte>(rings_offset(o.processes) + k * 2 * kRingSpan);
      slots_[k].to_worker = BulkRing(rings, kRingBytes);
      slots_[k].from_worker = BulkRing(rings + kRingSpan, kRingBytes);
    }
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
    // Bigger buffers let a chunk and its results move in few system calls.
    const int buf = 4 << 20;
    ::setsockopt(mine.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    ::setsockopt(mine.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    ::setsockopt(theirs.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    ::setsockopt(theirs.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    WorkerConfig config{static_cast<std::uint32_t>(slot), options_.maxtasksperchild, options_.flush_each_item,
                        rings_offset(slots_.size()) + slot * 2 * kRingSpan, kRingBytes};
    s.to_worker.reset();
    s.from_worker.reset();
    ProcessOptions po;
    // Python's names: ForkPoolWorker-1, SpawnPoolWorker-2, ForkServerPoolWorker-3.
    static constexpr const char* kPrefix[] = {"ForkPoolWorker", "SpawnPoolWorker", "ForkServerPoolWorker"};
    po.name = std::string(kPrefix[static_cast<int>(options_.start_method)]) + "-" + std::to_string(++started_);
    po.daemon = true;
    po.start_method = options_.start_method;
    // The target is a captureless lambda: it is identified by its type, so
    // pools work even in a stripped binary.
    Process p(po,
              [](FdHandle sock, RegionHandle progress, WorkerConfig cfg) {
                pool_worker_main(std::move(sock), std::move(progress), cfg);
              },
              theirs, RegionHandle(progress_), config);
    progress_->as<WorkerProgress>(slot * 64)->running.store(0);
    progress_->as<WorkerProgress>(slot * 64)->chunk_id.store(0);
    progress_->as<WorkerProgress>(slot * 64)->ready.store(0);
    p.start();
    s.born = std::chrono::steady_clock::now();
    s.watched = true;
    theirs.reset();
    s.process = std::move(p);
    s.sock = std::move(mine);
    s.reader.emplace(s.sock.get());
    s.alive = true;
    s.eof = false;
    s.outbox.clear();  // whatever was meant for the last worker of this slot
    send(slot, init, init_fds);
  }

  void send(std::size_t slot, std::span<const std::byte> bytes, std::span<const int> fds) override {
    Slot& s = slots_[slot];
    if (!s.alive || s.eof) return;
    // Small messages wait in the slot's outbox until wait(): the chunks
    // the core hands one worker in one round leave in one write, and the
    // worker wakes once for all of them.
    if (fds.empty() && bytes.size() <= kOutboxMessage) {
      frame_message(s.outbox, bytes);
      return;
    }
    flush(s);
    if (s.eof) return;
    try {
      send_message(s.sock.get(), bytes, fds, s.to_worker);
    } catch (const EOFError&) {
      s.eof = true;  // the worker died; its sentinel will say how
    }
  }

  Event wait(Deadline deadline) override {
    for (auto& s : slots_) flush(s);
    const Deadline user_deadline = deadline;
    for (;;) {
      // Wake up for the birth watchdog too.
      deadline = user_deadline;
      if (const Deadline birth = check_births()) {
        if (!deadline || *birth < *deadline) deadline = birth;
      }
      // Whole messages already read ahead (MessageReader) go first, with
      // no system call.
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        const std::size_t k = (next_ + i) % slots_.size();
        Slot& s = slots_[k];
        if (s.alive && !s.eof && s.reader->has_message()) {
          next_ = (k + 1) % slots_.size();
          Event e;
          if (read_message(k, e)) return e;
        }
      }
      std::vector<pollfd> pfds;
      std::vector<std::pair<std::size_t, bool>> who;  // slot, is_socket
      pfds.push_back({wake_.get(), POLLIN, 0});
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        const std::size_t k = (next_ + i) % slots_.size();
        Slot& s = slots_[k];
        if (!s.alive) continue;
        if (!s.eof) {
          pfds.push_back({s.sock.get(), POLLIN, 0});
          who.emplace_back(k, true);
        }
        pfds.push_back({s.process.sentinel(), POLLIN, 0});
        who.emplace_back(k, false);
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
      if (r < 0) throw_errno("mproc::Pool: poll");
      if (r == 0) {
        if (user_deadline && std::chrono::steady_clock::now() >= *user_deadline) return event_of(Event::Kind::timeout);
        continue;  // a watchdog deadline: check_births() looks again
      }
      if (pfds[0].revents) {
        std::uint64_t v;
        [[maybe_unused]] ssize_t n = ::read(wake_.get(), &v, sizeof v);
        return event_of(Event::Kind::wake);
      }
      next_ = (next_ + 1) % std::max<std::size_t>(slots_.size(), 1);
      // Messages first: a worker's last results must be read before its
      // death is reported.
      for (std::size_t i = 0; i < who.size(); ++i) {
        if (!who[i].second || pfds[i + 1].revents == 0) continue;
        Event e;
        if (read_message(who[i].first, e)) return e;
      }
      for (std::size_t i = 0; i < who.size(); ++i) {
        if (who[i].second || pfds[i + 1].revents == 0) continue;
        const std::size_t k = who[i].first;
        Slot& s = slots_[k];
        // Drain what is left on the socket before declaring the death.
        if (!s.eof && (s.reader->has_bytes() || wait_readable(s.sock.get(), 0))) {
          Event e;
          if (read_message(k, e)) return e;
          continue;
        }
        s.process.join();
        const int code = s.process.exitcode().value_or(-SIGKILL);
        s.alive = false;
        s.sock.reset();
        Event e = event_of(Event::Kind::died);
        e.slot = k;
        e.exit_code = code;
        e.death = describe_exit(code);
        return e;
      }
    }
  }

  void wake() override {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
  }

  void kill(std::size_t slot) override {
    Slot& s = slots_[slot];
    if (s.alive) s.process.kill();
  }

  void retire(std::size_t slot) override {
    Writer w;
    w.write_pod(PoolMsg::exit);
    send(slot, w.bytes(), {});
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
    return progress_->as<WorkerProgress>(slot * 64);
  }

 private:
  struct Slot {
    Process process;
    UniqueFd sock;
    bool alive = false;
    bool eof = false;
    Writer outbox;  // framed messages not sent yet (send())
    std::optional<MessageReader> reader;  // of `sock`, several messages per read
    BulkRing to_worker, from_worker;
    std::chrono::steady_clock::time_point born;
    bool watched = false;  // not known to be ready yet
  };

  // Kills workers that did not get ready within birth_limit_; returns when to
  // look again (nullopt: every live worker is ready).
  Deadline check_births() {
    Deadline next;
    const auto now = std::chrono::steady_clock::now();
    for (std::size_t k = 0; k < slots_.size(); ++k) {
      Slot& s = slots_[k];
      if (!s.watched) continue;
      if (!s.alive || progress_->as<WorkerProgress>(k * 64)->ready.load(std::memory_order_acquire) != 0) {
        s.watched = false;
        continue;
      }
      const auto limit = s.born + birth_limit_;
      if (now >= limit) {
        s.watched = false;
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

  static constexpr std::size_t kOutboxMessage = 64 << 10;
  // Each ring: bodies up to half of it (W10's 8 MiB payloads two at a time).
  static constexpr std::size_t kRingBytes = std::size_t{32} << 20;
  static constexpr std::size_t kRingSpan = BulkRing::kHeaderBytes + kRingBytes;
  // The progress slots come first, then the rings (page-aligned).
  static std::size_t rings_offset(std::size_t processes) {
    return (64 * std::max<std::size_t>(processes, 1) + 4095) & ~std::size_t{4095};
  }

  void flush(Slot& s) {
    if (s.outbox.size() == 0) return;
    const auto bytes = s.outbox.bytes();
    s.outbox.clear();
    if (!s.alive || s.eof) return;
    try {
      send_framed(s.sock.get(), bytes);
    } catch (const EOFError&) {
      s.eof = true;
    }
  }

  // Reads one message from a readable worker socket; false at end of stream.
  bool read_message(std::size_t k, Event& e) {
    Slot& s = slots_[k];
    try {
      e.message = std::move(spare_);
      spare_ = Message{};
      s.reader->next(e.message, &s.from_worker);
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
  std::vector<Slot> slots_;
  std::shared_ptr<SharedRegion> progress_;
  UniqueFd wake_;
  std::size_t next_ = 0;
  std::uint64_t started_ = 0;
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
