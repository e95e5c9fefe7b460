// multihost_main.cpp: the program of the multi-host test (multihost.sh),
// run by mpirun as one rank on each of three "hosts" -- network namespaces
// h0, h1, h2 of this machine, each with a host name and a 10.77.0.x address
// of its own, joined only by TCP over veth pairs.
//
// Rank 0 (on h0) maps a task over the worker ranks that says where it ran,
// and checks from the answers that the tasks really ran on the other hosts:
// another host name (h1/h2, one each), another network namespace, that
// host's address and no other; and that rank 0's own process holds
// established TCP connections to those addresses (Open MPI's only way to
// them here). Then a task crash on each worker host must fail as
// mproc::WorkerLostError naming that rank and its host, and the pool must
// still serve every rank after.
//
//   mproc_mpi_multihost h0=10.77.0.1 h1=10.77.0.2 h2=10.77.0.3
//
// The arguments are the hosts and their addresses, rank 0's first (the
// same list multihost.sh built the namespaces from). Exit status 0 only if
// every check passed; each failed check prints why.

#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <ranges>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/mpi.hpp"

namespace {

// Where a task ran: its rank, MPI's processor name of that rank, the host
// name its own process sees, its network namespace ("net:[inode]") and the
// IPv4 addresses of that namespace's interfaces.
using Where = std::tuple<int, std::string, std::string, std::string, std::vector<std::string>>;

std::string own_hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

std::string own_netns() {
  char link[256] = {};
  const ssize_t n = ::readlink("/proc/self/ns/net", link, sizeof link - 1);
  return n > 0 ? std::string(link, static_cast<std::size_t>(n)) : "?";
}

std::vector<std::string> own_ipv4_addresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, text, sizeof text);
    out.push_back(std::string(i->ifa_name) + "=" + text);
  }
  ::freeifaddrs(list);
  return out;
}

// The task; also called by rank 0 itself for its own side.
Where where_am_i(int) {
  return {mproc::mpi::rank(), mproc::mpi::processor_name(), own_hostname(), own_netns(), own_ipv4_addresses()};
}

// The addresses of a Where, loopback left out ("eth0=10.77.0.2" -> "10.77.0.2").
std::set<std::string> non_loopback(const std::vector<std::string>& addresses) {
  std::set<std::string> out;
  for (const auto& a : addresses) {
    const std::string ip = a.substr(a.find('=') + 1);
    if (ip.rfind("127.", 0) != 0) out.insert(ip);
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// The remote IPv4 addresses of the established TCP connections this
// process holds: its socket inodes (/proc/self/fd) matched against the
// namespace's TCP table (/proc/self/net/tcp: "local rem_address st ... inode").
std::set<std::string> tcp_peers_of_this_process() {
  std::set<std::string> inodes;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d)) {
      char link[128] = {};
      const std::string path = std::string("/proc/self/fd/") + e->d_name;
      const ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
      const std::string target(link, n > 0 ? static_cast<std::size_t>(n) : 0);
      if (target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
    }
    ::closedir(d);
  }
  std::set<std::string> peers;
  std::ifstream tcp("/proc/self/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state, queues, timer, retr, uid, timeout, inode;
    in >> slot >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
    if (state != "01" || inodes.count(inode) == 0) continue;  // 01: TCP_ESTABLISHED
    // The kernel prints the address as the raw 32-bit word in host order.
    in_addr a{};
    a.s_addr = static_cast<in_addr_t>(std::strtoul(remote.substr(0, remote.find(':')).c_str(), nullptr, 16));
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a, text, sizeof text);
    peers.insert(text);
  }
  return peers;
}

// Each wait is bounded, so that a hang fails with a reason (TimeoutError)
// well within multihost.sh's limit on the whole run.
constexpr auto kGuard = std::chrono::seconds(30);

int failures = 0;
void fail(const std::string& why) {
  std::printf("FAIL: %s\n", why.c_str());
  ++failures;
}

void print(const char* label, const Where& w) {
  const auto& [rank, pname, hostname, netns, addresses] = w;
  std::printf("%s rank %d: processor_name %s, hostname %s, %s, addresses %s\n", label, rank, pname.c_str(),
              hostname.c_str(), netns.c_str(), join(addresses).c_str());
}

