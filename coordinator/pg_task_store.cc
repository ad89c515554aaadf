#include "coordinator/pg_task_store.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "backfill_common_sql.h"
#include "backfill_coordinator_sql.h"
#include "common/quote.h"

namespace backfill {
namespace {

// A grant statement for a group of `workers`: its top-level `LIMIT cardinality($1::text[])`
// becomes a constant, the next power of two at least `workers` (at most 7 statements each).
// A LIMIT its generic plan cannot see would make PostgreSQL plan every call anew (the plan
// it would cache expects a tenth of the table); a constant lets the cached plan serve. A
// group smaller than its constant locks a few rows it does not grant until it commits.
absl::string_view GrantStatement(absl::string_view sql, size_t workers) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* const statements = new std::map<std::pair<const char*, size_t>, std::string>();
  size_t limit = 1;
  while (limit < workers) limit *= 2;
  absl::MutexLock lock(&mu);
  std::string& statement = (*statements)[{sql.data(), limit}];
  if (statement.empty()) {
    statement = absl::StrReplaceAll(
        sql, {{"LIMIT cardinality($1::text[])", absl::StrCat("LIMIT ", limit)}});
  }
  return statement;
}

// Migration N is the scripts at index N-1, run in order in one transaction.
const std::vector<std::vector<absl::string_view>>& Migrations() {
  static const auto* const migrations = new std::vector<std::vector<absl::string_view>>{
      // 1: the layout of every release before versions were kept, reached from any of them
      // (each statement is idempotent), plus the counts and indexes of scale.
      {sql::kCreateSchema, sql::kCreateThrottle},
      // 2: bulk updates of the task table may correct the counts themselves.
      {sql::kMigration2},
      // 3: heartbeats update tasks in place; grants find free and expired tasks apart.
      {sql::kMigration3},
      // 4: grants skip tasks whose attempts are used up by index, not one by one.
      {sql::kMigration4},
      // 5: a done task names no holder (done_by), so the planner's view of the held is true.
      {sql::kMigration5},
  };
  return *migrations;
}

absl::Status MigrateInTransaction(pg::Connection& target) {
  // Migrations wait for the task table however long it takes (the pool's sessions give up
  // on locks after a while).
  if (absl::Status s = target.ExecScript("SET LOCAL lock_timeout = 0"); !s.ok()) return s;
  if (absl::StatusOr<pg::Result> r = target.Exec(sql::kLockSchema); !r.ok()) return r.status();
  if (absl::Status s = target.ExecScript(sql::kCreateSchemaVersion); !s.ok()) return s;
  absl::StatusOr<pg::Result> row = target.Exec(sql::kSchemaVersion);
  if (!row.ok()) return row.status();
  const int64_t version = row->rows() == 0 ? 0 : row->GetInt(0, 0);
  const int latest = static_cast<int>(Migrations().size());
  if (version > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the target's __backfill schema is version ", version,
        ", written by a newer release of timescaledb-backfill; this one knows versions up to ",
        latest, "\nhint: run the release that staged this migration (or a newer one)"));
  }
  for (int v = static_cast<int>(version) + 1; v <= latest; ++v) {
    for (absl::string_view script : Migrations()[static_cast<size_t>(v - 1)]) {
      if (absl::Status s = target.ExecScript(script); !s.ok()) return s;
    }
    absl::StatusOr<pg::Result> set = target.Exec(sql::kSetSchemaVersion, {absl::StrCat(v)});
    if (!set.ok()) return set.status();
  }
  return absl::OkStatus();
}

std::string Millis(absl::Duration d) { return absl::StrCat(absl::ToInt64Milliseconds(d)); }

}  // namespace

static_assert(kTaskSchemaVersion == 5, "add the migration to Migrations()");

std::string TimestampParam(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", t, absl::UTCTimeZone());
}

absl::Status MigrateTaskSchema(pg::Connection& target) {
  if (absl::StatusOr<pg::Result> r = target.Exec("BEGIN"); !r.ok()) return r.status();
  absl::Status s = MigrateInTransaction(target);
  if (!s.ok()) {
    (void)target.Exec("ROLLBACK");
    return s;
  }
  absl::StatusOr<pg::Result> committed = target.Exec("COMMIT");
  return committed.status();
}

