// backfillctl's commands: each drives a coordinator (a running one, or one embedded in this
// process with local workers) and turns its answers into output and an exit code.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "backfill.pb.h"

namespace backfill {

// Documented in README.md ("Exit codes").
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,           // a command failed; the message says why
  kExitUsage = 2,           // bad flags or arguments
  kExitVerifyMismatch = 3,  // verify found differences
  kExitTasksFailed = 4,     // copy ended with failed tasks; run copy again to retry them
  kExitInterrupted = 130,   // stopped by SIGINT/SIGTERM
};

struct CtlOptions {
  std::string command;      // stage, copy, verify, refresh-caggs, clean
  bool check_args = false;  // --check-args: validate, then exit
  v1::Databases databases;
  std::string until;
  std::string from;  // stage: only rows at or after it
  std::string filter;
  bool cascade_up = false;
  bool cascade_down = false;
  bool dry_run = false;            // stage: plan and report only
  double throughput_mib = 0;       // stage --dry-run: MiB/s for the estimate; 0: measure
  bool allow_active_jobs = false;  // stage, copy: go ahead despite scheduled policies
  // stage: replace target rows below --until that this tool did not copy (dual writes)
  bool replace_target_rows = false;
  bool repair = false;        // copy: first re-open the chunks the last verify found different
  bool no_bulk_load = false;  // copy: whole plain chunks row by row into their indexes
  // copy, throttle: bytes per second for all workers together (0: no limit), and chunks of
  // one hypertable copied at once (0: no cap); -1: leave as stored.
  int64_t max_rate = -1;
  int max_chunks_per_hypertable = -1;
  int parallelism = 8;    // embedded mode only: local workers
  bool row_hash = false;  // verify: also compare a hash of every row
  bool json = false;      // copy: JSON lines; verify: the report as JSON
  bool quiet = false;     // copy, verify: no progress, only the outcome
  bool verbose = false;   // copy on a terminal: also list every chunk above the bar
  // Without a terminal, how often copy and verify print a progress line.
  absl::Duration progress_interval = absl::Seconds(10);
  std::string coordinator;  // HOST:PORT of a running coordinator; empty = embedded
  // Bearer token for a running coordinator (from --token-file or BACKFILL_TOKEN).
  std::string token;
  // TLS to a running coordinator: the CA that signed its certificate (and, when it requires
  // one, this client's certificate and key). Empty: plaintext.
  std::string tls_ca, tls_cert, tls_key;
  // copy: how long to keep reconnecting to a coordinator that went away mid-copy.
  absl::Duration reconnect_timeout = absl::Minutes(5);
};

int RunCommand(const CtlOptions& options);

}  // namespace backfill
