// pool.cpp: the non-template part of mproc::Pool: choosing the transport.

#include "mproc/pool.hpp"

#include "process_transport.hpp"

namespace mproc {

void Pool::start_core(std::size_t processes, StartMethod method, std::size_t maxtasks,
                      std::optional<std::chrono::nanoseconds> timeout, detail::Writer init,
                      std::shared_ptr<const void> keepalive, std::function<void(std::exception_ptr)> on_cb_error) {
  if (processes == 0) throw Error("mproc::Pool: the number of processes must be at least 1");
  if (method != StartMethod::fork) detail::require_init("mproc::Pool with the spawn or forkserver start method");
  if (timeout && timeout->count() <= 0) throw Error("mproc::Pool: task_timeout must be positive");
  detail::ProcessTransportOptions t;
  t.processes = processes;
  t.start_method = method;
  t.maxtasksperchild = static_cast<std::uint32_t>(maxtasks);
  t.flush_each_item = timeout.has_value();
  detail::PoolCoreOptions c;
  c.task_timeout = timeout;
  c.init_fds = init.fds();
  c.init_message = std::move(init.buffer());
  c.init_keepalive = std::move(keepalive);
  c.on_callback_error = std::move(on_cb_error);
  core_ = std::make_unique<detail::PoolCore>(detail::make_process_transport(t), std::move(c));
}

}  // namespace mproc
