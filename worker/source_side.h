// backfill-worker --source-side: serves source sessions (source_side_server.h) and tells the
// coordinator where, every heartbeat interval, until a signal. The first SIGINT/SIGTERM
// refuses new sessions and exits once those held have ended; the second exits at once (their
// attempts fail and are tried again, the target transaction being the only writer).
#pragma once

#include <string>

#include "proto/credentials.h"

namespace backfill {

struct SourceSideRun {
  std::string coordinator;  // HOST:PORT
  std::string token;
  TlsFiles tls;  // the client's toward the coordinator, the server's toward the workers
  std::string name;
  std::string listen;     // HOST:PORT served
  std::string advertise;  // HOST:PORT the target-side workers dial
  std::string source;     // the source's connection string: the only database it reads
  std::string application_name = "backfill-worker";
};

// Runs until stopped by a signal; the process's exit code.
int RunSourceSide(const SourceSideRun& run);

}  // namespace backfill
