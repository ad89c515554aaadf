#include "coordinator/verifier.h"

#include "absl/strings/str_cat.h"
#include "backfill_coordinator_sql.h"
#include "common/catalog.h"
#include "common/quote.h"
#include "common/task_range.h"

namespace backfill {
namespace {

absl::StatusOr<int64_t> CountRows(pg::Connection& conn, const std::string& table,
                                  const std::string& where) {
  absl::StatusOr<pg::Result> rows = conn.Exec(absl::StrCat("SELECT count(*) FROM ", table, where));
  if (!rows.ok()) return rows.status();
  return rows->GetInt(0, 0);
}

}  // namespace

absl::StatusOr<v1::VerifyResponse> VerifyCopiedTasks(pg::Connection& source,
                                                     pg::Connection& target) {
  absl::StatusOr<pg::Result> exists = target.Exec(sql::kSchemaExists);
  if (!exists.ok()) return exists.status();
  if (!exists->GetBool(0, 0)) {
    return absl::FailedPreconditionError(
        "nothing to verify: the target has no __backfill schema\n"
        "hint: run stage and copy first");
  }
  absl::StatusOr<pg::Result> tasks = target.Exec(sql::kWorkedTasks);
  if (!tasks.ok()) return tasks.status();
  if (tasks->rows() == 0) {
    return absl::FailedPreconditionError(
        "nothing to verify: no task has been copied yet\nhint: run copy first");
  }
  v1::VerifyResponse response;
  for (int i = 0; i < tasks->rows(); ++i) {
    v1::ChunkVerification* chunk = response.add_chunks();
    chunk->set_hypertable(DisplayName(tasks->Get(i, 1), tasks->Get(i, 2)));
    const std::string source_chunk = QuoteQualified(tasks->Get(i, 3), tasks->Get(i, 4));
    const std::string target_chunk = QuoteQualified(tasks->Get(i, 5), tasks->Get(i, 6));
    chunk->set_source_chunk(DisplayName(tasks->Get(i, 3), tasks->Get(i, 4)));
    chunk->set_target_chunk(DisplayName(tasks->Get(i, 5), tasks->Get(i, 6)));
    const std::string where =
        TaskRangeWhere(tasks->GetBool(i, 9), tasks->Get(i, 7), tasks->Get(i, 8), tasks->Get(i, 10));
    absl::StatusOr<bool> source_exists = RelationExists(source, source_chunk);
    if (!source_exists.ok()) return source_exists.status();
    if (!*source_exists) {
      chunk->set_error("source chunk no longer exists");
      chunk->set_matches(false);
      response.set_mismatches(response.mismatches() + 1);
      continue;
    }
    absl::StatusOr<int64_t> source_rows = CountRows(source, source_chunk, where);
    if (!source_rows.ok()) return source_rows.status();
    absl::StatusOr<int64_t> target_rows = CountRows(target, target_chunk, where);
    if (!target_rows.ok()) return target_rows.status();
    chunk->set_source_rows(*source_rows);
    chunk->set_target_rows(*target_rows);
    chunk->set_matches(*source_rows == *target_rows);
    if (!chunk->matches()) response.set_mismatches(response.mismatches() + 1);
  }
  return response;
}

}  // namespace backfill