// Checks the answers of one map over the workers against rank 0's own side
// and the worker hosts expected (host -> address); returns rank -> host.
std::map<int, std::string> check_workers(const std::vector<Where>& got, const Where& self,
                                         const std::map<std::string, std::string>& expected, int workers) {
  std::map<int, std::string> host_of;
  std::set<std::string> hosts, namespaces;
  for (const auto& w : got) {
    print("worker", w);
    const auto& [rank, pname, hostname, netns, addresses] = w;
    const std::string who = "rank " + std::to_string(rank) + " (" + pname + ")";
    if (rank < 1 || rank > workers) fail("a task ran on rank " + std::to_string(rank) + ", not a worker rank");
    if (host_of.count(rank) != 0) fail(who + " ran two of the tasks; every worker should have run one");
    host_of[rank] = pname;
    if (pname != hostname) fail(who + ": MPI's processor name differs from the task's host name " + hostname);
    if (pname == std::get<1>(self)) fail(who + " runs on rank 0's host " + pname);
    if (expected.count(pname) == 0) fail(who + " runs on a host that is not one of the worker hosts");
    if (!hosts.insert(pname).second) fail(who + ": host " + pname + " has two worker ranks");
    if (netns == std::get<3>(self)) fail(who + " runs in rank 0's network namespace " + netns);
    if (!namespaces.insert(netns).second) fail(who + ": network namespace " + netns + " has two worker ranks");
    const auto it = expected.find(pname);
    const std::set<std::string> want = it == expected.end() ? std::set<std::string>{} : std::set{it->second};
    if (non_loopback(addresses) != want) {
      fail(who + " has addresses [" + join(addresses) + "], expected exactly " +
           (it == expected.end() ? "(none known)" : it->second) + " besides loopback");
    }
  }
  if (static_cast<int>(host_of.size()) != workers) {
    fail(std::to_string(host_of.size()) + " of the " + std::to_string(workers) + " worker ranks ran a task");
  }
  return host_of;
}

int run(int argc, char** argv) {
  // host -> address; the first argument is rank 0's host.
  std::map<std::string, std::string> expected;
  std::vector<std::string> order;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "usage: %s HOST=ADDRESS... (rank 0's host first)\n", argv[0]);
      return 2;
    }
    expected[a.substr(0, eq)] = a.substr(eq + 1);
    order.push_back(a.substr(0, eq));
  }
  if (order.size() < 2) {
    std::fprintf(stderr, "usage: %s HOST=ADDRESS... (rank 0's host first, at least one worker host)\n", argv[0]);
    return 2;
  }
  const std::string host0 = order.front();
  std::map<std::string, std::string> worker_hosts(expected);
  worker_hosts.erase(host0);

  const int workers = static_cast<int>(order.size()) - 1;
  if (mproc::mpi::size() != workers + 1) {
    fail("the job has " + std::to_string(mproc::mpi::size()) + " ranks, expected " + std::to_string(workers + 1));
    return 1;
  }

  const Where self = where_am_i(0);
  print("self  ", self);
  if (std::get<1>(self) != host0) fail("rank 0 runs on host " + std::get<1>(self) + ", expected " + host0);
  if (non_loopback(std::get<4>(self)) != std::set{expected[host0]}) {
    fail("rank 0 has addresses [" + join(std::get<4>(self)) + "], expected exactly " + expected[host0]);
  }

  mproc::mpi::Pool pool;
  // chunksize 1, one item per worker: each idle worker gets one chunk
  // before the pool waits for anything, so every worker rank answers.
  const auto first = pool.map_async(where_am_i, std::views::iota(0, workers), 1).get(kGuard);
  const auto host_of = check_workers(first, self, worker_hosts, workers);

  // Over TCP: rank 0's own process holds a connection to each worker host.
  const auto peers = tcp_peers_of_this_process();
  std::string seen;
  for (const auto& p : peers) seen += (seen.empty() ? "" : " ") + p;
  std::printf("rank 0's established TCP peers: %s\n", seen.empty() ? "(none)" : seen.c_str());
  for (const auto& [host, address] : worker_hosts) {
    if (peers.count(address) == 0) fail("rank 0 has no established TCP connection to " + host + " (" + address + ")");
  }

  // A task that kills itself on worker rank `target` costs that task only:
  // WorkerLostError naming the rank and its host, then the pool goes on.
  for (int target = 1; target <= workers; ++target) {
    const auto crash_on = [target](int) {
      if (mproc::mpi::rank() == target) ::raise(SIGKILL);
      return mproc::mpi::rank();
    };
    const auto host_it = host_of.find(target);
    const std::string host = host_it == host_of.end() ? "?" : host_it->second;
    try {
      const auto ranks = pool.map_async(crash_on, std::views::iota(0, workers), 1).get(kGuard);
      fail("a task that kills itself on rank " + std::to_string(target) + " returned (ranks that ran: " +
           std::to_string(ranks.size()) + ")");
    } catch (const mproc::WorkerLostError& e) {
      const std::string what = e.what();
      std::printf("crash on rank %d: WorkerLostError: %s\n", target, what.c_str());
      const std::string names = "on rank " + std::to_string(target) + " (host " + host + ")";
      if (what.find(names) == std::string::npos) fail("the error does not say \"" + names + "\": " + what);
      if (what.find("SIGKILL") == std::string::npos) fail("the error does not name SIGKILL: " + what);
    } catch (const std::exception& e) {
      fail("a task that kills itself on rank " + std::to_string(target) + " threw another error: " + e.what());
    }
  }
  const auto after = pool.map_async(where_am_i, std::views::iota(0, workers), 1).get(kGuard);
  const auto host_after = check_workers(after, self, worker_hosts, workers);
  if (host_after != host_of) fail("after the crashes the ranks run on other hosts than before");

  if (failures != 0) {
    std::printf("multihost: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("multihost: OK: %d worker ranks on %d other hosts, over TCP\n", workers, workers);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::mpi::init(argc, argv);  // worker ranks serve inside and exit there
  int code = 1;
  try {
    code = run(argc, argv);
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
  }
  std::fflush(stdout);
  return code;
}
