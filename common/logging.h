// Process-wide logging setup shared by the three programs.
#pragma once

namespace backfill {

// Routes glog to stderr (no log files), at INFO when `verbose` and WARNING otherwise, with
// `program` as the tag. Call once, first thing in main().
void InitLogging(const char* program, int verbosity);

}  // namespace backfill
