// process_transport.hpp: pool workers as local processes (see
// detail/transport.hpp for the interface and its contract).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mproc/detail/pool_worker.hpp"
#include "mproc/detail/transport.hpp"
#include "mproc/process.hpp"

namespace mproc::detail {

struct ProcessTransportOptions {
  std::size_t processes = 1;
  StartMethod start_method = StartMethod::fork;
  std::uint32_t maxtasksperchild = 0;
  bool flush_each_item = false;
};

std::unique_ptr<Transport> make_process_transport(const ProcessTransportOptions& options);

}  // namespace mproc::detail