absl::StatusOr<pg::Result> PgTaskStore::Exec(absl::string_view sql,
                                             const std::vector<pg::Param>& params) {
  absl::StatusOr<ConnectionPool::Handle> conn = pool_->Acquire();
  if (!conn.ok()) return conn.status();
  // The same few statements, many times a second on each connection.
  return (*conn)->ExecPrepared(sql, params);
}

PgTaskStore::PgTaskStore(std::shared_ptr<ConnectionPool> pool)
    : pool_(std::move(pool)),
      // Two groups at once leave the pool's other sessions to heartbeats and reports.
      batcher_(
          [this](const LeaseRequest& settings, const std::vector<std::string>& workers) {
            return GrantTo(settings, workers);
          },
          /*max_running=*/2, /*max_group=*/64) {}

absl::StatusOr<std::optional<Grant>> PgTaskStore::Lease(const LeaseRequest& request) {
  return batcher_.Lease(request);
}

absl::StatusOr<std::vector<std::optional<Grant>>> PgTaskStore::GrantTo(
    const LeaseRequest& settings, const std::vector<std::string>& workers) {
  const bool verify = settings.work == Work::kVerify;
  const bool capped = !verify && settings.max_per_hypertable > 0;
  std::vector<pg::Param> params = {TextArrayParam(workers), Millis(settings.lease_timeout),
                                   absl::StrCat(settings.max_attempts)};
  if (capped) params.emplace_back(absl::StrCat(settings.max_per_hypertable));
  params.emplace_back(TimestampParam(settings.now));
  absl::StatusOr<pg::Result> rows;
  if (capped) {
    // Under a cap, grants take turns: two at once could both see room for one more.
    absl::MutexLock serialized(&capped_mu_);
    rows = Exec(GrantStatement(sql::kLeaseTaskCapped, workers.size()), params);
  } else {
    rows = Exec(GrantStatement(verify ? sql::kLeaseVerifyTask : sql::kLeaseTask, workers.size()),
                params);
  }
  if (!rows.ok()) return rows.status();
  std::vector<std::optional<Grant>> grants(workers.size());
  for (int i = 0; i < rows->rows(); ++i) {
    const int64_t asking = rows->GetInt(i, 14);  // 1-based position in `workers`
    if (asking < 1 || asking > static_cast<int64_t>(workers.size())) {
      return absl::InternalError(
          absl::StrCat("a grant for worker ", asking, " of ", workers.size()));
    }
    Grant& grant = grants[static_cast<size_t>(asking - 1)].emplace();
    v1::Task& task = grant.task;
    task.set_task_id(rows->GetInt(i, 0));
    task.set_lease_epoch(rows->GetInt(i, 1));
    task.set_hypertable_schema(rows->Get(i, 2));
    task.set_hypertable_name(rows->Get(i, 3));
    task.set_source_chunk_schema(rows->Get(i, 4));
    task.set_source_chunk_name(rows->Get(i, 5));
    task.set_target_chunk_schema(rows->Get(i, 6));
    task.set_target_chunk_name(rows->Get(i, 7));
    task.set_time_column(rows->Get(i, 8));
    task.set_time_type(rows->Get(i, 9));
    task.set_cut(rows->GetBool(i, 10));
    task.set_until_literal(rows->Get(i, 11));
    task.set_from_literal(rows->Get(i, 12));
    task.set_hypertable_display(rows->Get(i, 13));
    if (!verify) {
      task.set_range_start_internal(rows->GetInt(i, 15));
      task.set_range_end_internal(rows->GetInt(i, 16));
    }
  }
  return grants;
}

absl::StatusOr<bool> PgTaskStore::ExtendLease(const LeaseRef& lease, absl::Duration timeout,
                                              absl::Time now, std::optional<int32_t> backend_pid) {
  absl::StatusOr<pg::Result> row = Exec(
      sql::kExtendLease,
      {absl::StrCat(lease.task_id), absl::StrCat(lease.epoch), lease.worker_id, Millis(timeout),
       backend_pid.has_value() ? pg::Param(absl::StrCat(*backend_pid)) : pg::Param(),
       TimestampParam(now)});
  if (!row.ok()) return row.status();
  return row->rows() == 1 && row->GetBool(0, 0);
}

