#include "coordinator/coordinator.h"

#include <glog/logging.h>
#include <google/protobuf/util/json_util.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "backfill_common_sql.h"
#include "backfill_coordinator_sql.h"
#include "common/catalog.h"
#include "common/quote.h"
#include "coordinator/cagg_refresher.h"
#include "coordinator/preflight.h"
#include "coordinator/stager.h"

namespace backfill {
namespace {

// copy --repair: re-opens the tasks the last verify found different; their chunks, as
// "schema.name". FailedPrecondition when no verify has run.
absl::StatusOr<std::vector<std::string>> ReopenMismatched(pg::Connection& conn) {
  absl::StatusOr<pg::Result> verified = conn.Exec(sql::kVerifiedCount);
  if (!verified.ok()) return verified.status();
  if (verified->GetInt(0, 0) == 0) {
    return absl::FailedPreconditionError(
        "nothing to repair: no copied chunk has been verified\nhint: run verify first; copy "
        "--repair then copies again the chunks it found different");
  }
  absl::StatusOr<pg::Result> rows = conn.Exec(sql::kReopenMismatched);
  if (!rows.ok()) return rows.status();
  std::vector<std::string> chunks;
  chunks.reserve(static_cast<size_t>(rows->rows()));
  for (int i = 0; i < rows->rows(); ++i) chunks.push_back(rows->Get(i, 0));
  std::sort(chunks.begin(), chunks.end());
  LOG(INFO) << "copy --repair: re-opened " << chunks.size()
            << " chunks the last verify found different";
  return chunks;
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      metrics_(*registry_),
      workers_(options_.lease_timeout) {}

void Coordinator::SawWorker(const std::string& worker_id) {
  metrics_.connected_workers.Set(workers_.Seen(worker_id, absl::Now()));
}

int64_t Coordinator::RateShare() {
  int64_t rate;
  {
    absl::MutexLock lock(&mu_);
    rate = max_bytes_per_second_;
  }
  if (rate <= 0) return 0;
  return std::max<int64_t>(1, rate / std::max(1, workers_.Connected(absl::Now())));
}

void Coordinator::ReadThrottle(pg::Connection& conn) {
  absl::StatusOr<pg::Result> row = conn.Exec(sql::kReadThrottle);
  if (!row.ok() || row->rows() == 0) return;  // an older schema: not throttled
  const int64_t rate = row->GetInt(0, 0);
  const int32_t cap = static_cast<int32_t>(row->GetInt(0, 1));
  absl::MutexLock lock(&mu_);
  if (rate != max_bytes_per_second_ || cap != max_chunks_per_hypertable_) {
    LOG(INFO) << "throttle: " << (rate > 0 ? absl::StrCat(rate, " bytes/s") : "no rate limit")
              << ", "
              << (cap > 0 ? absl::StrCat("at most ", cap, " chunks per hypertable")
                          : "no cap on chunks per hypertable");
  }
  max_bytes_per_second_ = rate;
  max_chunks_per_hypertable_ = cap;
}

absl::StatusOr<std::unique_ptr<pg::Connection>> Coordinator::Open(const std::string& conninfo,
                                                                  const std::string& role) const {
  return pg::Connection::Open(conninfo, options_.application_name, role);
}

std::shared_ptr<ConnectionPool> Coordinator::target_pool() const {
  absl::MutexLock lock(&mu_);
  return target_pool_;
}

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const v1::RegisterWorkerRequest& request) {
  if (request.worker_name().empty() || request.worker_name().size() > 200) {
    return absl::InvalidArgumentError("worker_name must be 1 to 200 characters");
  }
  v1::RegisterWorkerResponse response;
  // Unique per coordinator run; a restarted coordinator hands out names that differ by the
  // start time, so leases of an earlier run are never mistaken for a new worker's.
  static const int64_t kRun = absl::ToUnixMillis(absl::Now());
  response.set_worker_id(
      absl::StrCat(request.worker_name(), "#", kRun, ".", ++workers_registered_));
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.heartbeat_interval));
  LOG(INFO) << "worker " << response.worker_id() << " registered";
  SawWorker(response.worker_id());
  return response;
}

