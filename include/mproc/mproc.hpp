// mproc.hpp: everything. Python's multiprocessing, done right, for C++20.
// This header only includes the others; each one holds one concept.
#pragma once

#include "mproc/errors.hpp"
#include "mproc/process.hpp"
#include "mproc/serialize.hpp"
#include "mproc/start_method.hpp"
#include "mproc/async_result.hpp"
#include "mproc/pool.hpp"
#include "mproc/thread_pool.hpp"
#include "mproc/shared_memory.hpp"
#include "mproc/shared_value.hpp"
#include "mproc/sync.hpp"
#include "mproc/connection.hpp"
#include "mproc/pipe.hpp"
#include "mproc/queue.hpp"
#include "mproc/simple_queue.hpp"
#include "mproc/joinable_queue.hpp"
#include "mproc/wait.hpp"
#include "mproc/listener.hpp"
