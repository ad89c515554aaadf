#include "worker/chunk_copier.h"

#include <glog/logging.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backfill_worker_sql.h"
#include "common/catalog.h"
#include "common/quote.h"
#include "common/task_range.h"

namespace backfill {
namespace {

// Ends whatever transaction is open on `conn`; errors are irrelevant here (a broken
// connection rolls back on the server by itself).
void Rollback(pg::Connection& conn) { (void)conn.ExecScript("ROLLBACK"); }

absl::StatusOr<CopyOutcome> CopyInTransactions(pg::Connection& source, pg::Connection& target,
                                               const CopySpec& spec) {
  const std::string source_chunk = QuoteQualified(spec.source_chunk_schema, spec.source_chunk_name);
  const std::string target_chunk = QuoteQualified(spec.target_chunk_schema, spec.target_chunk_name);

  // The source snapshot is taken by the first query and serves the whole chunk.
  if (absl::Status s = source.ExecScript("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      !s.ok()) {
    return s;
  }
  // Data and completion commit together, so an unflushed commit that is lost in a crash
  // loses both: the task is simply copied again.
  if (absl::Status s = target.ExecScript("BEGIN; SET LOCAL synchronous_commit = off"); !s.ok()) {
    return s;
  }
  absl::StatusOr<pg::Result> fence =
      target.Exec(sql::kFenceTask, {absl::StrCat(spec.task_id), absl::StrCat(spec.lease_epoch)});
  if (!fence.ok()) return fence.status();
  if (fence->rows() == 0) return CopyOutcome{CopyOutcome::Kind::kFenced, 0, 0};

  absl::StatusOr<bool> exists = RelationExists(source, source_chunk);
  if (!exists.ok()) return exists.status();
  CopyOutcome outcome;
  std::string message;
  if (!*exists) {
    outcome.kind = CopyOutcome::Kind::kSourceMissing;
    message =
        absl::StrCat("source chunk ", DisplayName(spec.source_chunk_schema, spec.source_chunk_name),
                     " no longer exists; skipped");
  } else {
    absl::StatusOr<std::vector<Column>> columns = ListColumns(source, source_chunk);
    if (!columns.ok()) return columns.status();
    bool binary = true;
    std::vector<std::string> names;
    names.reserve(columns->size());
    for (const Column& c : *columns) {
      names.push_back(QuoteIdent(c.name));
      binary = binary && c.binary_io;
    }
    const std::string column_list = absl::StrJoin(names, ", ");
    const std::string where =
        TaskRangeWhere(spec.cut, spec.time_column, spec.time_type, spec.until_literal);
    const std::string format = binary ? "binary" : "text";

    absl::Status deleted = target.ExecScript(absl::StrCat("DELETE FROM ", target_chunk, where));
    if (!deleted.ok()) return deleted;
    absl::StatusOr<pg::CopyStats> stats =
        target.CopyFrom(source,
                        absl::StrCat("COPY (SELECT ", column_list, " FROM ", source_chunk, where,
                                     ") TO STDOUT (FORMAT ", format, ")"),
                        absl::StrCat("COPY ", target_chunk, " (", column_list,
                                     ") FROM STDIN (FORMAT ", format, ")"));
    if (!stats.ok()) return stats.status();
    outcome.rows = stats->rows;
    outcome.bytes = stats->bytes;
    message = absl::StrCat("copied ", stats->rows, " rows from ",
                           DisplayName(spec.source_chunk_schema, spec.source_chunk_name));
  }
  absl::StatusOr<pg::Result> completed = target.Exec(
      sql::kCompleteTask, {absl::StrCat(spec.task_id), absl::StrCat(spec.lease_epoch),
                           absl::StrCat(outcome.rows), absl::StrCat(outcome.bytes), message});
  if (!completed.ok()) return completed.status();
  if (completed->rows() == 0) return CopyOutcome{CopyOutcome::Kind::kFenced, 0, 0};
  if (absl::Status s = target.ExecScript("COMMIT"); !s.ok()) return s;
  Rollback(source);
  return outcome;
}

}  // namespace

absl::StatusOr<CopyOutcome> CopyChunk(pg::Connection& source, pg::Connection& target,
                                      const CopySpec& spec) {
  absl::StatusOr<CopyOutcome> outcome = CopyInTransactions(source, target, spec);
  if (!outcome.ok() || outcome->kind == CopyOutcome::Kind::kFenced) {
    Rollback(target);
    Rollback(source);
  }
  return outcome;
}

}  // namespace backfill
