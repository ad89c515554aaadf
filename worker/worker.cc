#include "worker/worker.h"

#include <glog/logging.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/pg.h"
#include "common/quote.h"
#include "worker/pg_task_executor.h"
#include "worker/source_side_session.h"

namespace backfill {

std::string DefaultWorkerName() {
  char host[256] = {};
  (void)gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, ":", getpid());
}

namespace {

std::shared_ptr<WorkerMetrics> PrivateMetrics() {
  // The registry must outlive the metrics that point into it: keep both in one object.
  struct Owned {
    prometheus::Registry registry;
    WorkerMetrics metrics{registry};
  };
  auto owned = std::make_shared<Owned>();
  return std::shared_ptr<WorkerMetrics>(owned, &owned->metrics);
}

std::unique_ptr<TaskExecutor> DefaultExecutor(const WorkerOptions& options) {
  return std::make_unique<PgTaskExecutor>(PgTaskExecutorOptions{
      .source_override = options.source_override,
      .target_override = options.target_override,
      .application_name = options.application_name,
      .worker_name = options.name,
      .source_side = options.source_side,
  });
}

}  // namespace

Worker::Worker(WorkerOptions options, CoordinatorClient* client,
               std::shared_ptr<WorkerMetrics> metrics, std::unique_ptr<TaskExecutor> executor)
    : options_(std::move(options)),
      client_(client),
      metrics_(metrics != nullptr ? std::move(metrics) : PrivateMetrics()),
      executor_(executor != nullptr ? std::move(executor) : DefaultExecutor(options_)) {}

void Worker::SetRate(int64_t bytes_per_second) {
  if (limiter_.rate() == bytes_per_second) return;
  limiter_.SetRate(bytes_per_second);
  LOG(INFO) << "worker " << worker_id_ << ": rate limit now "
            << (bytes_per_second > 0 ? absl::StrCat(bytes_per_second, " bytes/s") : "none");
}

void Worker::RecordMetrics(const v1::ReportTaskRequest& report, absl::Duration took) {
  switch (report.outcome()) {
    case v1::ReportTaskRequest::COPIED:
      metrics_->chunks_copied.Increment();
      metrics_->rows_copied.Increment(static_cast<double>(report.rows()));
      metrics_->bytes_copied.Increment(static_cast<double>(report.bytes()));
      metrics_->chunk_copy_seconds.Observe(absl::ToDoubleSeconds(took));
      break;
    case v1::ReportTaskRequest::VERIFIED:
      metrics_->chunks_verified.Increment();
      break;
    case v1::ReportTaskRequest::FAILED:
      metrics_->chunks_failed.Increment();
      break;
    case v1::ReportTaskRequest::FENCED:
      metrics_->chunks_fenced.Increment();
      break;
    default:
      break;
  }
}

void Worker::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

bool Worker::Abort(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  aborting_ = true;
  // Over when Run() has returned: a lease granted as the abort began is given back first.
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !running_; };
  // A cancel lands only on a statement that is running: repeat it until the task gives up.
  while (!idle()) {
    if (absl::Now() >= deadline) return false;
    if (in_task_) executor_->Cancel();
    mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Milliseconds(20));
  }
  return true;
}

bool Worker::SleepUnlessStopped(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&stopping), d);
  return !stopping_;
}

void Worker::Run() {
  {
    absl::MutexLock lock(&mu_);
    running_ = true;
  }
  RunLoop();
  absl::MutexLock lock(&mu_);
  running_ = false;
}

void Worker::RunLoop() {
  while (worker_id_.empty()) {
    v1::RegisterWorkerRequest request;
    request.set_worker_name(options_.name);
    absl::StatusOr<v1::RegisterWorkerResponse> registered = client_->RegisterWorker(request);
    if (registered.ok()) {
      worker_id_ = registered->worker_id();
      if (registered->heartbeat_interval_ms() > 0) {
        heartbeat_interval_ = absl::Milliseconds(registered->heartbeat_interval_ms());
      }
      LOG(INFO) << "worker " << worker_id_ << " registered";
      break;
    }
    LOG(WARNING) << "worker " << options_.name
                 << ": cannot register with the coordinator: " << registered.status().message();
    if (!SleepUnlessStopped(options_.retry_delay)) return;
  }
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    v1::LeaseTaskRequest request;
    request.set_worker_id(worker_id_);
    absl::StatusOr<v1::LeaseTaskResponse> lease = client_->LeaseTask(request);
    if (!lease.ok()) {
      LOG(WARNING) << "worker " << worker_id_
                   << ": lease request failed: " << lease.status().message();
      if (!SleepUnlessStopped(options_.retry_delay)) return;
      continue;
    }
    if (lease->kind() != v1::LeaseTaskResponse::TASK) {
      if (!SleepUnlessStopped(absl::Milliseconds(std::max<int64_t>(lease->retry_after_ms(), 10)))) {
        return;
      }
      continue;
    }
    bool aborting;
    {
      absl::MutexLock lock(&mu_);
      aborting = aborting_;
    }
    if (aborting) {
      // Granted as the abort began: given back at once, never started.
      v1::ReportTaskRequest report;
      report.set_worker_id(worker_id_);
      report.set_task_id(lease->task().task_id());
      report.set_lease_epoch(lease->task().lease_epoch());
      report.set_outcome(v1::ReportTaskRequest::ABORTED);
      (void)client_->ReportTask(report);
      return;
    }
    RunTask(*lease);
  }
}

