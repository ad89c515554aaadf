#include "worker/chunk_verifier.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "backfill_worker_sql.h"
#include "common/catalog.h"
#include "common/quote.h"
#include "common/task_range.h"

namespace backfill {
namespace {

// Aggregates per query: PostgreSQL allows 1664 target entries; stay well below.
constexpr size_t kAggregatesPerQuery = 400;
constexpr char kNull[] = "NULL";

struct Aggregate {
  std::string what;  // shown in reports: "sum(value)"
  std::string sql;   // the select-list expression, rendered as text
  bool is_float_sum = false;
};

absl::StatusOr<std::vector<Aggregate>> AggregatesFor(pg::Queryable& source,
                                                     const std::string& table, bool row_hash) {
  absl::StatusOr<pg::Result> rows = source.Exec(sql::kVerifyColumns, {table});
  if (!rows.ok()) return rows.status();
  std::vector<Aggregate> out = {{"rows", "count(*)::text", false}};
  std::vector<std::string> all_columns;
  for (int i = 0; i < rows->rows(); ++i) {
    const std::string name = rows->Get(i, 0);
    const std::string col = QuoteIdent(name);
    all_columns.push_back(col);
    const std::string collate = rows->GetBool(i, 4) ? " COLLATE \"C\"" : "";
    out.push_back({absl::StrCat("count(", name, ")"), absl::StrCat("count(", col, ")::text")});
    if (rows->GetBool(i, 1)) {
      out.push_back(
          {absl::StrCat("min(", name, ")"), absl::StrCat("min(", col, collate, ")::text")});
      out.push_back(
          {absl::StrCat("max(", name, ")"), absl::StrCat("max(", col, collate, ")::text")});
    }
    if (rows->GetBool(i, 2)) {
      out.push_back({absl::StrCat("sum(", name, ")"), absl::StrCat("sum(", col, ")::text"),
                     rows->GetBool(i, 3)});
    }
  }
  if (row_hash && !all_columns.empty()) {
    // Sum of a 64-bit hash of each row's text (as numeric, so it cannot overflow): equal
    // multisets of rows give equal sums whatever the order. Sessions are pinned (UTC, ISO)
    // so both sides render values alike.
    out.push_back(
        {"row hash", absl::StrCat("sum(('x' || substr(md5(ROW(", absl::StrJoin(all_columns, ", "),
                                  ")::text), 1, 16))::bit(64)::bigint::numeric)::text")});
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> Evaluate(pg::Queryable& conn, const std::string& from,
                                                  const std::vector<Aggregate>& aggregates) {
  std::vector<std::string> values;
  for (size_t start = 0; start < aggregates.size(); start += kAggregatesPerQuery) {
    std::vector<std::string> list;
    for (size_t i = start; i < std::min(aggregates.size(), start + kAggregatesPerQuery); ++i) {
      list.push_back(aggregates[i].sql);
    }
    absl::StatusOr<pg::Result> row =
        conn.Exec(absl::StrCat("SELECT ", absl::StrJoin(list, ", "), " FROM ", from));
    if (!row.ok()) return row.status();
    for (int c = 0; c < row->columns(); ++c) {
      values.push_back(row->IsNull(0, c) ? kNull : row->Get(0, c));
    }
  }
  return values;
}

// Float sums depend on the order rows are added in; allow for that, nothing more.
bool FloatSumsMatch(const std::string& a, const std::string& b) {
  double x = 0, y = 0;
  if (!absl::SimpleAtod(a, &x) || !absl::SimpleAtod(b, &y)) return a == b;
  return std::fabs(x - y) <= 1e-9 * std::max({1.0, std::fabs(x), std::fabs(y)});
}

// Compares the aggregates of `from_source` and `from_target`, recording differences.
absl::Status CompareAggregates(pg::Queryable& source, pg::Connection& target,
                               const std::string& source_from, const std::string& target_from,
                               const std::vector<Aggregate>& aggregates,
                               v1::ChunkVerification* chunk) {
  absl::StatusOr<std::vector<std::string>> a = Evaluate(source, source_from, aggregates);
  if (!a.ok()) return a.status();
  absl::StatusOr<std::vector<std::string>> b = Evaluate(target, target_from, aggregates);
  if (!b.ok()) return b.status();
  int64_t rows = 0;
  if (absl::SimpleAtoi((*a)[0], &rows)) chunk->set_source_rows(chunk->source_rows() + rows);
  if (absl::SimpleAtoi((*b)[0], &rows)) chunk->set_target_rows(chunk->target_rows() + rows);
  for (size_t i = 0; i < aggregates.size(); ++i) {
    const std::string& x = (*a)[i];
    const std::string& y = (*b)[i];
    const bool same = aggregates[i].is_float_sum ? FloatSumsMatch(x, y) : x == y;
    if (same) continue;
    v1::Difference* d = chunk->add_differences();
    d->set_what(aggregates[i].what);
    d->set_source(x);
    d->set_target(y);
  }
  return absl::OkStatus();
}

// Batch count, rows in batches, and an order-independent hash of the batches' bytes.
absl::StatusOr<std::string> BatchDigest(pg::Queryable& conn, const std::string& table) {
  absl::StatusOr<pg::Result> row = conn.Exec(absl::StrCat(
      "SELECT count(*) || '/' || coalesce(sum(_ts_meta_count), 0) || '/' || "
      "coalesce(sum(('x' || substr(md5(b::text), 1, 16))::bit(64)::bigint::numeric), 0) "
      "FROM ONLY ",
      table, " b"));
  if (!row.ok()) return row.status();
  return row->Get(0, 0);
}

absl::Status VerifyTask(pg::Queryable& source, pg::Connection& target, const VerifySpec& task,
                        v1::ChunkVerification* chunk) {
  const std::string source_chunk = QuoteQualified(task.source_chunk_schema, task.source_chunk_name);
  const std::string target_chunk = QuoteQualified(task.target_chunk_schema, task.target_chunk_name);
  absl::StatusOr<ChunkState> source_state =
      ReadChunkState(source, task.source_chunk_schema, task.source_chunk_name);
  if (!source_state.ok()) return source_state.status();
  absl::StatusOr<ChunkState> target_state =
      ReadChunkState(target, task.target_chunk_schema, task.target_chunk_name);
  if (!target_state.ok()) return target_state.status();
  if (!source_state->exists) {
    chunk->set_error("the source chunk no longer exists");
    return absl::OkStatus();
  }
  if (!target_state->exists) {
    chunk->set_error("the target chunk no longer exists");
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<Aggregate>> aggregates =
      AggregatesFor(source, source_chunk, task.row_hash);
  if (!aggregates.ok()) return aggregates.status();

  if (source_state->compressed() && target_state->compressed() && !task.cut &&
      task.from_literal.empty()) {
    const std::string source_batches =
        QuoteQualified(source_state->compressed_schema, source_state->compressed_name);
    const std::string target_batches =
        QuoteQualified(target_state->compressed_schema, target_state->compressed_name);
    absl::StatusOr<std::string> a = BatchDigest(source, source_batches);
    if (!a.ok()) return a.status();
    absl::StatusOr<std::string> b = BatchDigest(target, target_batches);
    if (!b.ok()) return b.status();
    if (*a == *b) {
      chunk->set_method("compressed batches");
      int64_t rows = 0;
      std::vector<std::string> parts = absl::StrSplit(*a, '/');
      if (parts.size() > 1 && absl::SimpleAtoi(parts[1], &rows)) {
        chunk->set_source_rows(rows);
        chunk->set_target_rows(rows);
      }
      // The uncompressed part of a partially compressed chunk, aggregate by aggregate. Its
      // differences are named as such, but rows are reported for the whole chunk.
      absl::Status heap =
          CompareAggregates(source, target, absl::StrCat("ONLY ", source_chunk),
                            absl::StrCat("ONLY ", target_chunk), *aggregates, chunk);
      for (v1::Difference& d : *chunk->mutable_differences()) {
        if (d.what() == "rows") {
          d.set_source(absl::StrCat(chunk->source_rows()));
          d.set_target(absl::StrCat(chunk->target_rows()));
        } else {
          d.set_what(absl::StrCat("uncompressed part: ", d.what()));
        }
      }
      return heap;
    }
    // Recompressed on one side (or different): fall through to comparing the rows.
  }
  chunk->set_method("aggregates");
  const std::string where = TaskRangeWhere(task.cut, task.time_column, task.time_type,
                                           task.until_literal, task.from_literal);
  return CompareAggregates(source, target, source_chunk + where, target_chunk + where, *aggregates,
                           chunk);
}

void Rollback(pg::Queryable& conn) { (void)conn.ExecScript("ROLLBACK"); }

}  // namespace

absl::StatusOr<VerifyOutcome> VerifyChunk(pg::Queryable& source, pg::Connection& target,
                                          const VerifySpec& spec) {
  VerifyOutcome outcome;
  v1::ChunkVerification& chunk = outcome.report;
  chunk.set_hypertable(spec.hypertable_display.empty()
                           ? DisplayName(spec.hypertable_schema, spec.hypertable_name)
                           : spec.hypertable_display);
  chunk.set_source_chunk(DisplayName(spec.source_chunk_schema, spec.source_chunk_name));
  chunk.set_target_chunk(DisplayName(spec.target_chunk_schema, spec.target_chunk_name));
  if (absl::Status s = source.ExecScript("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      !s.ok()) {
    return s;
  }
  absl::Status verified = VerifyTask(source, target, spec, &chunk);
  Rollback(source);
  if (!verified.ok()) return verified;
  chunk.set_matches(chunk.error().empty() && chunk.differences_size() == 0);

  std::string json;
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(chunk, &json, print).ok()) {
    return absl::InternalError("cannot encode the verification report");
  }
  absl::StatusOr<pg::Result> completed =
      target.Exec(sql::kCompleteVerify, {absl::StrCat(spec.task_id), absl::StrCat(spec.lease_epoch),
                                         chunk.matches() ? "true" : "false", json});
  if (!completed.ok()) return completed.status();
  outcome.fenced = completed->rows() == 0;
  return outcome;
}

}  // namespace backfill
