#include "coordinator/task_reports.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backfill_coordinator_sql.h"

namespace backfill {
namespace {

double GetDouble(const pg::Result& result, int row, int column) {
  return std::strtod(result.Get(row, column).c_str(), nullptr);
}

void Add(HypertableStatus* sum, const HypertableStatus& h) {
  sum->total += h.total;
  sum->finished += h.finished;
  sum->pending += h.pending;
  sum->in_progress += h.in_progress;
  sum->failing += h.failing;
  sum->rows += h.rows;
  sum->bytes += h.bytes;
  sum->verified += h.verified;
  sum->differ += h.differ;
}

absl::Status RequireSchema(pg::Connection& target) {
  absl::StatusOr<pg::Result> exists = target.Exec(sql::kSchemaExists);
  if (!exists.ok()) return exists.status();
  if (!exists->GetBool(0, 0)) {
    return absl::FailedPreconditionError(
        "nothing staged: the target has no __backfill schema\nhint: run stage first");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MigrationStatus> ReadMigrationStatus(pg::Connection& target, double window_seconds) {
  if (absl::Status s = RequireSchema(target); !s.ok()) return s;
  MigrationStatus status;
  absl::StatusOr<pg::Result> rows = target.Exec(sql::kStatusHypertables);
  if (!rows.ok()) return rows.status();
  for (int i = 0; i < rows->rows(); ++i) {
    HypertableStatus h;
    h.schema = rows->Get(i, 0);
    h.name = rows->Get(i, 1);
    h.total = rows->GetInt(i, 2);
    h.finished = rows->GetInt(i, 3);
    h.pending = rows->GetInt(i, 4);
    h.in_progress = rows->GetInt(i, 5);
    h.failing = rows->GetInt(i, 6);
    h.rows = rows->GetInt(i, 7);
    h.bytes = rows->GetInt(i, 8);
    h.verified = rows->GetInt(i, 9);
    h.differ = rows->GetInt(i, 10);
    h.display = rows->Get(i, 11);
    Add(&status.totals, h);
    status.hypertables.push_back(std::move(h));
  }
  absl::StatusOr<pg::Result> leases = target.Exec(sql::kStatusLeases);
  if (!leases.ok()) return leases.status();
  for (int i = 0; i < leases->rows(); ++i) {
    status.leases.push_back({leases->Get(i, 0), leases->Get(i, 1), leases->Get(i, 2),
                             GetDouble(*leases, i, 3), leases->GetInt(i, 4)});
  }
  absl::StatusOr<pg::Result> failing = target.Exec(sql::kStatusFailing);
  if (!failing.ok()) return failing.status();
  for (int i = 0; i < failing->rows(); ++i) {
    status.failing.push_back(
        {failing->Get(i, 0), failing->Get(i, 1), failing->Get(i, 3), failing->GetInt(i, 2)});
  }
  absl::StatusOr<pg::Result> recent =
      target.Exec(sql::kStatusThroughput, {absl::StrCat(window_seconds)});
  if (!recent.ok()) return recent.status();
  const double seconds = GetDouble(*recent, 0, 3);
  if (recent->GetInt(0, 0) > 0 && seconds > 0) {
    status.window_seconds = seconds;
    status.chunks_per_second = static_cast<double>(recent->GetInt(0, 0)) / seconds;
    status.rows_per_second = static_cast<double>(recent->GetInt(0, 1)) / seconds;
    status.bytes_per_second = static_cast<double>(recent->GetInt(0, 2)) / seconds;
    // An ETA only while something copies: after a stop the recent rate says nothing.
    if (!status.leases.empty()) {
      status.eta_seconds = static_cast<double>(status.totals.pending) / status.chunks_per_second;
    }
  } else if (status.totals.pending == 0) {
    status.eta_seconds = 0;
  }
  return status;
}

absl::StatusOr<std::optional<CopyRunSummary>> ReadCopiedSince(pg::Connection& target,
                                                              double seconds) {
  absl::StatusOr<pg::Result> rows = target.Exec(sql::kInterruptedCopies, {absl::StrCat(seconds)});
  if (!rows.ok()) return rows.status();
  if (rows->rows() == 0) return std::nullopt;
  CopyRunSummary summary;
  summary.left = rows->GetInt(0, 3);
  summary.total = rows->GetInt(0, 4);
  for (int i = 0; i < rows->rows(); ++i) {
    if (rows->IsNull(i, 0)) continue;  // the one row saying nothing was copied
    summary.copied.push_back({rows->Get(i, 0), rows->GetInt(i, 1), rows->GetInt(i, 2)});
  }
  return summary;
}

absl::StatusOr<std::vector<int64_t>> HeldTasks(pg::Connection& target,
                                               const std::string& worker_prefix) {
  absl::StatusOr<pg::Result> held = target.Exec(sql::kHeldChunks, {worker_prefix});
  if (!held.ok()) return held.status();
  std::vector<int64_t> ids;
  ids.reserve(held->rows());
  for (int i = 0; i < held->rows(); ++i) ids.push_back(held->GetInt(i, 0));
  return ids;
}

absl::StatusOr<std::vector<TaskOutcome>> TaskOutcomes(pg::Connection& target,
                                                      const std::vector<int64_t>& task_ids) {
  absl::StatusOr<pg::Result> done =
      target.Exec(sql::kChunksDone, {absl::StrCat("{", absl::StrJoin(task_ids, ","), "}")});
  if (!done.ok()) return done.status();
  std::vector<TaskOutcome> outcomes;
  outcomes.reserve(done->rows());
  for (int i = 0; i < done->rows(); ++i) outcomes.push_back({done->Get(i, 0), done->GetBool(i, 1)});
  return outcomes;
}

absl::StatusOr<Throttle> StoreThrottle(pg::Connection& target,
                                       std::optional<int64_t> max_bytes_per_second,
                                       std::optional<int32_t> max_chunks_per_hypertable) {
  if (absl::Status s = RequireSchema(target); !s.ok()) return s;
  if (absl::Status s = target.ExecScript(sql::kCreateThrottle); !s.ok()) return s;
  absl::StatusOr<pg::Result> row = target.Exec(
      sql::kSetThrottle,
      {max_bytes_per_second.has_value() ? pg::Param(absl::StrCat(*max_bytes_per_second))
                                        : pg::Param(),
       max_chunks_per_hypertable.has_value() ? pg::Param(absl::StrCat(*max_chunks_per_hypertable))
                                             : pg::Param()});
  if (!row.ok()) return row.status();
  return Throttle{row->GetInt(0, 0), static_cast<int32_t>(row->GetInt(0, 1))};
}

absl::StatusOr<bool> DropTaskSchema(pg::Connection& target) {
  absl::StatusOr<pg::Result> exists = target.Exec(sql::kSchemaExists);
  if (!exists.ok()) return exists.status();
  if (absl::Status s = target.ExecScript(sql::kDropSchema); !s.ok()) return s;
  return exists->GetBool(0, 0);
}

}  // namespace backfill
