// Process-wide logging setup shared by the three programs.
#pragma once

namespace backfill {

// Routes glog to stderr (no log files), with `program` as the tag: at INFO with a verbosity,
// otherwise at WARNING, or at ERROR for a program whose users read its own messages
// (backfillctl: `quiet_warnings`), which then sees log lines only with -v. Call once, first
// thing in main().
void InitLogging(const char* program, int verbosity, bool quiet_warnings = false);

}  // namespace backfill