absl::StatusOr<v1::LeaseTaskResponse> Coordinator::LeaseTask(const v1::LeaseTaskRequest& request) {
  v1::LeaseTaskResponse response;
  response.set_kind(v1::LeaseTaskResponse::WAIT);
  response.set_retry_after_ms(absl::ToInt64Milliseconds(options_.idle_retry));
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id is required");
  SawWorker(request.worker_id());
  std::shared_ptr<Job> job;
  std::shared_ptr<ConnectionPool> pool;
  {
    absl::MutexLock lock(&mu_);
    auto open_or_closed = [](Coordinator* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
      return c->job_ != nullptr || c->closed_;
    };
    mu_.AwaitWithTimeout(absl::Condition(+open_or_closed, this), options_.job_wait);
    job = job_;
    pool = target_pool_;
  }
  if (job == nullptr || pool == nullptr) {
    response.set_retry_after_ms(0);  // it waited here already
    return response;
  }
  absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
  if (!conn.ok()) return conn.status();
  const bool verify = job->work == v1::LeaseTaskResponse::VERIFY;
  int32_t cap;
  {
    absl::MutexLock lock(&mu_);
    cap = max_chunks_per_hypertable_;
  }
  absl::StatusOr<pg::Result> row;
  {
    std::optional<absl::MutexLock> serialized;
    if (cap > 0 && !verify) serialized.emplace(&capped_lease_mu_);
    std::vector<pg::Param> params = {
        request.worker_id(), absl::StrCat(absl::ToInt64Milliseconds(options_.lease_timeout)),
        absl::StrCat(options_.max_attempts)};
    if (!verify) params.emplace_back(absl::StrCat(cap));
    row = (*conn)->Exec(verify ? sql::kLeaseVerifyTask : sql::kLeaseTask, params);
  }
  if (!row.ok()) return row.status();
  if (row->rows() == 0) return response;
  v1::Task* task = response.mutable_task();
  task->set_task_id(row->GetInt(0, 0));
  task->set_lease_epoch(row->GetInt(0, 1));
  task->set_hypertable_schema(row->Get(0, 2));
  task->set_hypertable_name(row->Get(0, 3));
  task->set_source_chunk_schema(row->Get(0, 4));
  task->set_source_chunk_name(row->Get(0, 5));
  task->set_target_chunk_schema(row->Get(0, 6));
  task->set_target_chunk_name(row->Get(0, 7));
  task->set_time_column(row->Get(0, 8));
  task->set_time_type(row->Get(0, 9));
  task->set_cut(row->GetBool(0, 10));
  task->set_until_literal(row->Get(0, 11));
  task->set_from_literal(row->Get(0, 15));
  task->set_hypertable_display(row->Get(0, 16));
  task->set_range_start_internal(row->GetInt(0, 17));
  task->set_range_end_internal(row->GetInt(0, 18));
  response.set_kind(v1::LeaseTaskResponse::TASK);
  response.set_work(job->work);
  response.set_row_hash(job->row_hash);
  *response.mutable_databases() = job->databases;
  response.set_lease_timeout_ms(absl::ToInt64Milliseconds(options_.lease_timeout));
  if (!verify) response.set_max_bytes_per_second(RateShare());
  const std::string chunk = DisplayName(task->source_chunk_schema(), task->source_chunk_name());
  {
    absl::MutexLock lock(&mu_);
    job->task_names[task->task_id()] = {chunk, task->hypertable_display()};
  }
  metrics_.lease_grants.Increment();
  const std::string previous_holder = row->Get(0, 12);
  if (!previous_holder.empty()) {
    metrics_.lease_expiries.Increment();
    LOG(WARNING) << "lease on chunk " << chunk << " (task " << task->task_id()
                 << ") held by worker " << previous_holder << " expired; granting it again";
  }
  if (!row->IsNull(0, 13)) {
    // Before the new holder starts, end the expired holder's target session: a stopped
    // worker's open transaction would otherwise hold its row locks and block it.
    absl::StatusOr<pg::Result> ended =
        (*conn)->Exec(sql::kEndSession, {row->Get(0, 13), row->Get(0, 14)});
    if (!ended.ok()) {
      // Best effort: without the right to end sessions, the old transaction ends when its
      // connection does; the epoch fences its commit out either way.
      LOG_EVERY_N(WARNING, 100) << "cannot end the session of an expired lease: "
                                << ended.status().message();
    } else if (ended->rows() > 0 && ended->GetBool(0, 0)) {
      LOG(WARNING) << "ended the target session of the expired lease on chunk " << chunk
                   << " (task " << task->task_id() << ") held by worker " << previous_holder;
    }
  }
  LOG(INFO) << (verify ? "leased verification of chunk " : "leased chunk ") << chunk << " (task "
            << task->task_id() << ", epoch " << task->lease_epoch() << ") to worker "
            << request.worker_id();
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  if (!request.worker_id().empty()) SawWorker(request.worker_id());
  std::shared_ptr<ConnectionPool> pool = target_pool();
  if (pool == nullptr) {
    return absl::FailedPreconditionError("no copy has run on this coordinator; unknown lease");
  }
  absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
  if (!conn.ok()) return conn.status();
  absl::StatusOr<pg::Result> row = (*conn)->Exec(
      sql::kExtendLease,
      {absl::StrCat(request.task_id()), absl::StrCat(request.lease_epoch()), request.worker_id(),
       absl::StrCat(absl::ToInt64Milliseconds(options_.lease_timeout)),
       request.target_backend_pid() > 0 ? pg::Param(absl::StrCat(request.target_backend_pid()))
                                        : pg::Param()});
  if (!row.ok()) return row.status();
  v1::HeartbeatResponse response;
  response.set_lease_valid(row->rows() == 1 && row->GetBool(0, 0));
  response.set_max_bytes_per_second(RateShare());
  return response;
}

