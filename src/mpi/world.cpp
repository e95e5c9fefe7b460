// world.cpp: mproc::mpi::init/finalize and the state every part of the MPI
// component shares: mproc's communicator, this rank, the host of each rank.

#include <malloc.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "mproc/errors.hpp"
#include "mproc/mpi.hpp"
#include "protocol.hpp"

namespace mproc::detail::mpi {
namespace {

struct World {
  bool initialized = false;
  bool finalized = false;
  bool owns_mpi = false;  // init() called MPI_Init, so finalize() ends it
  pid_t pid = 0;          // the rank's own process (not its forked workers)
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  std::vector<std::string> hosts;
};

World g_world;
std::mutex g_mu;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(rc, text, &n);
  throw Error(std::string("mproc::mpi: ") + what + " failed: " + std::string(text, static_cast<std::size_t>(n)));
}

void require_world() {
  if (!g_world.initialized) throw Error("mproc::mpi: call mproc::mpi::init(argc, argv) first");
}

// Ends MPI for this rank: mproc's communicator, then MPI itself if ours.
void end_mpi() {
  if (g_world.finalized) return;
  g_world.finalized = true;
  MPI_Comm_free(&g_world.comm);
  if (g_world.owns_mpi) MPI_Finalize();
}

void at_exit() {
  // A local worker process forked from a rank inherits this handler; only
  // the rank itself may speak MPI.
  if (::getpid() != g_world.pid) return;
  try {
    mproc::mpi::finalize();
  } catch (...) {
  }
}

}  // namespace

MPI_Comm comm() {
  require_world();
  return g_world.comm;
}
int world_rank() { return g_world.rank; }
int world_size() { return g_world.size; }
const std::string& host_of(int rank) {
  static const std::string unknown = "?";
  return rank >= 0 && static_cast<std::size_t>(rank) < g_world.hosts.size() ? g_world.hosts[rank] : unknown;
}

namespace {
// Receives into anything with resize() and data(): a vector, or a
// ByteBuffer (which leaves the bytes uninitialised until they land).
template <class Buffer>
bool try_recv_into(int source, int tag, Buffer& body, MPI_Status& status) {
  int flag = 0;
  MPI_Message msg;
  check(MPI_Improbe(source, tag, comm(), &flag, &msg, &status), "MPI_Improbe");
  if (!flag) return false;
  int n = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &n), "MPI_Get_count");
  body.resize(static_cast<std::size_t>(n));
  check(MPI_Mrecv(body.data(), n, MPI_BYTE, &msg, &status), "MPI_Mrecv");
  return true;
}
}  // namespace

bool try_recv(int source, int tag, std::vector<std::byte>& body, MPI_Status& status) {
  return try_recv_into(source, tag, body, status);
}

bool try_recv(int source, int tag, ByteBuffer& body, MPI_Status& status) {
  return try_recv_into(source, tag, body, status);
}

void send(int dest, int tag, const void* data, std::size_t n) {
  if (n > static_cast<std::size_t>(INT_MAX)) {
    throw SerializationError("mproc::mpi: a message of " + std::to_string(n) +
                             " bytes is over MPI's 2 GiB limit for one message");
  }
  check(MPI_Send(data, static_cast<int>(n), MPI_BYTE, dest, tag, comm()), "MPI_Send");
}

void Outbox::post(int dest, int tag, const void* data, std::size_t n) {
  if (n > static_cast<std::size_t>(INT_MAX)) {
    throw SerializationError("mproc::mpi: a message of " + std::to_string(n) +
                             " bytes is over MPI's 2 GiB limit for one message");
  }
  progress();
  Pending p;
  p.bytes.resize(n);
  if (n != 0) std::memcpy(p.bytes.data(), data, n);
  check(MPI_Isend(p.bytes.data(), static_cast<int>(n), MPI_BYTE, dest, tag, comm(), &p.request), "MPI_Isend");
  // The vector's heap buffer does not move with the vector.
  pending_.push_back(std::move(p));
}