absl::StatusOr<bool> PgTaskStore::HoldsLease(const LeaseRef& lease) {
  absl::StatusOr<pg::Result> row = Exec(
      sql::kCheckLease, {absl::StrCat(lease.task_id), lease.worker_id, absl::StrCat(lease.epoch)});
  if (!row.ok()) return row.status();
  return row->GetBool(0, 0);
}

absl::StatusOr<bool> PgTaskStore::RecordFailure(const LeaseRef& lease, const std::string& error,
                                                bool retryable, int max_attempts, absl::Time now) {
  absl::StatusOr<pg::Result> updated =
      Exec(sql::kRecordFailure, {absl::StrCat(lease.task_id), absl::StrCat(lease.epoch), error,
                                 retryable ? "true" : "false", absl::StrCat(max_attempts),
                                 lease.worker_id, TimestampParam(now)});
  if (!updated.ok()) return updated.status();
  return updated->affected_rows() > 0;
}

absl::StatusOr<bool> PgTaskStore::ReleaseLease(const LeaseRef& lease) {
  absl::StatusOr<pg::Result> released =
      Exec(sql::kReleaseLease,
           {absl::StrCat(lease.task_id), absl::StrCat(lease.epoch), lease.worker_id});
  if (!released.ok()) return released.status();
  return released->affected_rows() > 0;
}

absl::StatusOr<Sweep> PgTaskStore::SweepLeases(Work work, int max_attempts, absl::Time now) {
  Sweep sweep;
  absl::StatusOr<pg::Result> released = Exec(sql::kReleaseOrphanedLeases, {TimestampParam(now)});
  if (!released.ok()) return released.status();
  sweep.released = released->affected_rows();
  absl::StatusOr<pg::Result> ended = Exec(sql::kEndExpiredSessions, {TimestampParam(now)});
  if (!ended.ok()) return ended.status();
  for (int i = 0; i < ended->rows(); ++i) {
    if (!ended->GetBool(i, 3)) continue;
    sweep.ended.push_back(Sweep::Lease{ended->GetInt(i, 0), ended->Get(i, 1), ended->Get(i, 2)});
  }
  absl::StatusOr<pg::Result> expired =
      Exec(work == Work::kVerify ? sql::kExpireVerifyLeases : sql::kExpireLeases,
           {TimestampParam(now), absl::StrCat(max_attempts)});
  if (!expired.ok()) return expired.status();
  for (int i = 0; i < expired->rows(); ++i) {
    sweep.expired.push_back(Sweep::Lease{expired->GetInt(i, 0), expired->Get(i, 1),
                                         expired->Get(i, 2),
                                         static_cast<int>(expired->GetInt(i, 3))});
  }
  return sweep;
}

absl::StatusOr<TaskCounts> PgTaskStore::Counts(Work work, int max_attempts, absl::Time now) {
  const bool verify = work == Work::kVerify;
  absl::StatusOr<pg::Result> row = Exec(verify ? sql::kVerifyProgress : sql::kCopyProgress,
                                        {absl::StrCat(max_attempts), TimestampParam(now)});
  if (!row.ok()) return row.status();
  TaskCounts counts;
  counts.total = row->GetInt(0, 0);
  counts.done = row->GetInt(0, 1);
  counts.failed = row->GetInt(0, 2);
  if (verify) {
    counts.mismatches = row->GetInt(0, 3);
    counts.leased = row->GetInt(0, 4);
  } else {
    counts.rows = row->GetInt(0, 3);
    counts.bytes = row->GetInt(0, 4);
    counts.leased = row->GetInt(0, 5);
  }
  return counts;
}

absl::StatusOr<std::vector<FailedTask>> PgTaskStore::FailedTasks(int max_attempts) {
  absl::StatusOr<pg::Result> rows = Exec(sql::kFailedTasks, {absl::StrCat(max_attempts)});
  if (!rows.ok()) return rows.status();
  std::vector<FailedTask> failed;
  failed.reserve(static_cast<size_t>(rows->rows()));
  for (int i = 0; i < rows->rows(); ++i) {
    failed.push_back(FailedTask{rows->Get(i, 0), rows->Get(i, 1), rows->Get(i, 2)});
  }
  return failed;
}

