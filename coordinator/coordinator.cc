#include "coordinator/coordinator.h"

#include <glog/logging.h>
#include <google/protobuf/util/json_util.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/catalog.h"
#include "common/quote.h"
#include "coordinator/cagg_refresher.h"
#include "coordinator/stager.h"
#include "coordinator/task_reports.h"

namespace backfill {
namespace {

Work WorkOf(const Job& job) {
  return job.work == v1::LeaseTaskResponse::VERIFY ? Work::kVerify : Work::kCopy;
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, const Clock* clock, StoreOpener open_store)
    : options_(std::move(options)),
      clock_(clock != nullptr ? *clock : Clock::Real()),
      open_store_(
          open_store != nullptr
              ? std::move(open_store)
              : [app = options_.application_name](
                    const v1::Databases& databases,
                    const JobChecks& checks) { return OpenTargetStore(databases, checks, app); }),
      registry_(std::make_shared<prometheus::Registry>()),
      metrics_(*registry_),
      workers_(options_.lease_timeout),
      source_sides_(clock_, options_.lease_timeout) {}

void Coordinator::SawWorker(const std::string& worker_id) {
  metrics_.connected_workers.Set(workers_.Seen(worker_id, clock_.Now()));
}

int64_t Coordinator::RateShare() {
  int64_t rate;
  {
    absl::MutexLock lock(&mu_);
    rate = max_bytes_per_second_;
  }
  if (rate <= 0) return 0;
  return std::max<int64_t>(1, rate / std::max(1, workers_.Connected(clock_.Now())));
}

void Coordinator::ReadThrottle(TaskStore& store) {
  absl::StatusOr<std::optional<Throttle>> read = store.ReadThrottle();
  if (!read.ok()) {
    LOG_EVERY_N(WARNING, 100) << "cannot read the throttle: " << read.status().message();
    return;
  }
  const Throttle throttle = read->value_or(Throttle{});
  absl::MutexLock lock(&mu_);
  if (throttle.max_bytes_per_second != max_bytes_per_second_ ||
      throttle.max_chunks_per_hypertable != max_chunks_per_hypertable_) {
    LOG(INFO) << "throttle: "
              << (throttle.max_bytes_per_second > 0
                      ? absl::StrCat(throttle.max_bytes_per_second, " bytes/s")
                      : "no rate limit")
              << ", "
              << (throttle.max_chunks_per_hypertable > 0
                      ? absl::StrCat("at most ", throttle.max_chunks_per_hypertable,
                                     " chunks per hypertable")
                      : "no cap on chunks per hypertable");
  }
  if (throttle.max_chunks_per_hypertable != max_chunks_per_hypertable_) {
    ForgetNothingGrantable();  // a different cap: maybe room now
  }
  max_bytes_per_second_ = throttle.max_bytes_per_second;
  max_chunks_per_hypertable_ = throttle.max_chunks_per_hypertable;
}

absl::StatusOr<std::unique_ptr<pg::Connection>> Coordinator::Open(const std::string& conninfo,
                                                                  const std::string& role) const {
  return pg::Connection::Open(conninfo, options_.application_name, role);
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
  if (!request.source_side_address().empty()) {
    if (request.source_side_address().size() > 300) {
      return absl::InvalidArgumentError("source_side_address is longer than 300 characters");
    }
    if (request.source_side_identity().size() > 300) {
      return absl::InvalidArgumentError("source_side_identity is longer than 300 characters");
    }
    source_sides_.Register(response.worker_id(), request.source_side_address(),
                           request.source_side_identity());
    metrics_.source_side_workers.Set(source_sides_.Live());
    LOG(INFO) << "source-side worker " << response.worker_id() << " registered at "
              << request.source_side_address();
    return response;
  }
  LOG(INFO) << "worker " << response.worker_id() << " registered";
  SawWorker(response.worker_id());
  return response;
}

absl::StatusOr<v1::SourceSideHeartbeatResponse> Coordinator::SourceSideHeartbeat(
    const v1::SourceSideHeartbeatRequest& request) {
  if (request.worker_id().empty() || request.address().empty() || request.address().size() > 300) {
    return absl::InvalidArgumentError("a source-side heartbeat needs worker_id and address");
  }
  v1::SourceSideHeartbeatResponse response;
  response.set_known(
      source_sides_.Heartbeat(request.worker_id(), request.address(), request.draining()));
  metrics_.source_side_workers.Set(source_sides_.Live());
  return response;
}

absl::StatusOr<v1::LeaseTaskResponse> Coordinator::LeaseTask(const v1::LeaseTaskRequest& request) {
  v1::LeaseTaskResponse response;
  response.set_kind(v1::LeaseTaskResponse::WAIT);
  response.set_retry_after_ms(absl::ToInt64Milliseconds(options_.idle_retry));
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id is required");
  SawWorker(request.worker_id());
  std::shared_ptr<const Job> job = jobs_.Await(options_.job_wait);
  if (job == nullptr) {
    response.set_retry_after_ms(0);  // it waited here already
    return response;
  }
  const bool verify = job->work == v1::LeaseTaskResponse::VERIFY;
  const absl::Time now = clock_.Now();
  {
    absl::MutexLock lock(&mu_);
    if (now < nothing_until_) {
      if (freed_ <= 0) return response;
      --freed_;
    }
  }
  LeaseRequest lease;
  lease.worker_id = request.worker_id();
  lease.work = WorkOf(*job);
  lease.lease_timeout = options_.lease_timeout;
  lease.max_attempts = options_.max_attempts;
  {
    absl::MutexLock lock(&mu_);
    lease.max_per_hypertable = max_chunks_per_hypertable_;
  }
  lease.now = now;
  absl::StatusOr<std::optional<Grant>> granted = job->store->Lease(lease);
  metrics_.lease_statement_seconds.Observe(absl::ToDoubleSeconds(clock_.Now() - now));
  if (!granted.ok()) return granted.status();
  if (!granted->has_value()) {
    absl::MutexLock lock(&mu_);
    nothing_until_ = std::max(nothing_until_, now + options_.progress_interval);
    return response;
  }
  Grant& grant = **granted;
  *response.mutable_task() = std::move(grant.task);
  const v1::Task& task = response.task();
  response.set_kind(v1::LeaseTaskResponse::TASK);
  response.set_work(job->work);
  response.set_row_hash(job->row_hash);
  response.set_row_by_row(job->row_by_row);
  *response.mutable_databases() = job->databases;
  response.set_lease_timeout_ms(absl::ToInt64Milliseconds(options_.lease_timeout));
  if (!verify) response.set_max_bytes_per_second(RateShare());
  std::optional<v1::SourceSide> source_side =
      source_sides_.Pair(task.task_id(), task.lease_epoch(), job->source_identity);
  if (source_side.has_value()) {
    *response.mutable_source_side() = *std::move(source_side);
  } else if (source_sides_.Known() > 0) {
    // Once a minute at most: every lease would say it while none can.
    LOG_EVERY_T(WARNING, 60) << "no source-side worker can take leases now (silent, stopping, "
                                "lost by a lease or reading another database): worker "
                             << request.worker_id() << " reads the source itself";
  }
  metrics_.source_side_workers.Set(source_sides_.Live());
  const std::string chunk = DisplayName(task.source_chunk_schema(), task.source_chunk_name());
  jobs_.Granted(task.task_id(), chunk, task.hypertable_display());
  metrics_.lease_grants.Increment();
  LOG(INFO) << (verify ? "leased verification of chunk " : "leased chunk ") << chunk << " (task "
            << task.task_id() << ", epoch " << task.lease_epoch() << ") to worker "
            << request.worker_id()
            << (response.has_source_side() ? absl::StrCat(", reading through source-side worker ",
                                                          response.source_side().worker_id())
                                           : std::string());
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  if (!request.worker_id().empty()) SawWorker(request.worker_id());
  std::shared_ptr<TaskStore> store = jobs_.LastStore();
  if (store == nullptr) {
    return absl::FailedPreconditionError("no copy has run on this coordinator; unknown lease");
  }
  absl::StatusOr<bool> held = store->ExtendLease(
      LeaseRef{request.task_id(), request.lease_epoch(), request.worker_id()},
      options_.lease_timeout, clock_.Now(),
      request.target_backend_pid() > 0 ? std::optional<int32_t>(request.target_backend_pid())
                                       : std::nullopt);
  if (!held.ok()) return held.status();
  v1::HeartbeatResponse response;
  response.set_lease_valid(*held);
  response.set_max_bytes_per_second(RateShare());
  return response;
}

absl::Status Coordinator::ReportTask(const v1::ReportTaskRequest& request) {
  std::shared_ptr<TaskStore> store = jobs_.LastStore();
  if (store == nullptr) {
    return absl::FailedPreconditionError("no copy has run on this coordinator; unknown task");
  }
  if (request.worker_id().empty() || request.task_id() <= 0) {
    return absl::InvalidArgumentError("a report needs worker_id and task_id");
  }
  SawWorker(request.worker_id());
  source_sides_.Unpair(
      request.task_id(), request.lease_epoch(),
      request.outcome() == v1::ReportTaskRequest::FAILED && request.source_side_lost());
  // A fenced worker knows it holds nothing; its report changes nothing and needs no check.
  if (request.outcome() == v1::ReportTaskRequest::FENCED) return absl::OkStatus();
  // A task given back, or a finished one making room under a cap.
  MayHaveFreed(1);
  const LeaseRef lease{request.task_id(), request.lease_epoch(), request.worker_id()};
  if (request.outcome() == v1::ReportTaskRequest::ABORTED) {
    return store->ReleaseLease(lease).status();
  }
  absl::StatusOr<bool> held =
      request.outcome() == v1::ReportTaskRequest::FAILED
          ? store->RecordFailure(lease, request.error(), request.retryable(), options_.max_attempts,
                                 clock_.Now())
          : store->HoldsLease(lease);
  if (!held.ok()) return held.status();
  if (!*held) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", request.task_id(), " is not leased to worker ", request.worker_id(),
                     " at epoch ", request.lease_epoch(), "; nothing changed"));
  }
  if (request.outcome() == v1::ReportTaskRequest::COPIED) {
    metrics_.chunks_copied.Increment();
    metrics_.rows_copied.Increment(static_cast<double>(request.rows()));
    metrics_.bytes_copied.Increment(static_cast<double>(request.bytes()));
    metrics_.chunk_copy_seconds.Observe(static_cast<double>(request.duration_ms()) / 1000);
  } else if (request.outcome() == v1::ReportTaskRequest::FAILED) {
    metrics_.chunks_failed.Increment();
  }
  jobs_.Reported(request);
  return absl::OkStatus();
}

