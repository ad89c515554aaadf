// The worker loop: lease a task from the coordinator, copy it, heartbeat while copying,
// report, repeat. Stateless: everything it knows comes with the lease. The work itself, and
// the database sessions it runs on, belong to a TaskExecutor (task_executor.h).
//
// Thread-safety: Run() on one thread; Stop() from any thread.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/rate_limiter.h"
#include "worker/coordinator_client.h"
#include "worker/metrics.h"
#include "worker/task_executor.h"

namespace backfill {

class SourceSideConnector;

struct WorkerOptions {
  std::string name;  // shown in status and logs, e.g. host:pid
  // When set, used instead of the connection strings the coordinator hands out (a worker
  // that reaches the databases by other addresses).
  std::string source_override;
  std::string target_override;
  std::string application_name = "backfill-worker";
  // Fresh database sessions after this many tasks, so that the catalog caches a long session
  // builds up (every chunk it touched) stay small.
  int reconnect_every = 1000;
  // Opens the source sessions of leases paired with a source-side worker; null: such leases
  // read the source directly.
  std::shared_ptr<SourceSideConnector> source_side;
  // Pause after a coordinator call fails before trying again.
  absl::Duration retry_delay = absl::Milliseconds(500);
};

class Worker {
 public:
  // `metrics` may be shared by several workers in one process; null: metrics are kept in a
  // registry nobody reads. `executor` null: a PgTaskExecutor with the options' overrides.
  Worker(WorkerOptions options, CoordinatorClient* client,
         std::shared_ptr<WorkerMetrics> metrics = nullptr,
         std::unique_ptr<TaskExecutor> executor = nullptr);

  // Leases and copies tasks until Stop(). A task in progress is finished first.
  void Run();

  // Asks Run() to return once the task in progress, if any, is done.
  void Stop();

  // Stops at once: the statements of the task in progress are cancelled until the task gives
  // up, so its transaction rolls back (a COMMIT already under way completes). Returns once no
  // task is in progress, false when one still is after `timeout`. Any thread.
  bool Abort(absl::Duration timeout);

 private:
  void RunLoop();
  // Sleeps up to `d`; false when Stop() was called meanwhile.
  bool SleepUnlessStopped(absl::Duration d);
  void RunTask(const v1::LeaseTaskResponse& lease);
  void RecordMetrics(const v1::ReportTaskRequest& report, absl::Duration took);
  void LogOutcome(const std::string& chunk, const v1::ReportTaskRequest& report,
                  absl::Duration took);

  const WorkerOptions options_;
  CoordinatorClient* const client_;
  const std::shared_ptr<WorkerMetrics> metrics_;
  std::string worker_id_;
  absl::Duration heartbeat_interval_ = absl::Seconds(5);

  const std::unique_ptr<TaskExecutor> executor_;
  int tasks_on_connections_ = 0;
  // Paces copies to the coordinator's share of --max-rate; updated by lease and heartbeats.
  RateLimiter limiter_;
  // Applies a rate from the coordinator; logs a change.
  void SetRate(int64_t bytes_per_second);

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool aborting_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // inside Run()
  // The executor is running a task: Abort() cancels it.
  bool in_task_ ABSL_GUARDED_BY(mu_) = false;
};

// host:pid, for worker names.
std::string DefaultWorkerName();

}  // namespace backfill