absl::StatusOr<std::optional<Throttle>> PgTaskStore::ReadThrottle() {
  absl::StatusOr<pg::Result> row = Exec(sql::kReadThrottle);
  if (!row.ok()) {
    // An older schema without the table: not throttled.
    if (pg::SqlState(row.status()) == "42P01") return std::nullopt;
    return row.status();
  }
  if (row->rows() == 0) return std::nullopt;
  return Throttle{row->GetInt(0, 0), static_cast<int32_t>(row->GetInt(0, 1))};
}

absl::Status PgTaskStore::Migrate() {
  absl::StatusOr<ConnectionPool::Handle> conn = pool_->Acquire();
  if (!conn.ok()) return conn.status();
  return MigrateTaskSchema(**conn);
}

absl::Status PgTaskStore::ResetFailed() { return Exec(sql::kResetFailed).status(); }

absl::Status PgTaskStore::SetThrottle(std::optional<int64_t> max_bytes_per_second,
                                      std::optional<int32_t> max_chunks_per_hypertable) {
  return Exec(sql::kSetThrottle,
              {max_bytes_per_second ? pg::Param(absl::StrCat(*max_bytes_per_second)) : pg::Param(),
               max_chunks_per_hypertable ? pg::Param(absl::StrCat(*max_chunks_per_hypertable))
                                         : pg::Param()})
      .status();
}

absl::StatusOr<std::vector<std::string>> PgTaskStore::ReopenMismatched() {
  absl::StatusOr<pg::Result> verified = Exec(sql::kVerifiedCount);
  if (!verified.ok()) return verified.status();
  if (verified->GetInt(0, 0) == 0) {
    return absl::FailedPreconditionError(
        "nothing to repair: no copied chunk has been verified\nhint: run verify first; copy "
        "--repair then copies again the chunks it found different");
  }
  absl::StatusOr<pg::Result> rows = Exec(sql::kReopenMismatched);
  if (!rows.ok()) return rows.status();
  std::vector<std::string> chunks;
  chunks.reserve(static_cast<size_t>(rows->rows()));
  for (int i = 0; i < rows->rows(); ++i) chunks.push_back(rows->Get(i, 0));
  std::sort(chunks.begin(), chunks.end());
  return chunks;
}

absl::StatusOr<int64_t> PgTaskStore::ResetVerify() {
  // Every copied task at once: the counts are set in the same transaction, not row by row.
  absl::StatusOr<ConnectionPool::Handle> conn = pool_->Acquire();
  if (!conn.ok()) return conn.status();
  pg::Connection& c = **conn;
  int64_t reset = 0;
  absl::Status s = [&]() -> absl::Status {
    for (absl::string_view statement :
         {absl::string_view("BEGIN"), absl::string_view("SET LOCAL lock_timeout = 0"),
          sql::kLockTasks, sql::kCountsByStatement}) {
      if (absl::StatusOr<pg::Result> r = c.Exec(statement); !r.ok()) return r.status();
    }
    absl::StatusOr<pg::Result> updated = c.Exec(sql::kResetVerify);
    if (!updated.ok()) return updated.status();
    reset = updated->affected_rows();
    if (absl::StatusOr<pg::Result> r = c.Exec(sql::kZeroVerifiedCounts); !r.ok()) {
      return r.status();
    }
    return c.Exec("COMMIT").status();
  }();
  if (!s.ok()) {
    (void)c.Exec("ROLLBACK");
    return s;
  }
  return reset;
}

absl::StatusOr<std::vector<VerifyRecord>> PgTaskStore::VerifyRecords() {
  absl::StatusOr<pg::Result> rows = Exec(sql::kVerifyReports);
  if (!rows.ok()) return rows.status();
  std::vector<VerifyRecord> records;
  records.reserve(static_cast<size_t>(rows->rows()));
  for (int i = 0; i < rows->rows(); ++i) {
    records.push_back(VerifyRecord{rows->Get(i, 0), rows->Get(i, 1), rows->Get(i, 2),
                                   rows->Get(i, 3), rows->Get(i, 4)});
  }
  return records;
}

}  // namespace backfill