void Coordinator::MayHaveFreed(int64_t n) {
  absl::MutexLock lock(&mu_);
  if (nothing_until_ != absl::InfinitePast()) freed_ += n;
}

void Coordinator::ForgetNothingGrantable() {
  nothing_until_ = absl::InfinitePast();
  freed_ = 0;
}

void Coordinator::SweepLeases(TaskStore& store, Work work) {
  absl::StatusOr<Sweep> sweep = store.SweepLeases(work, options_.max_attempts, clock_.Now());
  if (!sweep.ok()) {
    LOG_EVERY_N(WARNING, 100) << "cannot sweep leases: " << sweep.status().message();
    return;
  }
  if (sweep->released > 0) {
    LOG(WARNING) << "released " << sweep->released
                 << " leases whose holders' target sessions are gone";
  }
  for (const Sweep::Lease& e : sweep->ended) {
    LOG(WARNING) << "ended the target session of the expired lease on chunk " << e.chunk
                 << " (task " << e.task_id << ") held by worker " << e.holder;
  }
  for (const Sweep::Lease& e : sweep->expired) {
    metrics_.lease_expiries.Increment();
    LOG(WARNING) << "lease on chunk " << e.chunk << " (task " << e.task_id << ") held by worker "
                 << e.holder << " expired, attempt " << e.attempts << " of "
                 << options_.max_attempts
                 << (e.attempts >= options_.max_attempts
                         ? ": attempts used up, it waits for the next run"
                         : "; it can be granted again after a back-off");
  }
  MayHaveFreed(sweep->released + static_cast<int64_t>(sweep->expired.size()));
}

