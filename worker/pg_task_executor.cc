#include "worker/pg_task_executor.h"

#include <glog/logging.h>

#include "common/catalog.h"
#include "worker/chunk_copier.h"
#include "worker/chunk_verifier.h"

namespace backfill {

namespace {

// The fields a copy and a verification of the same leased task share.
template <typename Spec>
void FillFromTask(const v1::Task& task, Spec* spec) {
  spec->task_id = task.task_id();
  spec->lease_epoch = task.lease_epoch();
  spec->source_chunk_schema = task.source_chunk_schema();
  spec->source_chunk_name = task.source_chunk_name();
  spec->target_chunk_schema = task.target_chunk_schema();
  spec->target_chunk_name = task.target_chunk_name();
  spec->time_column = task.time_column();
  spec->time_type = task.time_type();
  spec->cut = task.cut();
  spec->until_literal = task.until_literal();
  spec->from_literal = task.from_literal();
}

void ReportError(const absl::Status& status, v1::ReportTaskRequest* report) {
  report->set_outcome(v1::ReportTaskRequest::FAILED);
  report->set_error(std::string(status.message()));
  report->set_retryable(pg::IsRetryable(status));
  report->set_source_side_lost(SourceSideLost(status));
}

}  // namespace

PgTaskExecutor::PgTaskExecutor(PgTaskExecutorOptions options) : options_(std::move(options)) {}

absl::Status PgTaskExecutor::Connect(const v1::LeaseTaskResponse& lease) {
  const v1::Databases& databases = lease.databases();
  const std::string& source =
      options_.source_override.empty() ? databases.source() : options_.source_override;
  const std::string& target =
      options_.target_override.empty() ? databases.target() : options_.target_override;
  // Paired with a source-side worker: no source connection here at all (this host may not
  // even reach the source).
  const bool through_source_side = lease.has_source_side() && options_.source_side != nullptr;
  bool reconnected = false;
  if (!through_source_side &&
      (source_ == nullptr || !source_->ok() || source != source_conninfo_)) {
    reconnected = true;
    source_.reset();
    absl::StatusOr<std::unique_ptr<pg::Connection>> conn =
        pg::Connection::Open(source, options_.application_name, "source");
    if (!conn.ok()) return conn.status();
    source_ = *std::move(conn);
    source_conninfo_ = source;
  }
  if (target_ == nullptr || !target_->ok() || target != target_conninfo_) {
    reconnected = true;
    target_.reset();
    absl::StatusOr<std::unique_ptr<pg::Connection>> conn =
        pg::Connection::Open(target, options_.application_name, "target");
    if (!conn.ok()) return conn.status();
    target_ = *std::move(conn);
    target_conninfo_ = target;
    absl::StatusOr<bool> superuser = IsSuperuser(*target_);
    if (!superuser.ok()) return superuser.status();
    target_superuser_ = *superuser;
    absl::StatusOr<std::string> skip = SkipInvalidationStatement(*target_);
    if (!skip.ok()) return skip.status();
    skip_invalidation_ = *std::move(skip);
    if (skip_invalidation_.empty()) {
      LOG(WARNING) << "this target cannot keep backfilled rows out of its continuous-aggregate "
                      "invalidation log; the next refresh will re-materialize their ranges";
    }
  }
  if (through_source_side) return ConnectSourceSide(lease);
  if (reconnected) {
    // Either side may have been upgraded since the copy began: check again on every new
    // session, and keep none that failed the check so the next task checks again.
    if (absl::Status s = CheckVersions(*source_, *target_); !s.ok()) {
      Disconnect();
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status PgTaskExecutor::ConnectSourceSide(const v1::LeaseTaskResponse& lease) {
  v1::SourceOpen open;
  open.set_task_id(lease.task().task_id());
  open.set_lease_epoch(lease.task().lease_epoch());
  open.set_worker_id(options_.worker_name);
  absl::StatusOr<std::unique_ptr<SourceSideSession>> session =
      options_.source_side->Open(lease.source_side().address(), open, nullptr);
  if (!session.ok()) return session.status();
  // Each task's session is new on the source side: its version is checked every time, as
  // the source-side worker read it at the open (next to the source, no round trip more).
  if ((*session)->timescaledb_version().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the source-side worker at ", lease.source_side().address(),
                     " runs another release of backfill-worker: run the same release on both "
                     "sides"));
  }
  absl::StatusOr<TimescaleVersion> source_version =
      ParseTimescaleVersion((*session)->timescaledb_version());
  if (!source_version.ok()) return source_version.status();
  if (absl::Status s = CheckSupportedVersion((*session)->role(), *source_version); !s.ok()) {
    return s;
  }
  absl::StatusOr<Catalog> target_catalog = Catalog::Load(*target_);
  if (!target_catalog.ok()) return target_catalog.status();
  if (absl::Status s = CheckSameVersion(*source_version, target_catalog->version()); !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&source_side_mu_);
  source_side_ = *std::move(session);
  return absl::OkStatus();
}

int PgTaskExecutor::TargetBackendPid() const {
  return target_ != nullptr ? target_->backend_pid() : 0;
}

void PgTaskExecutor::Cancel() {
  if (target_ != nullptr) target_->Cancel();
  if (source_ != nullptr) source_->Cancel();
  absl::MutexLock lock(&source_side_mu_);
  if (source_side_ != nullptr) source_side_->Cancel();
}

void PgTaskExecutor::Disconnect() {
  source_.reset();
  target_.reset();
}

void PgTaskExecutor::Run(const v1::LeaseTaskResponse& lease, RateLimiter* limiter,
                         v1::ReportTaskRequest* report) {
  SourceSideSession* side;
  {
    absl::MutexLock lock(&source_side_mu_);
    side = source_side_.get();
  }
  pg::Queryable& source = side != nullptr ? static_cast<pg::Queryable&>(*side) : *source_;
  // Through a source-side worker, --max-rate counts the bytes on the link: compressed.
  if (side != nullptr) side->set_limiter(limiter);
  if (lease.work() == v1::LeaseTaskResponse::VERIFY) {
    Verify(lease, source, report);
  } else {
    Copy(lease, source, side != nullptr ? nullptr : limiter, report);
  }
  if (side == nullptr) return;
  VLOG(1) << "task " << lease.task().task_id() << ": " << side->round_trips() << " round trips; "
          << side->link_bytes() << " bytes crossed the link for " << side->raw_bytes()
          << " bytes of COPY data";
  std::unique_ptr<SourceSideSession> ended;
  {
    absl::MutexLock lock(&source_side_mu_);
    ended = std::move(source_side_);
  }
  ended.reset();  // the stream ends: the source-side worker ends the session
}

void PgTaskExecutor::Copy(const v1::LeaseTaskResponse& lease, pg::Queryable& source,
                          RateLimiter* limiter, v1::ReportTaskRequest* report) {
  const v1::Task& task = lease.task();
  CopySpec spec;
  FillFromTask(task, &spec);
  spec.skip_invalidation = skip_invalidation_;
  spec.target_superuser = target_superuser_;
  spec.range_start = task.range_start_internal();
  spec.range_end = task.range_end_internal();
  // Carried only where the copy's own writes stay out of the target's log: the threshold the
  // carry raises would log them, and the next refresh would redo the copied range.
  spec.carry_invalidations = target_superuser_ && !skip_invalidation_.empty();
  spec.limiter = limiter;
  spec.bulk_load = !lease.row_by_row();
  absl::StatusOr<CopyOutcome> outcome = CopyChunk(source, *target_, spec);
  if (!outcome.ok()) return ReportError(outcome.status(), report);
  switch (outcome->kind) {
    case CopyOutcome::Kind::kCopied:
      report->set_outcome(v1::ReportTaskRequest::COPIED);
      break;
    case CopyOutcome::Kind::kSourceMissing:
      report->set_outcome(v1::ReportTaskRequest::SOURCE_MISSING);
      break;
    case CopyOutcome::Kind::kFenced:
      report->set_outcome(v1::ReportTaskRequest::FENCED);
      break;
  }
  report->set_rows(outcome->rows);
  report->set_bytes(outcome->bytes);
  if (!outcome->row_by_row.empty()) report->set_note("row by row: " + outcome->row_by_row);
}

void PgTaskExecutor::Verify(const v1::LeaseTaskResponse& lease, pg::Queryable& source,
                            v1::ReportTaskRequest* report) {
  const v1::Task& task = lease.task();
  VerifySpec spec;
  FillFromTask(task, &spec);
  spec.hypertable_schema = task.hypertable_schema();
  spec.hypertable_name = task.hypertable_name();
  spec.hypertable_display = task.hypertable_display();
  spec.row_hash = lease.row_hash();
  absl::StatusOr<VerifyOutcome> outcome = VerifyChunk(source, *target_, spec);
  if (!outcome.ok()) return ReportError(outcome.status(), report);
  if (outcome->fenced) {
    report->set_outcome(v1::ReportTaskRequest::FENCED);
    return;
  }
  report->set_outcome(v1::ReportTaskRequest::VERIFIED);
  report->set_matches(outcome->report.matches());
  report->set_rows(outcome->report.source_rows());
}

}  // namespace backfill