absl::Status Coordinator::ReportTask(const v1::ReportTaskRequest& request) {
  std::shared_ptr<ConnectionPool> pool;
  std::shared_ptr<Job> job;
  {
    absl::MutexLock lock(&mu_);
    pool = target_pool_;
    job = job_;
  }
  if (pool == nullptr) {
    return absl::FailedPreconditionError("no copy has run on this coordinator; unknown task");
  }
  if (request.worker_id().empty() || request.task_id() <= 0) {
    return absl::InvalidArgumentError("a report needs worker_id and task_id");
  }
  SawWorker(request.worker_id());
  // A fenced worker knows it holds nothing; its report changes nothing and needs no check.
  if (request.outcome() == v1::ReportTaskRequest::FENCED) return absl::OkStatus();
  if (request.outcome() == v1::ReportTaskRequest::ABORTED) {
    absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
    if (!conn.ok()) return conn.status();
    absl::StatusOr<pg::Result> released = (*conn)->Exec(
        sql::kReleaseLease, {absl::StrCat(request.task_id()), absl::StrCat(request.lease_epoch()),
                             request.worker_id()});
    return released.status();
  }
  const std::string not_yours =
      absl::StrCat("task ", request.task_id(), " is not leased to worker ", request.worker_id(),
                   " at epoch ", request.lease_epoch(), "; nothing changed");
  {
    absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
    if (!conn.ok()) return conn.status();
    if (request.outcome() == v1::ReportTaskRequest::FAILED) {
      absl::StatusOr<pg::Result> updated =
          (*conn)->Exec(sql::kRecordFailure,
                        {absl::StrCat(request.task_id()), absl::StrCat(request.lease_epoch()),
                         request.error(), request.retryable() ? "true" : "false",
                         absl::StrCat(options_.max_attempts), request.worker_id()});
      if (!updated.ok()) return updated.status();
      if (updated->affected_rows() == 0) return absl::FailedPreconditionError(not_yours);
    } else {
      absl::StatusOr<pg::Result> held =
          (*conn)->Exec(sql::kCheckLease, {absl::StrCat(request.task_id()), request.worker_id(),
                                           absl::StrCat(request.lease_epoch())});
      if (!held.ok()) return held.status();
      if (!held->GetBool(0, 0)) return absl::FailedPreconditionError(not_yours);
    }
  }
  if (request.outcome() == v1::ReportTaskRequest::COPIED) {
    metrics_.chunks_copied.Increment();
    metrics_.rows_copied.Increment(static_cast<double>(request.rows()));
    metrics_.bytes_copied.Increment(static_cast<double>(request.bytes()));
    metrics_.chunk_copy_seconds.Observe(static_cast<double>(request.duration_ms()) / 1000);
  } else if (request.outcome() == v1::ReportTaskRequest::FAILED) {
    metrics_.chunks_failed.Increment();
  }
  if (job != nullptr) {
    absl::MutexLock lock(&mu_);
    v1::TaskEvent event;
    auto it = job->task_names.find(request.task_id());
    if (it != job->task_names.end()) {
      event.set_chunk(it->second.first);
      event.set_hypertable(it->second.second);
    } else {
      event.set_chunk(absl::StrCat("task ", request.task_id()));
    }
    event.set_worker_id(request.worker_id());
    event.set_outcome(request.outcome());
    event.set_rows(request.rows());
    event.set_bytes(request.bytes());
    event.set_error(request.error());
    job->events.push_back(std::move(event));
    if (request.outcome() == v1::ReportTaskRequest::COPIED ||
        request.outcome() == v1::ReportTaskRequest::SOURCE_MISSING) {
      ++job->done_events;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::StageResponse> Coordinator::Stage(const v1::StageRequest& request) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> source =
      Open(request.databases().source(), "source");
  if (!source.ok()) return source.status();
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      Open(request.databases().target(), "target");
  if (!target.ok()) return target.status();
  return StageTasks(**source, **target, request);
}

void Coordinator::SweepLeases(pg::Connection& conn) {
  absl::StatusOr<pg::Result> released = conn.Exec(sql::kReleaseOrphanedLeases);
  if (!released.ok()) {
    LOG_EVERY_N(WARNING, 100) << "cannot release orphaned leases: " << released.status().message();
  } else if (released->affected_rows() > 0) {
    LOG(WARNING) << "released " << released->affected_rows()
                 << " leases whose holders' target sessions are gone";
  }
  absl::StatusOr<pg::Result> ended = conn.Exec(sql::kEndExpiredSessions);
  if (!ended.ok()) {
    LOG_EVERY_N(WARNING, 100) << "cannot end the sessions of expired leases: "
                              << ended.status().message();
    return;
  }
  for (int i = 0; i < ended->rows(); ++i) {
    LOG(WARNING) << "ended the target session of the expired lease on chunk " << ended->Get(i, 1)
                 << " (task " << ended->Get(i, 0) << ") held by worker " << ended->Get(i, 2);
  }
}

absl::StatusOr<v1::CopyProgress> Coordinator::ReadProgress(ConnectionPool& pool) {
  absl::StatusOr<ConnectionPool::Handle> conn = pool.Acquire();
  if (!conn.ok()) return conn.status();
  SweepLeases(**conn);
  ReadThrottle(**conn);
  absl::StatusOr<pg::Result> row =
      (*conn)->Exec(sql::kCopyProgress, {absl::StrCat(options_.max_attempts)});
  if (!row.ok()) return row.status();
  v1::CopyProgress progress;
  progress.set_tasks_total(row->GetInt(0, 0));
  progress.set_tasks_done(row->GetInt(0, 1));
  progress.set_tasks_failed(row->GetInt(0, 2));
  progress.set_rows_copied(row->GetInt(0, 3));
  progress.set_bytes_copied(row->GetInt(0, 4));
  progress.set_tasks_leased(row->GetInt(0, 5));
  metrics_.tasks_done.Set(static_cast<double>(progress.tasks_done()));
  metrics_.tasks_failed.Set(static_cast<double>(progress.tasks_failed()));
  metrics_.tasks_leased.Set(static_cast<double>(progress.tasks_leased()));
  metrics_.tasks_pending.Set(static_cast<double>(
      std::max<int64_t>(0, progress.tasks_total() - progress.tasks_done() -
                               progress.tasks_failed() - progress.tasks_leased())));
  metrics_.connected_workers.Set(workers_.Connected(absl::Now()));
  return progress;
}

absl::StatusOr<std::shared_ptr<ConnectionPool>> Coordinator::PrepareJob(
    const v1::Databases& databases, absl::string_view no_schema_message, const Preflight& checks) {
  // Fail early, with one clear message, on what every worker would otherwise trip over.
  Findings findings;
  {
    absl::StatusOr<std::unique_ptr<pg::Connection>> source = Open(databases.source(), "source");
    if (!source.ok()) return source.status();
    absl::StatusOr<std::unique_ptr<pg::Connection>> target = Open(databases.target(), "target");
    if (!target.ok()) return target.status();
    // Before any lease: batches written by one TimescaleDB version must not land in another's.
    if (absl::Status s = CheckVersions(**source, **target); !s.ok()) return s;
    if (checks.planned_workers > 0) {
      if (absl::Status s = CheckConnectionRoom(
              **source, checks.planned_workers,
              absl::StrCat("--parallelism ", checks.planned_workers), &findings);
          !s.ok()) {
        return s;
      }
    }
  }
  auto pool =
      std::make_shared<ConnectionPool>(databases.target(), options_.application_name, "target");
  absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
  if (!conn.ok()) return conn.status();
  absl::StatusOr<pg::Result> exists = (*conn)->Exec(sql::kSchemaExists);
  if (!exists.ok()) return exists.status();
  if (!exists->GetBool(0, 0)) return absl::FailedPreconditionError(no_schema_message);
  if (checks.planned_workers > 0) {
    // Each worker holds one target connection; the coordinator a few more.
    if (absl::Status s = CheckConnectionRoom(
            **conn, checks.planned_workers + 2,
            absl::StrCat("--parallelism ", checks.planned_workers, " (plus the coordinator's 2)"),
            &findings);
        !s.ok()) {
      return s;
    }
  }
  if (checks.active_jobs) {
    absl::StatusOr<pg::Result> tables = (*conn)->Exec(sql::kStagedTargetHypertables);
    if (!tables.ok()) return tables.status();
    std::vector<std::string> names;
    names.reserve(static_cast<size_t>(tables->rows()));
    for (int i = 0; i < tables->rows(); ++i) names.push_back(tables->Get(i, 0));
    if (absl::Status s = CheckActiveJobs(**conn, names, &findings); !s.ok()) return s;
  }
  if (absl::Status s = findings.ToStatus("cannot start"); !s.ok()) return s;
  return pool;
}

absl::Status Coordinator::Copy(const v1::CopyRequest& request,
                               const std::function<bool(const v1::CopyProgress&)>& emit) {
  const v1::Databases& databases = request.databases();
  absl::StatusOr<std::shared_ptr<ConnectionPool>> prepared =
      PrepareJob(databases,
                 "nothing to copy: the target has no __backfill schema\n"
                 "hint: run stage first to choose what to copy",
                 Preflight{!request.allow_active_jobs(), request.planned_workers()});
  if (!prepared.ok()) return prepared.status();
  std::shared_ptr<ConnectionPool> pool = *std::move(prepared);
  std::vector<std::string> reopened;  // sent with the first progress message
  {
    absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
    if (!conn.ok()) return conn.status();
    // A task table staged by an older release gains what this one keeps (counts, indexes).
    if (absl::Status s = (*conn)->ExecScript(sql::kCreateSchema); !s.ok()) return s;
    absl::StatusOr<pg::Result> reset = (*conn)->Exec(sql::kResetFailed);
    if (!reset.ok()) return reset.status();
    if (absl::Status s = (*conn)->ExecScript(sql::kCreateThrottle); !s.ok()) return s;
    if (request.has_max_bytes_per_second() || request.has_max_chunks_per_hypertable()) {
      absl::StatusOr<pg::Result> set = (*conn)->Exec(
          sql::kSetThrottle, {request.has_max_bytes_per_second()
                                  ? pg::Param(absl::StrCat(request.max_bytes_per_second()))
                                  : pg::Param(),
                              request.has_max_chunks_per_hypertable()
                                  ? pg::Param(absl::StrCat(request.max_chunks_per_hypertable()))
                                  : pg::Param()});
      if (!set.ok()) return set.status();
    }
    ReadThrottle(**conn);
  }

  Job proto;
  proto.work = v1::LeaseTaskResponse::COPY;
  proto.databases = databases;
  // What was done before this job, read before any worker can lease from it: a chunk that
  // commits before the loop's first read is this run's, with its line and its count.
  {
    absl::StatusOr<v1::CopyProgress> before = ReadProgress(*pool);
    if (!before.ok()) return before.status();
    proto.done_at_open = before->tasks_done();
  }
  absl::StatusOr<std::shared_ptr<Job>> joined = JoinJob(proto, &pool);
  if (!joined.ok()) return joined.status();
  std::shared_ptr<Job> job = *std::move(joined);
  auto leave = [this, &job]() { LeaveJob(job); };
  if (request.repair()) {
    // Only once the job is ours: a verify still running would otherwise lose the re-opened
    // tasks from its report.
    absl::StatusOr<std::vector<std::string>> reopened_tasks = [&] {
      absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
      if (!conn.ok()) return absl::StatusOr<std::vector<std::string>>(conn.status());
      return ReopenMismatched(**conn);
    }();
    if (!reopened_tasks.ok()) {
      leave();
      return reopened_tasks.status();
    }
    reopened = *std::move(reopened_tasks);
    absl::MutexLock lock(&mu_);
    job->done_at_open -= static_cast<int64_t>(reopened.size());
  }

  size_t events_sent = 0;
  absl::Time unreachable_since = absl::InfiniteFuture();
  for (;;) {
    // Events up to here are reflected in the progress read next; a later one wakes the wait.
    size_t events_before_read;
    {
      absl::MutexLock lock(&mu_);
      events_before_read = job->events.size();
    }
    absl::StatusOr<v1::CopyProgress> progress = ReadProgress(*pool);
    if (!progress.ok()) {
      // A restarting target: keep serving (workers retry their chunks) for a while.
      const absl::Time now = absl::Now();
      unreachable_since = std::min(unreachable_since, now);
      if (!pg::IsRetryable(progress.status()) ||
          now - unreachable_since > options_.target_outage_tolerance) {
        leave();
        return progress.status();
      }
      LOG(WARNING) << "cannot read copy progress, retrying: " << progress.status().message();
      absl::SleepFor(absl::Seconds(1));
      continue;
    }
    unreachable_since = absl::InfiniteFuture();
    for (std::string& chunk : reopened) progress->add_reopened(std::move(chunk));
    reopened.clear();
    const bool finished =
        progress->tasks_done() + progress->tasks_failed() >= progress->tasks_total();
    {
      absl::MutexLock lock(&mu_);
      progress->set_tasks_done_at_start(job->done_at_open);
      if (finished) {
        // A worker reports after it commits: the last reports may still be on their way.
        // Wait for them (a while, not forever: a report can be lost) so every chunk is shown.
        struct AllReported {
          const Job* job;
          int64_t expected;
        } wait{job.get(), progress->tasks_done() - job->done_at_open};
        mu_.AwaitWithTimeout(
            absl::Condition(
                +[](AllReported* w) { return w->job->done_events >= w->expected; }, &wait),
            absl::Seconds(2));
      }
      for (; events_sent < job->events.size(); ++events_sent) {
        *progress->add_events() = job->events[events_sent];
      }
    }
    if (finished) {
      // End with the tasks that failed, each with its stored error.
      absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
      if (conn.ok()) {
        absl::StatusOr<pg::Result> failed =
            (*conn)->Exec(sql::kFailedTasks, {absl::StrCat(options_.max_attempts)});
        if (failed.ok()) {
          for (int i = 0; i < failed->rows(); ++i) {
            v1::TaskEvent* event = progress->add_events();
            event->set_chunk(failed->Get(i, 0));
            event->set_hypertable(failed->Get(i, 1));
            event->set_outcome(v1::ReportTaskRequest::FAILED);
            event->set_error(failed->Get(i, 2));
          }
        }
      }
      progress->set_finished(true);
      leave();
      emit(*progress);
      return absl::OkStatus();
    }
    if (!emit(*progress)) {
      leave();
      return absl::CancelledError("the client went away; no new chunks are leased");
    }
    AwaitEvents(*job, events_before_read, options_.progress_interval);
  }
}

absl::StatusOr<std::shared_ptr<Coordinator::Job>> Coordinator::JoinJob(
    const Job& proto, std::shared_ptr<ConnectionPool>* pool) {
  absl::MutexLock lock(&mu_);
  if (job_ != nullptr) {
    if (job_->databases.target() != proto.databases.target() || job_->work != proto.work ||
        job_->row_hash != proto.row_hash) {
      return absl::FailedPreconditionError(
          "this coordinator is serving another copy or verify; wait for it to finish");
    }
  } else {
    job_ = std::make_shared<Job>(proto);
    target_pool_ = *pool;
  }
  ++job_->followers;
  *pool = target_pool_;
  return job_;
}

void Coordinator::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

void Coordinator::AwaitEvents(const Job& job, size_t seen, absl::Duration timeout) {
  // A report wakes the progress loop at once: the last chunk's is the end of the job.
  struct NewEvent {
    const Job* job;
    size_t seen;
  } wait{&job, seen};
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](NewEvent* w) { return w->job->events.size() > w->seen; }, &wait),
                       timeout);
}

