// The coordinator's logic, free of gRPC: stage, lease, heartbeat, report, copy progress,
// verify, clean. It keeps no state that matters across restarts: tasks, leases and epochs
// live in the target's __backfill.task. What it holds in memory (the copy job in progress,
// recent task events for progress output) is rebuilt when backfillctl asks again.
//
// Thread-safe: every method may be called concurrently (gRPC serves them on a thread pool).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backfill.pb.h"
#include "common/clock.h"
#include "common/pg.h"
#include "coordinator/job.h"
#include "coordinator/metrics.h"
#include "coordinator/preflight.h"
#include "coordinator/source_sides.h"
#include "coordinator/task_store.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace backfill {

struct CoordinatorOptions {
  // A lease not extended by a heartbeat within this time is granted again.
  absl::Duration lease_timeout = absl::Seconds(30);
  absl::Duration heartbeat_interval = absl::Seconds(5);
  // How long a worker with nothing to do waits before asking again.
  absl::Duration idle_retry = absl::Milliseconds(200);
  // While no copy or verify runs, a lease request waits this long for one to open before it
  // answers WAIT: workers start on a new job at once instead of at their next poll.
  absl::Duration job_wait = absl::Seconds(2);
  absl::Duration progress_interval = absl::Milliseconds(250);
  // A task that failed this many times is left for the next copy. Retryable failures are
  // retried with a growing delay (0.5 s doubling up to 30 s): 10 attempts ride out about two
  // minutes of a database being unreachable.
  int max_attempts = 10;
  // How long Copy and Verify keep waiting for the target while it is unreachable.
  absl::Duration target_outage_tolerance = absl::Minutes(2);
  std::string application_name = "backfill-coordinator";
};

// Opens the task store of a job's target after the checks a job needs (PostgreSQL: both
// databases reachable with the same TimescaleDB, room for the planned workers, no scheduled
// jobs in the way). NotFound when the target has no __backfill schema.
using StoreOpener = std::function<absl::StatusOr<JobStore>(const v1::Databases& databases,
                                                           const JobChecks& checks)>;

class Coordinator {
 public:
  // `clock` (not owned; the real clock when null) measures leases, back-off and the
  // connected-workers window. `open_store` opens a job's TaskStore; null: the target's
  // __backfill schema (PostgreSQL).
  explicit Coordinator(CoordinatorOptions options, const Clock* clock = nullptr,
                       StoreOpener open_store = nullptr);

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request);
  // TASK with a granted lease while a copy runs and a task is free; WAIT otherwise.
  absl::StatusOr<v1::LeaseTaskResponse> LeaseTask(const v1::LeaseTaskRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  absl::Status ReportTask(const v1::ReportTaskRequest& request);
  // A source-side worker's sign of life; `known` false asks it to register again.
  absl::StatusOr<v1::SourceSideHeartbeatResponse> SourceSideHeartbeat(
      const v1::SourceSideHeartbeatRequest& request);

  absl::StatusOr<v1::StageResponse> Stage(const v1::StageRequest& request);
  // Opens (or joins) the copy job for the request's target and serves leases for it until no
  // task is pending, sending progress through `emit` every progress_interval. Returns early
  // when `emit` returns false (the caller went away); workers then get no new leases.
  absl::Status Copy(const v1::CopyRequest& request,
                    const std::function<bool(const v1::CopyProgress&)>& emit);
  // Opens a verify job: every copied task is verified again, leased to workers like copies;
  // returns the report once all are done. Progress goes through `emit` every
  // progress_interval; `emit` returning false (the caller went away) stops it early with
  // kCancelled.
  absl::StatusOr<v1::VerifyResponse> Verify(
      const v1::VerifyRequest& request, const std::function<bool(const v1::CopyProgress&)>& emit);
  absl::StatusOr<v1::CleanResponse> Clean(const v1::CleanRequest& request);
  absl::StatusOr<v1::RefreshCaggsResponse> RefreshCaggs(const v1::RefreshCaggsRequest& request);

  // Answers the lease requests waiting for a job at once (WAIT); for shutting down.
  void Close();

  // The metrics this coordinator keeps, for a MetricsServer to serve.
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

 private:
  struct Sessions {
    std::unique_ptr<pg::Connection> source, target;
  };
  absl::StatusOr<Sessions> OpenBoth(const v1::Databases& databases) const;
  absl::StatusOr<std::unique_ptr<pg::Connection>> Open(const std::string& conninfo,
                                                       const std::string& role) const;
  // The job's store after its checks, with `no_schema_message` when there is no schema.
  absl::StatusOr<JobStore> OpenStore(const v1::Databases& databases,
                                     absl::string_view no_schema_message, const JobChecks& checks);
  // Releases leases whose holder's target session is gone, gives up expired leases of `work`
  // and ends their holders' target sessions; run from the progress loop. Problems are
  // logged, not returned.
  void SweepLeases(TaskStore& store, Work work);
  // The job's counts (after a sweep and a throttle read), into the gauges.
  absl::StatusOr<TaskCounts> ReadCounts(TaskStore& store, Work work);
  // The progress loop of copy and verify: reads the counts every progress_interval (or at once
  // when a worker reports), sends them with the events through `emit` until every task is
  // done or failed, and returns the last message (not sent). The job stays joined.
  absl::StatusOr<v1::CopyProgress> Follow(const std::shared_ptr<const Job>& job,
                                          std::vector<std::string> reopened,
                                          const std::function<bool(const v1::CopyProgress&)>& emit);

  // Records that `worker_id` called, for the connected-workers gauge.
  void SawWorker(const std::string& worker_id);
  // One worker's share of the throttled rate: the rate split over the connected workers
  // (busy or not, so the sum never exceeds it); 0 when not throttled.
  int64_t RateShare();
  // Reads the throttle into the members below; logs a change.
  void ReadThrottle(TaskStore& store);

  const CoordinatorOptions options_;
  const Clock& clock_;
  const StoreOpener open_store_;
  const std::shared_ptr<prometheus::Registry> registry_;
  CoordinatorMetrics metrics_;
  WorkerTracker workers_;
  // Source-side workers (they lease nothing), and the lease each reads for.
  SourceSides source_sides_;
  std::atomic<int64_t> workers_registered_{0};
  JobRegistry jobs_;
  absl::Mutex mu_;
  // After a lease found nothing grantable, lease requests answer WAIT without asking the
  // store until this time (one progress interval), but for one request per task a report or a
  // sweep may have freed meanwhile (`freed_`): idle workers polling cost the target one
  // statement per interval, and workers waiting under a per-hypertable cap one per freed
  // slot, not one per poll. What becomes grantable by expiry alone is granted at most an
  // interval late.
  absl::Time nothing_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t freed_ ABSL_GUARDED_BY(mu_) = 0;
  // `n` tasks may have become grantable (reports, sweeps).
  void MayHaveFreed(int64_t n);
  // Anything may be grantable (a new job, a different cap).
  void ForgetNothingGrantable() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The throttle as last read by a progress loop.
  int64_t max_bytes_per_second_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t max_chunks_per_hypertable_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace backfill
