// sync.hpp: every synchronization primitive shared between processes
// (Python's multiprocessing.synchronize): Lock and RLock (lock.hpp),
// Semaphore and BoundedSemaphore (semaphore.hpp), Condition
// (condition.hpp), Event (event.hpp) and Barrier (barrier.hpp). Each has
// its own header; this one only includes them.
#pragma once

#include "mproc/barrier.hpp"
#include "mproc/condition.hpp"
#include "mproc/event.hpp"
#include "mproc/lock.hpp"
#include "mproc/semaphore.hpp"
