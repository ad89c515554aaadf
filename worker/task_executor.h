// What a worker does with a leased task, on database sessions it keeps between tasks. The
// worker loop (worker.h) owns leases, heartbeats, stops and reports; an executor owns the
// sessions and the work. PgTaskExecutor (pg_task_executor.h) copies and verifies over
// PostgreSQL; tests substitute their own to drive the loop without a database.
//
// Thread-safety: Connect, TargetBackendPid, Run and Disconnect are called on the worker's
// thread. Cancel may be called from any thread while Run is in progress.
#pragma once

#include "absl/status/status.h"
#include "backfill.pb.h"
#include "common/rate_limiter.h"

namespace backfill {

class TaskExecutor {
 public:
  virtual ~TaskExecutor() = default;

  // Opens the sessions the leased task needs, or keeps the current ones while they are
  // healthy and point at the same databases. A lease paired with a source-side worker reads
  // its source through that worker, on a session opened for the task.
  virtual absl::Status Connect(const v1::LeaseTaskResponse& lease) = 0;

  // The target session's backend pid: the first heartbeat of a task tells the coordinator
  // which session holds the lease.
  virtual int TargetBackendPid() const = 0;

  // Copies or verifies the leased task (lease.work()) on the connected sessions and fills the
  // report's outcome, counts and error. A copy paces its data through `limiter`. Returns with
  // no transaction open.
  virtual void Run(const v1::LeaseTaskResponse& lease, RateLimiter* limiter,
                   v1::ReportTaskRequest* report) = 0;

  // Cancels the statement Run is executing, if any: the task gives up and rolls back. A
  // cancel that lands between statements is lost, so callers repeat it until Run returns.
  virtual void Cancel() = 0;

  // Drops the sessions: the next Connect opens fresh ones.
  virtual void Disconnect() = 0;
};

}  // namespace backfill
