// What backfillctl reads from the target's __backfill outside a copy or verify job, and the
// throttle it writes: the migration's status, what an interrupted copy committed, which chunks
// this process's workers hold. With PgTaskStore (the jobs' reads and writes) and the stager,
// coordinator/ holds every statement on __backfill; the worker's fence and completion are the
// exception, as they must run in the copy's own transaction (worker/sql).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pg.h"
#include "coordinator/task_store.h"

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

// Per hypertable what the spec's progress query answers, which workers hold which chunks,
// failing chunks with their errors, recent throughput and an ETA. A target without __backfill
// is FailedPrecondition with a hint.
absl::StatusOr<MigrationStatus> ReadMigrationStatus(pg::Connection& target,
                                                    double window_seconds = 60);

struct CopiedChunk {
  std::string chunk;
  int64_t rows = 0, bytes = 0;
};

struct CopyRunSummary {
  std::vector<CopiedChunk> copied;  // oldest first
  int64_t left = 0;                 // tasks not done
  int64_t total = 0;
};

// The chunks whose copy committed within the last `seconds` (on the target's clock), and what
// is left. nullopt when nothing is staged.
absl::StatusOr<std::optional<CopyRunSummary>> ReadCopiedSince(pg::Connection& target,
                                                              double seconds);

// The tasks workers whose ids start with `worker_prefix` hold and have not finished.
absl::StatusOr<std::vector<int64_t>> HeldTasks(pg::Connection& target,
                                               const std::string& worker_prefix);

struct TaskOutcome {
  std::string chunk;
  bool committed = false;
};
// Whether each task's copy committed.
absl::StatusOr<std::vector<TaskOutcome>> TaskOutcomes(pg::Connection& target,
                                                      const std::vector<int64_t>& task_ids);

// Changes the stored throttle (nullopt: as it is) and returns it; a running copy's
// coordinator picks the change up within its progress interval. FailedPrecondition with a hint
// when nothing is staged.
absl::StatusOr<Throttle> StoreThrottle(pg::Connection& target,
                                       std::optional<int64_t> max_bytes_per_second,
                                       std::optional<int32_t> max_chunks_per_hypertable);

// Drops __backfill (clean); whether it existed.
absl::StatusOr<bool> DropTaskSchema(pg::Connection& target);

}  // namespace backfill