absl::StatusOr<TaskCounts> Coordinator::ReadCounts(TaskStore& store, Work work) {
  SweepLeases(store, work);
  ReadThrottle(store);
  const absl::Time now = clock_.Now();
  absl::StatusOr<TaskCounts> counts = store.Counts(work, options_.max_attempts, now);
  if (!counts.ok()) return counts.status();
  metrics_.tasks_done.Set(static_cast<double>(counts->done));
  metrics_.tasks_failed.Set(static_cast<double>(counts->failed));
  metrics_.tasks_leased.Set(static_cast<double>(counts->leased));
  metrics_.tasks_pending.Set(static_cast<double>(
      std::max<int64_t>(0, counts->total - counts->done - counts->failed - counts->leased)));
  metrics_.connected_workers.Set(workers_.Connected(now));
  return counts;
}

absl::StatusOr<JobStore> Coordinator::OpenStore(const v1::Databases& databases,
                                                absl::string_view no_schema_message,
                                                const JobChecks& checks) {
  absl::StatusOr<JobStore> opened = open_store_(databases, checks);
  if (absl::IsNotFound(opened.status())) return absl::FailedPreconditionError(no_schema_message);
  if (!opened.ok()) return opened.status();
  // A task table staged by an older release gains what this one keeps (counts, indexes).
  if (absl::Status s = opened->store->Migrate(); !s.ok()) return s;
  return opened;
}

