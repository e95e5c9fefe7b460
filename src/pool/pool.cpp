// pool.cpp: the non-template part of mproc::Pool: choosing the transport.

#include "mproc/pool.hpp"

#include <limits>
#include <string>

#include "process_transport.hpp"

namespace mproc {
namespace {

std::unique_ptr<detail::Transport> local_processes(const detail::TransportRequest& r) {
  if (r.start_method != StartMethod::fork) {
    detail::require_init("mproc::Pool with the spawn or forkserver start method");
  }
  detail::ProcessTransportOptions t;
  t.processes = r.processes == 0 ? cpu_count() : r.processes;
  t.start_method = r.start_method;
  t.maxtasksperchild = r.maxtasksperchild;
  t.flush_each_item = r.flush_each_item;
  return detail::make_process_transport(t);
}

}  // namespace

void detail::check_pool_size(std::size_t n, const char* who) {
  if (n == 0) throw Error(std::string(who) + ": the number of processes must be at least 1");
  if (n > kMaxPoolSize) {
    throw Error(std::string(who) + ": " + std::to_string(n) + " processes asked for; at most " +
                std::to_string(kMaxPoolSize) + (n > (std::size_t{1} << 63) ? " (a negative number?)" : ""));
  }
}

void detail::check_maxtasksperchild(std::size_t n, const char* who) {
  if (n > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(std::string(who) + ": maxtasksperchild " + std::to_string(n) + " is too large (0 means no limit)" +
                (n > (std::size_t{1} << 63) ? "; a negative number?" : ""));
  }
}

std::size_t detail::checked_imap_chunksize(std::size_t chunksize, const char* who) {
  if (chunksize > static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max())) {
    throw Error(std::string(who) + ": chunksize must be at least 1 (got " + std::to_string(chunksize) +
                ", a negative number?)");
  }
  return std::max<std::size_t>(chunksize, 1);
}

void Pool::start_core(std::size_t processes, StartMethod method, std::size_t maxtasks,
                      std::optional<std::chrono::nanoseconds> timeout, detail::Writer init,
                      std::shared_ptr<const void> keepalive, std::function<void(std::exception_ptr)> on_cb_error,
                      detail::TransportFactory make) {
  if (timeout && timeout->count() <= 0) throw Error("mproc::Pool: task_timeout must be positive");
  if (processes != 0) detail::check_pool_size(processes, "mproc::Pool");  // 0: the transport's default
  detail::check_maxtasksperchild(maxtasks, "mproc::Pool");
  detail::TransportRequest request;
  request.processes = processes;
  request.start_method = method;
  request.maxtasksperchild = static_cast<std::uint32_t>(maxtasks);
  request.flush_each_item = timeout.has_value();
  if (!make) make = local_processes;
  detail::PoolCoreOptions c;
  c.task_timeout = timeout;
  c.init_fds = init.fds();
  c.init_message = init.to_vector();
  c.init_keepalive = std::move(keepalive);
  c.on_callback_error = std::move(on_cb_error);
  core_ = std::make_unique<detail::PoolCore>(make(request), std::move(c));
}

}  // namespace mproc
