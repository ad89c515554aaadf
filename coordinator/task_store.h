// The coordinator's view of __backfill: every read and write of tasks, leases, counts and the
// throttle that a copy or verify job makes, as named methods returning structs. PgTaskStore
// (the target's __backfill schema) is the production one; MemoryTaskStore keeps the same
// rules in memory, for unit tests of the coordinator without PostgreSQL. The same contract
// test (task_store_contract_test.cc) runs against both.
//
// Time comes from the caller (`now`): leases and back-off are measured on the coordinator's
// clock, so that a test can move it.
//
// Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backfill.pb.h"

namespace backfill {

enum class Work { kCopy, kVerify };

// A target database session: its pid and start time (as the database prints it), so that a
// reused pid is never mistaken for it.
struct TargetSession {
  int32_t pid = 0;
  std::string start;
};

// One lease as its holder names it.
struct LeaseRef {
  int64_t task_id = 0;
  int64_t epoch = 0;
  std::string worker_id;
};

struct LeaseRequest {
  std::string worker_id;
  Work work = Work::kCopy;
  absl::Duration lease_timeout = absl::Seconds(30);
  // Tasks that failed this many times are not granted.
  int max_attempts = 10;
  // Copies only: at most this many leased tasks of one hypertable at once; 0: no cap.
  int max_per_hypertable = 0;
  absl::Time now;
};

struct Grant {
  v1::Task task;  // with the new epoch
};

// A job's tasks by state. For a verify job, total counts the copied tasks and done the
// verified ones.
struct TaskCounts {
  int64_t total = 0;
  int64_t done = 0;
  int64_t failed = 0;      // attempts used up
  int64_t leased = 0;      // held by a live lease
  int64_t rows = 0;        // copy only
  int64_t bytes = 0;       // copy only
  int64_t mismatches = 0;  // verify only
};

struct FailedTask {
  std::string chunk;  // "schema.name"
  std::string hypertable;
  std::string error;
};

// What a sweep did: leases released because their holder's session is gone, the target
// sessions of expired leases ended (a stopped worker's open transaction holds row locks the
// next holder needs), and expired leases given up (free to be granted again after a back-off;
// the expiry counts as a failed attempt).
struct Sweep {
  int64_t released = 0;
  struct Lease {
    int64_t task_id = 0;
    std::string chunk;
    std::string holder;
    int attempts = 0;  // given up: the task's attempts, this expiry's included
  };
  std::vector<Lease> ended;    // sessions ended
  std::vector<Lease> expired;  // leases given up
};

struct Throttle {
  int64_t max_bytes_per_second = 0;       // 0: no limit
  int32_t max_chunks_per_hypertable = 0;  // 0: no cap
};

// One verified task's stored report.
struct VerifyRecord {
  std::string report_json;  // a ChunkVerification as JSON; "" when the verification failed
  std::string error;
  std::string hypertable;
  std::string source_chunk;
  std::string target_chunk;
};

class TaskStore {
 public:
  virtual ~TaskStore() = default;

  // --- leases (every call of a worker goes through one of these) ---
  // The next grantable task for `request.work`, its epoch bumped; nullopt when none is.
  // Copies: the largest pending task first; a task is grantable when nobody holds it (an
  // expired lease is given up by SweepLeases first), its back-off after a failure is over and
  // its attempts are not used up.
  virtual absl::StatusOr<std::optional<Grant>> Lease(const LeaseRequest& request) = 0;
  // Whether the lease is still the holder's; extends it to now + timeout when it runs, and
  // records the holder's target session (`backend_pid`) when given. A lease the holder
  // completed at this epoch is still held (and not extended).
  virtual absl::StatusOr<bool> ExtendLease(const LeaseRef& lease, absl::Duration timeout,
                                           absl::Time now, std::optional<int32_t> backend_pid) = 0;
  // Whether this worker holds, or held until it completed, the task at this epoch.
  virtual absl::StatusOr<bool> HoldsLease(const LeaseRef& lease) = 0;
  // The holder failed: the lease ends and the error is kept. A retryable failure holds the
  // task back 0.5 s doubling per attempt up to 30 s; another uses up the attempts at once.
  // False when the lease is not the holder's (nothing changed).
  virtual absl::StatusOr<bool> RecordFailure(const LeaseRef& lease, const std::string& error,
                                             bool retryable, int max_attempts, absl::Time now) = 0;
  // The holder gave the copy or verification up unfinished (rolled back): the lease ends, no
  // attempt counted.
  virtual absl::StatusOr<bool> ReleaseLease(const LeaseRef& lease) = 0;
  // Releases leases whose holder's session is gone (they expire now), ends the target
  // sessions of expired leases, then gives up the leases of `work` that expired (a lease still
  // locked by its holder's transaction waits for a later sweep). Each expiry counts as a
  // retryable failure: an attempt, and the same back-off.
  virtual absl::StatusOr<Sweep> SweepLeases(Work work, int max_attempts, absl::Time now) = 0;

  // --- progress ---
  virtual absl::StatusOr<TaskCounts> Counts(Work work, int max_attempts, absl::Time now) = 0;
  // Pending tasks whose attempts are used up, in task order.
  virtual absl::StatusOr<std::vector<FailedTask>> FailedTasks(int max_attempts) = 0;
  // nullopt when the target has no throttle table (an older schema): not throttled.
  virtual absl::StatusOr<std::optional<Throttle>> ReadThrottle() = 0;

  // --- opening a job ---
  // Brings the schema up to this release's (numbered migrations); fails when a newer release
  // staged the target.
  virtual absl::Status Migrate() = 0;
  // A new copy gives failed tasks their attempts back.
  virtual absl::Status ResetFailed() = 0;
  // Sets the throttle's fields that are given; keeps the others.
  virtual absl::Status SetThrottle(std::optional<int64_t> max_bytes_per_second,
                                   std::optional<int32_t> max_chunks_per_hypertable) = 0;
  // copy --repair: re-opens the tasks the last verify found different (epoch bumped) and
  // returns their chunks, sorted; FailedPrecondition when no task was ever verified.
  virtual absl::StatusOr<std::vector<std::string>> ReopenMismatched() = 0;
  // Forgets every copied task's verification; returns how many copied tasks there are.
  virtual absl::StatusOr<int64_t> ResetVerify() = 0;
  virtual absl::StatusOr<std::vector<VerifyRecord>> VerifyRecords() = 0;
};

}  // namespace backfill
