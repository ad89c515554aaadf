// TaskStore on the target's __backfill schema: each method one statement (sql/*.sql) on a
// pooled connection.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/connection_pool.h"
#include "common/pg.h"
#include "coordinator/lease_batcher.h"
#include "coordinator/task_store.h"

namespace backfill {

// The layout this release writes. Migration N (1-based) brings version N-1 to N; version 0 is
// a target staged before versions were kept, whatever columns it has.
inline constexpr int kTaskSchemaVersion = 5;

// Creates __backfill or brings it to kTaskSchemaVersion, in one transaction that takes turns
// with other migrations. FailedPrecondition when a newer release wrote a later version.
absl::Status MigrateTaskSchema(pg::Connection& target);

// "YYYY-MM-DD HH:MM:SS.ffffff+00", for a timestamptz parameter.
std::string TimestampParam(absl::Time t);

class PgTaskStore : public TaskStore {
 public:
  explicit PgTaskStore(std::shared_ptr<ConnectionPool> pool);

  // Concurrent calls are granted together, by one statement (LeaseBatcher).

  absl::StatusOr<std::optional<Grant>> Lease(const LeaseRequest& request) override;
  absl::StatusOr<bool> ExtendLease(const LeaseRef& lease, absl::Duration timeout, absl::Time now,
                                   std::optional<int32_t> backend_pid) override;
  absl::StatusOr<bool> HoldsLease(const LeaseRef& lease) override;
  absl::StatusOr<bool> RecordFailure(const LeaseRef& lease, const std::string& error,
                                     bool retryable, int max_attempts, absl::Time now) override;
  absl::StatusOr<bool> ReleaseLease(const LeaseRef& lease) override;
  absl::StatusOr<Sweep> SweepLeases(Work work, int max_attempts, absl::Time now) override;

  absl::StatusOr<TaskCounts> Counts(Work work, int max_attempts, absl::Time now) override;
  absl::StatusOr<std::vector<FailedTask>> FailedTasks(int max_attempts) override;
  absl::StatusOr<std::optional<Throttle>> ReadThrottle() override;

  absl::Status Migrate() override;
  absl::Status ResetFailed() override;
  absl::Status SetThrottle(std::optional<int64_t> max_bytes_per_second,
                           std::optional<int32_t> max_chunks_per_hypertable) override;
  absl::StatusOr<std::vector<std::string>> ReopenMismatched() override;
  absl::StatusOr<int64_t> ResetVerify() override;
  absl::StatusOr<std::vector<VerifyRecord>> VerifyRecords() override;

 private:
  absl::StatusOr<pg::Result> Exec(absl::string_view sql, const std::vector<pg::Param>& params = {});
  // One statement granting a task to each of `workers` that one is left for.
  absl::StatusOr<std::vector<std::optional<Grant>>> GrantTo(
      const LeaseRequest& settings, const std::vector<std::string>& workers);

  const std::shared_ptr<ConnectionPool> pool_;
  // Held around a grant under a per-hypertable cap.
  absl::Mutex capped_mu_;
  LeaseBatcher batcher_;
};

}  // namespace backfill