bool Outbox::progress() {
  for (std::size_t i = 0; i < pending_.size();) {
    int done = 0;
    check(MPI_Test(&pending_[i].request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) {
      pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  return pending_.empty();
}

Outbox::~Outbox() {
  // A peer that is gone never completes its receive: give up after a while
  // (the requests are then cancelled, which MPI may or may not honour).
  try {
    Backoff backoff(std::chrono::milliseconds(1));
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!progress() && std::chrono::steady_clock::now() < give_up) backoff.pause();
    for (auto& p : pending_) {
      MPI_Cancel(&p.request);
      MPI_Request_free(&p.request);
    }
  } catch (...) {
  }
}

std::chrono::microseconds Backoff::next() noexcept {
  // About 50 polls back to back (a reply on its way arrives within
  // microseconds), then pauses doubling from 10 us up to max_.
  if (++polls_ < 50) return std::chrono::microseconds(0);
  pause_ = pause_.count() == 0 ? std::chrono::microseconds(10) : std::min(pause_ * 2, max_);
  return pause_;
}

void Backoff::pause() {
  const auto d = next();
  if (d.count() == 0) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(d);
  }
}

}  // namespace mproc::detail::mpi

namespace mproc::mpi {

namespace dm = detail::mpi;

void init(int argc, char** argv) {
  // A spawn/forkserver child of this program never returns from here: it
  // runs its target, not MPI.
  mproc::init(argc, argv);
  std::unique_lock lock(dm::g_mu);
  if (dm::g_world.initialized) return;
  auto& w = dm::g_world;
  int already = 0;
  MPI_Initialized(&already);
  int provided = MPI_THREAD_SINGLE;
  if (already) {
    MPI_Query_thread(&provided);
  } else {
    dm::check(MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    w.owns_mpi = true;
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    throw Error("mproc::mpi: the MPI library offers only thread level " + std::to_string(provided) +
                "; mproc::mpi needs MPI_THREAD_SERIALIZED or better (the pool's supervisor thread talks MPI)");
  }
  dm::check(MPI_Comm_dup(MPI_COMM_WORLD, &w.comm), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(w.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(w.comm, &w.rank);
  MPI_Comm_size(w.comm, &w.size);
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  MPI_Get_processor_name(name, &len);
  std::vector<char> all(static_cast<std::size_t>(w.size) * MPI_MAX_PROCESSOR_NAME);
  dm::check(MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                          w.comm),
            "MPI_Allgather");
  for (int r = 0; r < w.size; ++r) {
    const char* p = all.data() + static_cast<std::size_t>(r) * MPI_MAX_PROCESSOR_NAME;
    w.hosts.emplace_back(p, strnlen(p, MPI_MAX_PROCESSOR_NAME));
  }
  w.pid = ::getpid();
  w.initialized = true;
  if (w.rank != 0) {
    lock.unlock();
#ifdef __GLIBC__
    // A worker rank is mproc's own process, and so are the local workers
    // it forks: freed memory stays for the next message. glibc would hand
    // the top of the heap back to the kernel at 128 KiB free (and map big
    // blocks afresh), so every page of every large message was faulted in
    // again, several times per message on its way through the rank. (Tasks,
    // which run in those local workers, see the same: up to 512 MiB of
    // freed heap is kept rather than returned.)
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest
#endif
    int code = 0;
    try {
      dm::serve();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mproc::mpi: worker rank %d (%s) failed: %s\n", w.rank, w.hosts[w.rank].c_str(), e.what());
      code = 1;
    }
    dm::end_mpi();
    std::exit(code);
  }
  std::atexit(dm::at_exit);
}

void finalize() {
  std::lock_guard lock(dm::g_mu);
  auto& w = dm::g_world;
  if (!w.initialized || w.finalized || w.rank != 0) return;
  for (int r = 1; r < w.size; ++r) dm::send(r, dm::kShutdown, nullptr, 0);
  dm::end_mpi();
}

bool initialized() noexcept { return dm::g_world.initialized; }

int rank() {
  dm::require_world();
  return dm::g_world.rank;
}

int size() {
  dm::require_world();
  return dm::g_world.size;
}

std::string processor_name() {
  dm::require_world();
  return dm::g_world.hosts[static_cast<std::size_t>(dm::g_world.rank)];
}

}  // namespace mproc::mpi