void Worker::RunTask(const v1::LeaseTaskResponse& lease) {
  const v1::Task& task = lease.task();
  const std::string chunk = DisplayName(task.source_chunk_schema(), task.source_chunk_name());
  v1::ReportTaskRequest report;
  report.set_worker_id(worker_id_);
  report.set_task_id(task.task_id());
  report.set_lease_epoch(task.lease_epoch());

  absl::Status connected = executor_->Connect(lease);
  if (!connected.ok()) {
    LOG(WARNING) << "worker " << worker_id_ << ": chunk " << chunk << ": " << connected.message();
    report.set_outcome(v1::ReportTaskRequest::FAILED);
    report.set_error(std::string(connected.message()));
    report.set_retryable(pg::IsRetryable(connected));
    report.set_source_side_lost(SourceSideLost(connected));
    (void)client_->ReportTask(report);
    SleepUnlessStopped(options_.retry_delay);
    return;
  }

  {
    absl::MutexLock lock(&mu_);
    in_task_ = true;
  }
  // Heartbeats keep the lease while the chunk copies. A lost lease cancels the statement in
  // progress; the fence would refuse the commit anyway, this only stops wasted work sooner.
  absl::Notification done;
  std::atomic<bool> lease_lost{false};
  const int backend_pid = executor_->TargetBackendPid();
  std::thread heartbeat([&] {
    // The first beat goes at once: it tells the coordinator which target session holds the
    // lease.
    for (bool first = true; first || !done.WaitForNotificationWithTimeout(heartbeat_interval_);
         first = false) {
      v1::HeartbeatRequest request;
      request.set_worker_id(worker_id_);
      request.set_task_id(task.task_id());
      request.set_lease_epoch(task.lease_epoch());
      request.set_target_backend_pid(backend_pid);
      absl::StatusOr<v1::HeartbeatResponse> response = client_->Heartbeat(request);
      if (response.ok() && lease.work() == v1::LeaseTaskResponse::COPY) {
        SetRate(response->max_bytes_per_second());
      }
      if (response.ok() && !response->lease_valid()) {
        LOG(WARNING) << "worker " << worker_id_ << ": lease on " << chunk
                     << " was lost; abandoning it";
        lease_lost = true;
        // A cancel lands only on a statement that is running (the first beat may even come
        // before the task's first statement): repeat it until the task gives up.
        do {
          executor_->Cancel();
        } while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(20)));
        return;
      }
    }
  });

  if (lease.work() == v1::LeaseTaskResponse::COPY) SetRate(lease.max_bytes_per_second());
  absl::Time start = absl::Now();
  metrics_->busy.Increment();
  executor_->Run(lease, &limiter_, &report);
  metrics_->busy.Decrement();
  done.Notify();
  heartbeat.join();
  if (lease_lost && report.outcome() == v1::ReportTaskRequest::FAILED) {
    report.set_outcome(v1::ReportTaskRequest::FENCED);
  }
  if (report.outcome() == v1::ReportTaskRequest::FAILED) {
    absl::MutexLock lock(&mu_);
    if (aborting_) report.set_outcome(v1::ReportTaskRequest::ABORTED);
  }
  const absl::Duration took = absl::Now() - start;
  report.set_duration_ms(absl::ToInt64Milliseconds(took));
  RecordMetrics(report, took);
  LogOutcome(chunk, report, took);
  absl::Status reported = client_->ReportTask(report);
  if (!reported.ok()) {
    // The commit (or rollback) already happened; the report only feeds progress.
    LOG(WARNING) << "worker " << worker_id_ << ": cannot report " << chunk << ": "
                 << reported.message();
  }
  {
    // Only now is the task over for Abort(): its lease is released too.
    absl::MutexLock lock(&mu_);
    in_task_ = false;
  }
  if (report.outcome() == v1::ReportTaskRequest::FAILED) SleepUnlessStopped(options_.retry_delay);
  if (++tasks_on_connections_ >= options_.reconnect_every) {
    LOG(INFO) << "worker " << worker_id_ << ": reconnecting after " << tasks_on_connections_
              << " tasks";
    executor_->Disconnect();
    tasks_on_connections_ = 0;
  }
}

void Worker::LogOutcome(const std::string& chunk, const v1::ReportTaskRequest& report,
                        absl::Duration took) {
  switch (report.outcome()) {
    case v1::ReportTaskRequest::FAILED:
      LOG(WARNING) << "worker " << worker_id_ << ": chunk " << chunk
                   << " failed: " << report.error();
      return;
    case v1::ReportTaskRequest::FENCED:
      LOG(WARNING) << "worker " << worker_id_ << ": lease on " << chunk
                   << " was re-granted; nothing committed";
      return;
    case v1::ReportTaskRequest::ABORTED:
      LOG(WARNING) << "worker " << worker_id_ << ": copy of " << chunk << " aborted; rolled back";
      return;
    case v1::ReportTaskRequest::SOURCE_MISSING:
      LOG(WARNING) << "worker " << worker_id_ << ": source chunk " << chunk
                   << " no longer exists; skipped";
      return;
    default:
      break;
  }
  const bool verified = report.outcome() == v1::ReportTaskRequest::VERIFIED;
  LOG(INFO) << "worker " << worker_id_ << ": " << (verified ? "verified" : "copied") << " chunk "
            << chunk << " (" << report.rows() << " rows, " << report.bytes() << " bytes) in "
            << absl::FormatDuration(took);
  if (verified && !report.matches()) {
    LOG(WARNING) << "worker " << worker_id_ << ": chunk " << chunk << " differs";
  }
}

}  // namespace backfill