void Coordinator::LeaveJob(const std::shared_ptr<Job>& job) {
  absl::MutexLock lock(&mu_);
  if (--job->followers == 0 && job_ == job) job_ = nullptr;
}

absl::StatusOr<v1::VerifyResponse> Coordinator::Verify(
    const v1::VerifyRequest& request, const std::function<bool(const v1::CopyProgress&)>& emit) {
  const v1::Databases& databases = request.databases();
  absl::StatusOr<std::shared_ptr<ConnectionPool>> prepared =
      PrepareJob(databases,
                 "nothing to verify: the target has no __backfill schema\n"
                 "hint: run stage and copy first",
                 Preflight{});
  if (!prepared.ok()) return prepared.status();
  std::shared_ptr<ConnectionPool> pool = *std::move(prepared);
  {
    absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
    if (!conn.ok()) return conn.status();
    // Older task tables gain the verification columns.
    if (absl::Status s = (*conn)->ExecScript(sql::kCreateSchema); !s.ok()) return s;
    absl::StatusOr<pg::Result> reset = (*conn)->Exec(sql::kResetVerify);
    if (!reset.ok()) return reset.status();
    if (reset->affected_rows() == 0) {
      return absl::FailedPreconditionError(
          "nothing to verify: no task has been copied yet\nhint: run copy first");
    }
  }
  Job proto;
  proto.work = v1::LeaseTaskResponse::VERIFY;
  proto.row_hash = request.row_hash();
  proto.databases = databases;
  absl::StatusOr<std::shared_ptr<Job>> joined = JoinJob(proto, &pool);
  if (!joined.ok()) return joined.status();
  std::shared_ptr<Job> job = *std::move(joined);

  absl::Time unreachable_since = absl::InfiniteFuture();
  for (;;) {
    size_t events_seen;
    {
      absl::MutexLock lock(&mu_);
      events_seen = job->events.size();
    }
    absl::StatusOr<pg::Result> progress = [&]() -> absl::StatusOr<pg::Result> {
      absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
      if (!conn.ok()) return conn.status();
      SweepLeases(**conn);
      return (*conn)->Exec(sql::kVerifyProgress, {absl::StrCat(options_.max_attempts)});
    }();
    if (!progress.ok()) {
      const absl::Time now = absl::Now();
      unreachable_since = std::min(unreachable_since, now);
      if (!pg::IsRetryable(progress.status()) ||
          now - unreachable_since > options_.target_outage_tolerance) {
        LeaveJob(job);
        return progress.status();
      }
      LOG(WARNING) << "cannot read verify progress, retrying: " << progress.status().message();
      absl::SleepFor(absl::Seconds(1));
      continue;
    }
    unreachable_since = absl::InfiniteFuture();
    v1::CopyProgress update;
    update.set_tasks_total(progress->GetInt(0, 0));
    update.set_tasks_done(progress->GetInt(0, 1));
    update.set_tasks_failed(progress->GetInt(0, 2));
    update.set_tasks_leased(progress->GetInt(0, 4));
    if (update.tasks_done() + update.tasks_failed() >= update.tasks_total()) break;
    if (!emit(update)) {
      LeaveJob(job);
      return absl::CancelledError("the client went away; no new verifications are leased");
    }
    AwaitEvents(*job, events_seen, options_.progress_interval);
  }
  LeaveJob(job);

  absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
  if (!conn.ok()) return conn.status();
  absl::StatusOr<pg::Result> reports = (*conn)->Exec(sql::kVerifyReports);
  if (!reports.ok()) return reports.status();
  v1::VerifyResponse response;
  for (int i = 0; i < reports->rows(); ++i) {
    v1::ChunkVerification* chunk = response.add_chunks();
    const std::string json = reports->Get(i, 0);
    if (json.empty() || !google::protobuf::util::JsonStringToMessage(json, chunk).ok()) {
      chunk->set_hypertable(reports->Get(i, 2));
      chunk->set_source_chunk(reports->Get(i, 3));
      chunk->set_target_chunk(reports->Get(i, 4));
      chunk->set_error(absl::StrCat("could not be verified: ", reports->Get(i, 1)));
      chunk->set_matches(false);
    }
    if (!chunk->matches()) response.set_mismatches(response.mismatches() + 1);
  }
  return response;
}

absl::StatusOr<v1::RefreshCaggsResponse> Coordinator::RefreshCaggs(
    const v1::RefreshCaggsRequest& request) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> source =
      Open(request.databases().source(), "source");
  if (!source.ok()) return source.status();
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      Open(request.databases().target(), "target");
  if (!target.ok()) return target.status();
  return RefreshContinuousAggregates(**source, **target, request);
}

absl::StatusOr<v1::CleanResponse> Coordinator::Clean(const v1::CleanRequest& request) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      Open(request.databases().target(), "target");
  if (!target.ok()) return target.status();
  absl::StatusOr<pg::Result> exists = (*target)->Exec(sql::kSchemaExists);
  if (!exists.ok()) return exists.status();
  v1::CleanResponse response;
  response.set_existed(exists->GetBool(0, 0));
  if (absl::Status s = (*target)->ExecScript(sql::kDropSchema); !s.ok()) return s;
  return response;
}

}  // namespace backfill
