// `backfillctl status`: the state of a migration, read from the target's __backfill schema
// alone (no coordinator needed): per hypertable what the spec's progress query answers, which
// workers hold which chunks, failing chunks with their errors, recent throughput and an ETA.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pg.h"

namespace backfill {

struct HypertableStatus {
  std::string schema, name;
  std::string display;  // as the user knows it: a continuous aggregate's view
  int64_t total = 0, finished = 0, pending = 0, in_progress = 0, failing = 0;
  int64_t rows = 0, bytes = 0, verified = 0, differ = 0;
};

struct LeaseStatus {
  std::string worker, chunk, work;  // work: "copy" or "verify"
  double expires_in_seconds = 0;
  int64_t epoch = 0;
};

struct FailingChunk {
  std::string chunk, hypertable, error;
  int64_t attempts = 0;
};

struct MigrationStatus {
  std::vector<HypertableStatus> hypertables;
  HypertableStatus totals;
  std::vector<LeaseStatus> leases;
  std::vector<FailingChunk> failing;
  // Throughput of the copies that finished within the last `window_seconds` (or since the
  // first of them started, if later).
  double window_seconds = 0;
  double chunks_per_second = 0, rows_per_second = 0, bytes_per_second = 0;
  // Time left for the pending chunks at that rate; nullopt when nothing finished recently.
  std::optional<double> eta_seconds;
};

// Reads the status; a target without __backfill is an error with a hint.
absl::StatusOr<MigrationStatus> ReadMigrationStatus(pg::Connection& target,
                                                    double window_seconds = 60);
std::string FormatStatusText(const MigrationStatus& status);
std::string FormatStatusJson(const MigrationStatus& status);

}  // namespace backfill