absl::Status Coordinator::Copy(const v1::CopyRequest& request,
                               const std::function<bool(const v1::CopyProgress&)>& emit) {
  absl::StatusOr<JobStore> opened =
      OpenStore(request.databases(),
                "nothing to copy: the target has no __backfill schema\n"
                "hint: run stage first to choose what to copy",
                JobChecks{!request.allow_active_jobs(), request.planned_workers()});
  if (!opened.ok()) return opened.status();
  Job proto;
  proto.work = v1::LeaseTaskResponse::COPY;
  proto.row_by_row = request.row_by_row();
  proto.databases = request.databases();
  proto.store = opened->store;
  proto.source_identity = opened->source_identity;
  absl::StatusOr<std::shared_ptr<const Job>> joined = jobs_.Join(proto, [&](Job& job) {
    TaskStore& store = *job.store;
    if (absl::Status s = store.ResetFailed(); !s.ok()) return s;
    if (request.has_max_bytes_per_second() || request.has_max_chunks_per_hypertable()) {
      if (absl::Status s =
              store.SetThrottle(request.has_max_bytes_per_second()
                                    ? std::optional<int64_t>(request.max_bytes_per_second())
                                    : std::nullopt,
                                request.has_max_chunks_per_hypertable()
                                    ? std::optional<int32_t>(request.max_chunks_per_hypertable())
                                    : std::nullopt);
          !s.ok()) {
        return s;
      }
    }
    ReadThrottle(store);
    // What was done before this job, read before any worker can lease from it: a chunk that
    // commits before the loop's first read is this run's, with its line and its count.
    absl::StatusOr<TaskCounts> before = ReadCounts(store, Work::kCopy);
    if (!before.ok()) return before.status();
    job.done_at_open = before->done;
    return absl::OkStatus();
  });
  if (!joined.ok()) return joined.status();
  std::shared_ptr<const Job> job = *std::move(joined);
  std::vector<std::string> reopened;  // sent with the first progress message
  if (request.repair()) {
    // Only once the job is ours: a verify still running would otherwise lose the re-opened
    // tasks from its report.
    absl::StatusOr<std::vector<std::string>> chunks = job->store->ReopenMismatched();
    if (!chunks.ok()) {
      jobs_.Leave(job);
      return chunks.status();
    }
    reopened = *std::move(chunks);
    LOG(INFO) << "copy --repair: re-opened " << reopened.size()
              << " chunks the last verify found different";
    jobs_.ReopenedBeforeStart(job, static_cast<int64_t>(reopened.size()));
  }
  {
    absl::MutexLock lock(&mu_);
    ForgetNothingGrantable();  // what an earlier job (or this one before re-opening) found
  }
  absl::StatusOr<v1::CopyProgress> last = Follow(job, std::move(reopened), emit);
  jobs_.Leave(job);
  if (!last.ok()) return last.status();
  emit(*last);
  return absl::OkStatus();
}

