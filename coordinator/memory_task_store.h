// TaskStore in memory, with the rules of PgTaskStore's statements, for unit tests of the
// coordinator without PostgreSQL. The contract test (task_store_contract_test.cc) holds both
// to the same behaviour.
//
// Besides the coordinator's side it plays the target's: the worker's completing statements
// (Complete, CompleteVerify, as complete_task.sql and complete_verify.sql) and the target's
// sessions (OpenSession, CloseSession), which sweeps and grants look at.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/task_store.h"

namespace backfill {

struct TaskSpec {
  std::string hypertable_schema = "public";
  std::string hypertable_name;
  std::string chunk_schema = "_timescaledb_internal";
  std::string chunk_name;
  std::optional<int64_t> source_bytes;
};

class MemoryTaskStore : public TaskStore {
 public:
  // --- the stager's and the target's side ---
  int64_t Add(const TaskSpec& spec);
  // complete_task.sql: the copy committed, if the epoch is still the task's.
  bool Complete(int64_t task_id, int64_t epoch, int64_t rows, int64_t bytes);
  // complete_verify.sql.
  bool CompleteVerify(int64_t task_id, int64_t epoch, bool matches, const std::string& report);
  TargetSession OpenSession();
  void CloseSession(const TargetSession& session);
  bool SessionAlive(const TargetSession& session);
  // The schema version a migration finds; a later one than kTaskSchemaVersion is refused.
  void SetSchemaVersion(int version);

  // --- TaskStore ---
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
  struct Task {
    TaskSpec spec;
    bool worked = false;
    int64_t rows = 0;
    int64_t bytes = 0;
    int64_t epoch = 0;
    std::string holder;   // "" for NULL
    std::string done_by;  // who completed the copy or verification at `epoch`
    std::optional<absl::Time> expires;
    int attempts = 0;
    std::string last_error;
    std::optional<int32_t> session_pid;
    std::string session_start;
    bool verified = false;
    std::optional<bool> matches;
    std::string report;
  };
  // The task if `lease` holds it now.
  Task* Find(const LeaseRef& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The task if `lease` holds it now or completed it at its epoch.
  Task* FindHeldOrDone(const LeaseRef& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool LeaseLive(const Task& task, absl::Time now) const {
    return task.expires.has_value() && *task.expires > now && !task.holder.empty();
  }
  bool Alive(int32_t pid, const std::string& start) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<int64_t, Task> tasks_ ABSL_GUARDED_BY(mu_);  // by task id
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int32_t, std::string> sessions_ ABSL_GUARDED_BY(mu_);  // live: pid -> start
  int32_t next_pid_ ABSL_GUARDED_BY(mu_) = 1000;
  Throttle throttle_ ABSL_GUARDED_BY(mu_);
  int schema_version_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace backfill
