// SIGINT/SIGTERM handling for the three programs, done on a dedicated thread with sigwait so
// callbacks may take locks and log.
//
// The first SIGINT or SIGTERM calls `on_graceful`; a second SIGINT calls `on_immediate`.
// Install before starting any other thread: the signals are blocked in the caller, and the
// threads it starts afterwards inherit the mask.
#pragma once

#include <functional>

namespace backfill {

void WatchTerminationSignals(std::function<void()> on_graceful, std::function<void()> on_immediate);

}  // namespace backfill