absl::StatusOr<v1::CopyProgress> Coordinator::Follow(
    const std::shared_ptr<const Job>& job, std::vector<std::string> reopened,
    const std::function<bool(const v1::CopyProgress&)>& emit) {
  const Work work = WorkOf(*job);
  size_t events_sent = 0;
  absl::Time unreachable_since = absl::InfiniteFuture();
  for (;;) {
    // Events up to here are reflected in the counts read next; a later one wakes the wait.
    const size_t events_before_read = jobs_.EventCount(job);
    absl::StatusOr<TaskCounts> counts = ReadCounts(*job->store, work);
    if (!counts.ok()) {
      // A restarting target: keep serving (workers retry their chunks) for a while.
      const absl::Time now = clock_.Now();
      unreachable_since = std::min(unreachable_since, now);
      if (!pg::IsRetryable(counts.status()) ||
          now - unreachable_since > options_.target_outage_tolerance) {
        return counts.status();
      }
      LOG(WARNING) << "cannot read progress, retrying: " << counts.status().message();
      absl::SleepFor(absl::Seconds(1));
      continue;
    }
    unreachable_since = absl::InfiniteFuture();
    v1::CopyProgress progress;
    progress.set_tasks_total(counts->total);
    progress.set_tasks_done(counts->done);
    progress.set_tasks_failed(counts->failed);
    progress.set_tasks_leased(counts->leased);
    progress.set_rows_copied(counts->rows);
    progress.set_bytes_copied(counts->bytes);
    progress.set_tasks_done_at_start(jobs_.DoneAtOpen(job));
    for (std::string& chunk : reopened) progress.add_reopened(std::move(chunk));
    reopened.clear();
    const bool finished = counts->done + counts->failed >= counts->total;
    if (finished && work == Work::kCopy) {
      // A worker reports after it commits: the last reports may still be on their way.
      // Wait for them (a while, not forever: a report can be lost) so every chunk is shown.
      jobs_.AwaitDoneReports(job, counts->done - progress.tasks_done_at_start(), absl::Seconds(2));
    }
    std::vector<v1::TaskEvent> events = jobs_.EventsFrom(job, events_sent);
    events_sent += events.size();
    for (v1::TaskEvent& event : events) *progress.add_events() = std::move(event);
    if (finished) {
      if (work == Work::kCopy) {
        // End with the tasks that failed, each with its stored error.
        absl::StatusOr<std::vector<FailedTask>> failed =
            job->store->FailedTasks(options_.max_attempts);
        if (failed.ok()) {
          for (const FailedTask& f : *failed) {
            v1::TaskEvent* event = progress.add_events();
            event->set_chunk(f.chunk);
            event->set_hypertable(f.hypertable);
            event->set_outcome(v1::ReportTaskRequest::FAILED);
            event->set_error(f.error);
          }
        }
      }
      progress.set_finished(true);
      return progress;
    }
    if (!emit(progress)) {
      return absl::CancelledError(work == Work::kCopy
                                      ? "the client went away; no new chunks are leased"
                                      : "the client went away; no new verifications are leased");
    }
    // Every task still open needs a report to finish: until that many have come, the job
    // cannot have ended, and the next read waits for the interval. (Waking on every report
    // would read the counts as often as workers finish chunks.)
    const int64_t open = counts->total - counts->done - counts->failed;
    jobs_.AwaitEvents(job, events_before_read + static_cast<size_t>(open),
                      options_.progress_interval);
  }
}

void Coordinator::Close() { jobs_.Close(); }

absl::StatusOr<v1::VerifyResponse> Coordinator::Verify(
    const v1::VerifyRequest& request, const std::function<bool(const v1::CopyProgress&)>& emit) {
  absl::StatusOr<JobStore> opened =
      OpenStore(request.databases(),
                "nothing to verify: the target has no __backfill schema\n"
                "hint: run stage and copy first",
                JobChecks{});
  if (!opened.ok()) return opened.status();
  Job proto;
  proto.work = v1::LeaseTaskResponse::VERIFY;
  proto.row_hash = request.row_hash();
  proto.databases = request.databases();
  proto.store = opened->store;
  proto.source_identity = opened->source_identity;
  // The last verification's results are cleared only by the call that opens the new one: a
  // verify refused (another job runs) or joining one in progress keeps them.
  absl::StatusOr<std::shared_ptr<const Job>> joined = jobs_.Join(proto, [](Job& job) {
    absl::StatusOr<int64_t> copied = job.store->ResetVerify();
    if (!copied.ok()) return copied.status();
    if (*copied == 0) {
      return absl::FailedPreconditionError(
          "nothing to verify: no task has been copied yet\nhint: run copy first");
    }
    return absl::OkStatus();
  });
  if (!joined.ok()) return joined.status();
  std::shared_ptr<const Job> job = *std::move(joined);
  {
    absl::MutexLock lock(&mu_);
    ForgetNothingGrantable();
  }
  absl::StatusOr<v1::CopyProgress> last = Follow(job, {}, emit);
  jobs_.Leave(job);
  if (!last.ok()) return last.status();

  absl::StatusOr<std::vector<VerifyRecord>> records = job->store->VerifyRecords();
  if (!records.ok()) return records.status();
  v1::VerifyResponse response;
  for (const VerifyRecord& record : *records) {
    v1::ChunkVerification* chunk = response.add_chunks();
    if (record.report_json.empty() ||
        !google::protobuf::util::JsonStringToMessage(record.report_json, chunk).ok()) {
      chunk->set_hypertable(record.hypertable);
      chunk->set_source_chunk(record.source_chunk);
      chunk->set_target_chunk(record.target_chunk);
      chunk->set_error(absl::StrCat("could not be verified: ", record.error));
      chunk->set_matches(false);
    }
    if (!chunk->matches()) response.set_mismatches(response.mismatches() + 1);
  }
  return response;
}

absl::StatusOr<Coordinator::Sessions> Coordinator::OpenBoth(const v1::Databases& databases) const {
  absl::StatusOr<std::unique_ptr<pg::Connection>> source = Open(databases.source(), "source");
  if (!source.ok()) return source.status();
  absl::StatusOr<std::unique_ptr<pg::Connection>> target = Open(databases.target(), "target");
  if (!target.ok()) return target.status();
  return Sessions{*std::move(source), *std::move(target)};
}

absl::StatusOr<v1::StageResponse> Coordinator::Stage(const v1::StageRequest& request) {
  absl::StatusOr<Sessions> sessions = OpenBoth(request.databases());
  if (!sessions.ok()) return sessions.status();
  return StageTasks(*sessions->source, *sessions->target, request);
}

absl::StatusOr<v1::RefreshCaggsResponse> Coordinator::RefreshCaggs(
    const v1::RefreshCaggsRequest& request) {
  absl::StatusOr<Sessions> sessions = OpenBoth(request.databases());
  if (!sessions.ok()) return sessions.status();
  return RefreshContinuousAggregates(*sessions->source, *sessions->target, request);
}

absl::StatusOr<v1::CleanResponse> Coordinator::Clean(const v1::CleanRequest& request) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      Open(request.databases().target(), "target");
  if (!target.ok()) return target.status();
  absl::StatusOr<bool> existed = DropTaskSchema(**target);
  if (!existed.ok()) return existed.status();
  v1::CleanResponse response;
  response.set_existed(*existed);
  return response;
}
}  // namespace backfill
