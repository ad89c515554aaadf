#include "worker/chunk_copier.h"

#include <glog/logging.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "backfill_worker_sql.h"
#include "common/catalog.h"
#include "common/quote.h"
#include "common/task_range.h"

namespace backfill {
namespace {

// How long a bulk load waits for the target chunk's readers before it copies row by row.
constexpr char kLockWait[] = "2s";

// Ends whatever transaction is open on `conn`; errors are irrelevant here (a broken
// connection rolls back on the server by itself).
void Rollback(pg::Queryable& conn) { (void)conn.ExecScript("ROLLBACK"); }

struct ColumnList {
  std::string names;  // "a", "b", ...
  bool binary = true;
  std::vector<Column> columns;
};

absl::StatusOr<ColumnList> Columns(pg::Queryable& conn, const std::string& table) {
  absl::StatusOr<std::vector<Column>> columns = ListColumns(conn, table);
  if (!columns.ok()) return columns.status();
  ColumnList out;
  std::vector<std::string> names;
  for (const Column& c : *columns) {
    names.push_back(QuoteIdent(c.name));
    out.binary = out.binary && c.binary_io;
  }
  out.names = absl::StrJoin(names, ", ");
  out.columns = *std::move(columns);
  return out;
}

bool SameLayout(const ColumnList& a, const ColumnList& b) {
  if (a.columns.size() != b.columns.size()) return false;
  for (size_t i = 0; i < a.columns.size(); ++i) {
    if (a.columns[i].name != b.columns[i].name || a.columns[i].type != b.columns[i].type) {
      return false;
    }
  }
  return true;
}

enum class Read {
  kTable,  // COPY the table itself: its own heap rows, without the executor (fastest)
  kQuery,  // COPY (SELECT ...): what a query sees, e.g. a compressed chunk's rows decompressed
};

enum class Write {
  kRows,    // into the table as it is
  kFrozen,  // FREEZE: the table was created or emptied by TRUNCATE in this (sub)transaction
};

// COPY the rows of `source_table` (only those matching `where`, if not empty) on the source
// into `target_table (columns)` on the target, binary unless a column type has no binary I/O.
absl::StatusOr<pg::CopyStats> Relay(pg::Queryable& source, pg::Connection& target, Read read,
                                    const std::string& source_table, const std::string& where,
                                    const std::string& target_table, const ColumnList& columns,
                                    RateLimiter* limiter, Write write = Write::kRows) {
  const std::string format = columns.binary ? "binary" : "text";
  const std::string out =
      read == Read::kTable && where.empty()
          ? absl::StrCat(source_table, " (", columns.names, ")")
          : absl::StrCat("(SELECT ", columns.names, " FROM ", source_table, where, ")");
  return target.CopyFrom(
      source, absl::StrCat("COPY ", out, " TO STDOUT (FORMAT ", format, ")"),
      absl::StrCat("COPY ", target_table, " (", columns.names, ") FROM STDIN (FORMAT ", format,
                   write == Write::kFrozen ? ", FREEZE)" : ")"),
      limiter);
}

CopyOutcome Fenced() {
  CopyOutcome outcome;
  outcome.kind = CopyOutcome::Kind::kFenced;
  return outcome;
}

// Says once per hypertable, in this process, why its whole chunks are copied row by row.
void NoteRowByRow(const std::string& hypertable, const std::string& why) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* noted ABSL_GUARDED_BY(mu) = new absl::flat_hash_set<std::string>();
  absl::MutexLock lock(&mu);
  if (noted->insert(hypertable).second) {
    LOG(INFO) << "whole chunks of " << hypertable
              << " are copied row by row into their indexes: " << why;
  }
}

absl::Status Call(pg::Queryable& conn, absl::string_view function, const std::string& chunk) {
  return conn.ExecScript(
      absl::StrCat("SELECT ", function, "(", QuoteLiteral(chunk), "::regclass)"));
}

class Copier {
 public:
  Copier(pg::Queryable& source, pg::Connection& target, const CopySpec& spec)
      : source_(source),
        target_(target),
        spec_(spec),
        source_chunk_(QuoteQualified(spec.source_chunk_schema, spec.source_chunk_name)),
        target_chunk_(QuoteQualified(spec.target_chunk_schema, spec.target_chunk_name)) {}

  absl::StatusOr<CopyOutcome> Run() {
    if (spec_.carry_invalidations) {
      absl::StatusOr<pg::Result> raised = target_.Exec(
          sql::kRaiseInvalidationThreshold,
          {spec_.target_chunk_schema, spec_.target_chunk_name, absl::StrCat(spec_.range_end)});
      if (!raised.ok()) return raised.status();
    }
    // The source snapshot is taken by the first query and serves the whole chunk.
    if (absl::Status s = source_.ExecScript("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        !s.ok()) {
      return s;
    }
    // Data and completion commit together, so an unflushed commit lost in a crash loses both:
    // the task is simply copied again.
    std::string begin = "BEGIN; SET LOCAL synchronous_commit = off";
    if (!spec_.skip_invalidation.empty()) absl::StrAppend(&begin, "; ", spec_.skip_invalidation);
    if (absl::Status s = target_.ExecScript(begin); !s.ok()) return s;
    absl::StatusOr<pg::Result> fence = target_.Exec(
        sql::kFenceTask, {absl::StrCat(spec_.task_id), absl::StrCat(spec_.lease_epoch)});
    if (!fence.ok()) return fence.status();
    if (fence->rows() == 0) return Fenced();

    absl::StatusOr<ChunkState> source_state =
        ReadChunkState(source_, spec_.source_chunk_schema, spec_.source_chunk_name);
    if (!source_state.ok()) return source_state.status();
    CopyOutcome outcome;
    std::string message;
    const std::string display = DisplayName(spec_.source_chunk_schema, spec_.source_chunk_name);
    if (!source_state->exists) {
      outcome.kind = CopyOutcome::Kind::kSourceMissing;
      message = absl::StrCat("source chunk ", display, " no longer exists; skipped");
    } else {
      absl::StatusOr<ChunkState> target_state =
          ReadChunkState(target_, spec_.target_chunk_schema, spec_.target_chunk_name);
      if (!target_state.ok()) return target_state.status();
      if (!target_state->exists) {
        return absl::FailedPreconditionError(absl::StrCat(
            "target chunk ", DisplayName(spec_.target_chunk_schema, spec_.target_chunk_name),
            " does not exist (dropped after staging?); run clean and stage again"));
      }
      // Batches of an unordered chunk are correct only with the UNORDERED bit, which only a
      // superuser can set; otherwise the target compresses the rows itself, ordered.
      const bool batches = source_state->compressed() && !spec_.cut && spec_.from_literal.empty() &&
                           (!source_state->unordered() || spec_.target_superuser);
      absl::Status copied = batches ? CopyBatches(*source_state, *target_state, &outcome)
                                    : CopyRows(*source_state, *target_state, &outcome);
      if (!copied.ok()) return copied;
      message = absl::StrCat("copied ", outcome.rows, " rows from ", display,
                             outcome.batches_copied ? " (compressed batches as they are)" : "");
      if (!outcome.row_by_row.empty()) {
        absl::StrAppend(&message, " (row by row: ", outcome.row_by_row, ")");
      }
      if (spec_.carry_invalidations) {
        absl::StatusOr<int64_t> carried = CarryInvalidations();
        if (!carried.ok()) return carried.status();
        if (*carried > 0) {
          absl::StrAppend(&message, "; ", *carried, " pending invalidations carried");
        }
      }
    }
    absl::StatusOr<pg::Result> completed = target_.Exec(
        sql::kCompleteTask, {absl::StrCat(spec_.task_id), absl::StrCat(spec_.lease_epoch),
                             absl::StrCat(outcome.rows), absl::StrCat(outcome.bytes), message});
    if (!completed.ok()) return completed.status();
    if (completed->rows() == 0) return Fenced();
    if (absl::Status s = target_.ExecScript("COMMIT"); !s.ok()) return s;
    Rollback(source_);
    return outcome;
  }

 private:
  // Rows, by name, from the source chunk (decompressed when it is compressed) into the target
  // chunk, which is decompressed first and ends compressed when the source chunk is.
  absl::Status CopyRows(const ChunkState& source_state, const ChunkState& target_state,
                        CopyOutcome* outcome) {
    if (target_state.compressed()) {
      if (absl::Status s = Call(target_, "public.decompress_chunk", target_chunk_); !s.ok()) {
        return s;
      }
    }
    absl::StatusOr<ColumnList> columns = Columns(source_, source_chunk_);
    if (!columns.ok()) return columns.status();
    const std::string where = TaskRangeWhere(spec_.cut, spec_.time_column, spec_.time_type,
                                             spec_.until_literal, spec_.from_literal);
    // A whole plain chunk nobody writes into (it ends before --until) is loaded as pg_restore
    // loads a table, unless it cannot be; a chunk cut by --until or --from never is, so the
    // application's inserts into it are never blocked.
    if (spec_.bulk_load && where.empty() && source_state.status == 0 && target_state.status == 0) {
      absl::StatusOr<std::string> refusal = BulkLoad(*columns, outcome);
      if (!refusal.ok()) return refusal.status();
      if (refusal->empty()) return absl::OkStatus();
      outcome->row_by_row = *std::move(refusal);
      if (outcome->row_by_row_per_hypertable) {
        NoteRowByRow(DisplayName(target_state.hypertable_schema, target_state.hypertable_name),
                     outcome->row_by_row);
      }
    }
    if (absl::Status s = target_.ExecScript(absl::StrCat("DELETE FROM ", target_chunk_, where));
        !s.ok()) {
      return s;
    }
    absl::StatusOr<pg::CopyStats> stats =
        Relay(source_, target_, source_state.compressed() ? Read::kQuery : Read::kTable,
              source_chunk_, where, target_chunk_, *columns, spec_.limiter);
    if (!stats.ok()) return stats.status();
    outcome->rows = stats->rows;
    outcome->bytes = stats->bytes;
    if (source_state.compressed()) return Call(target_, "public.compress_chunk", target_chunk_);
    return absl::OkStatus();
  }

  // The whole chunk the way pg_restore loads a table: TRUNCATE (a new, empty file), the
  // chunk's own indexes dropped, COPY FREEZE (rows written frozen and all-visible, so no
  // later anti-wraparound vacuum rewrites the freshly loaded pages), the indexes built again
  // in bulk under their names. The chunk keeps its identity: its catalog rows, constraints,
  // triggers, owner, privileges and options are untouched. Returns why it could not ("" when
  // it did), having changed nothing then; the chunk is locked ACCESS EXCLUSIVE until commit.
  absl::StatusOr<std::string> BulkLoad(const ColumnList& columns, CopyOutcome* outcome) {
    absl::StatusOr<pg::Result> plan =
        target_.Exec(sql::kBulkLoadPlan, {spec_.target_chunk_schema, spec_.target_chunk_name});
    if (!plan.ok()) return plan.status();
    if (plan->rows() == 0) return std::string("the chunk is not a child of its hypertable");
    if (!plan->IsNull(0, 0)) {
      outcome->row_by_row_per_hypertable = true;
      return plan->Get(0, 0);
    }
    const std::string lock_timeout = plan->Get(0, 1);
    // Wait briefly for readers of the chunk, never long: a waiting ACCESS EXCLUSIVE request
    // queues every later reader behind it.
    if (absl::Status s = target_.ExecScript(
            absl::StrCat("SAVEPOINT bulk_lock; SET LOCAL lock_timeout = '", kLockWait,
                         "'; LOCK TABLE ", target_chunk_, " IN ACCESS EXCLUSIVE MODE"));
        !s.ok()) {
      if (pg::SqlState(s) != "55P03") return s;
      if (absl::Status r =
              target_.ExecScript("ROLLBACK TO SAVEPOINT bulk_lock; RELEASE SAVEPOINT bulk_lock");
          !r.ok()) {
        return r;
      }
      return absl::StrCat("the target chunk was in use for more than ", kLockWait);
    }
    // Released, the savepoint's work is the transaction's: TRUNCATE below then runs in the
    // subtransaction COPY FREEZE requires.
    if (absl::Status s = target_.ExecScript(
            absl::StrCat("RELEASE SAVEPOINT bulk_lock; SELECT pg_catalog.set_config("
                         "'lock_timeout', ",
                         QuoteLiteral(lock_timeout), ", true)"));
        !s.ok()) {
      return s;
    }
    // Under the lock, the chunk as it is now: whoever held it (a compress_chunk, an ALTER
    // INDEX) may have changed it while the lock was awaited.
    absl::StatusOr<ChunkState> state =
        ReadChunkState(target_, spec_.target_chunk_schema, spec_.target_chunk_name);
    if (!state.ok()) return state.status();
    plan = target_.Exec(sql::kBulkLoadPlan, {spec_.target_chunk_schema, spec_.target_chunk_name});
    if (!plan.ok()) return plan.status();
    if (!state->exists || state->status != 0 || plan->rows() == 0 || !plan->IsNull(0, 0)) {
      // Rolled back and tried again (an attempt), on what the chunk is then.
      return absl::AbortedError(absl::StrCat(
          "target chunk ", DisplayName(spec_.target_chunk_schema, spec_.target_chunk_name),
          " changed while the copy waited for its lock"));
    }
    std::vector<std::string> drops, builds, clustered;
    for (int row = 0; row < plan->rows(); ++row) {
      if (plan->IsNull(row, 2)) continue;
      drops.push_back(plan->Get(row, 2));
      builds.push_back(absl::StrCat("SELECT pg_catalog.set_config('default_tablespace', ",
                                    QuoteLiteral(plan->Get(row, 5)), ", true); ",
                                    plan->Get(row, 3)));
      if (!plan->IsNull(row, 4)) clustered.push_back(plan->Get(row, 4));
    }
    std::string script = absl::StrCat("TRUNCATE ", target_chunk_);
    if (!drops.empty()) absl::StrAppend(&script, "; DROP INDEX ", absl::StrJoin(drops, ", "));
    if (absl::Status s = target_.ExecScript(script); !s.ok()) return s;
    if (!spec_.skip_invalidation.empty() && spec_.target_superuser) {
      absl::StatusOr<pg::Result> forgot = target_.Exec(
          sql::kForgetOwnInvalidations, {spec_.target_chunk_schema, spec_.target_chunk_name});
      if (!forgot.ok()) return forgot.status();
    }
    // From 2.23 on, TimescaleDB takes a COPY into a chunk through its own code, which writes
    // no frozen rows. In restoring mode (superusers only) it leaves the statement to
    // PostgreSQL, as when pg_restore loads a chunk; only for this statement. That mode also
    // logs no invalidations for the rows, so it is used only where the copy keeps its rows
    // out of the log anyway: before 2.28 an aggregate built on a continuous aggregate's
    // materialization would miss them (TRUNCATE logs its range only for a raw hypertable).
    const bool restoring = spec_.target_superuser && !spec_.skip_invalidation.empty();
    if (restoring) {
      if (absl::Status s = target_.ExecScript("SET LOCAL timescaledb.restoring = on"); !s.ok()) {
        return s;
      }
    }
    absl::StatusOr<pg::CopyStats> stats =
        Relay(source_, target_, Read::kTable, source_chunk_, "", target_chunk_, columns,
              spec_.limiter, Write::kFrozen);
    if (!stats.ok()) return stats.status();
    if (restoring) {
      if (absl::Status s = target_.ExecScript("SET LOCAL timescaledb.restoring = off"); !s.ok()) {
        return s;
      }
    }
    outcome->rows = stats->rows;
    outcome->bytes = stats->bytes;
    for (const std::string& index : clustered) {
      builds.push_back(absl::StrCat("ALTER TABLE ", target_chunk_, " CLUSTER ON ", index));
    }
    if (!builds.empty()) {
      if (absl::Status s = target_.ExecScript(absl::StrJoin(builds, "; ")); !s.ok()) return s;
    }
    return std::string();
  }

  // The whole of a compressed source chunk: its batches as they are, and its heap rows.
  absl::Status CopyBatches(const ChunkState& source_state, ChunkState target_state,
                           CopyOutcome* outcome) {
    // Empty the target chunk: batches first (TRUNCATE of a compressed chunk is plain and not
    // an invalidation), then the heap, which then holds no batches to decompress.
    if (target_state.compressed()) {
      if (absl::Status s = target_.ExecScript(absl::StrCat(
              "TRUNCATE ",
              QuoteQualified(target_state.compressed_schema, target_state.compressed_name)));
          !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = target_.ExecScript(absl::StrCat("DELETE FROM ONLY ", target_chunk_));
        !s.ok()) {
      return s;
    }
    if (!target_state.compressed()) {
      // An empty chunk compresses into an empty compressed chunk with the target's layout.
      if (absl::Status s = Call(target_, "public.compress_chunk", target_chunk_); !s.ok()) {
        return s;
      }
      absl::StatusOr<ChunkState> state =
          ReadChunkState(target_, spec_.target_chunk_schema, spec_.target_chunk_name);
      if (!state.ok()) return state.status();
      target_state = *std::move(state);
    }
    const std::string source_compressed =
        QuoteQualified(source_state.compressed_schema, source_state.compressed_name);
    const std::string target_compressed =
        QuoteQualified(target_state.compressed_schema, target_state.compressed_name);
    absl::StatusOr<ColumnList> source_layout = Columns(source_, source_compressed);
    if (!source_layout.ok()) return source_layout.status();
    absl::StatusOr<ColumnList> target_layout = Columns(target_, target_compressed);
    if (!target_layout.ok()) return target_layout.status();
    if (!SameLayout(*source_layout, *target_layout)) {
      // Other compression settings or metadata on the target: batches cannot go across as
      // they are. Copy the rows and let the target compress them its way.
      LOG(WARNING) << "compressed layouts of "
                   << DisplayName(spec_.source_chunk_schema, spec_.source_chunk_name)
                   << " differ between source and target; copying it decompressed";
      if (absl::Status s = Call(target_, "public.decompress_chunk", target_chunk_); !s.ok()) {
        return s;
      }
      ChunkState decompressed = target_state;
      decompressed.status = 0;
      return CopyRows(source_state, decompressed, outcome);
    }
    absl::StatusOr<pg::CopyStats> batches =
        Relay(source_, target_, Read::kTable, source_compressed, "", target_compressed,
              *source_layout, spec_.limiter);
    if (!batches.ok()) return batches.status();
    absl::StatusOr<pg::Result> rows = source_.Exec(
        absl::StrCat("SELECT coalesce(sum(_ts_meta_count), 0) FROM ONLY ", source_compressed));
    if (!rows.ok()) return rows.status();
    outcome->rows = rows->GetInt(0, 0);
    outcome->bytes = batches->bytes;
    outcome->batches_copied = true;

    if (absl::Status s = CopyCompressionSizes(); !s.ok()) return s;

    // Heap rows of a partially compressed chunk go through the hypertable: TimescaleDB routes
    // them into this chunk and marks it partial (a plain COPY into the chunk does not on 2.22,
    // leaving them invisible).
    absl::StatusOr<pg::Result> has_heap =
        source_.Exec(absl::StrCat("SELECT EXISTS (SELECT 1 FROM ONLY ", source_chunk_, ")"));
    if (!has_heap.ok()) return has_heap.status();
    if (has_heap->GetBool(0, 0)) {
      absl::StatusOr<ColumnList> columns = Columns(source_, source_chunk_);
      if (!columns.ok()) return columns.status();
      absl::StatusOr<pg::CopyStats> heap =
          Relay(source_, target_, Read::kTable, source_chunk_, "",
                QuoteQualified(target_state.hypertable_schema, target_state.hypertable_name),
                *columns, spec_.limiter);
      if (!heap.ok()) return heap.status();
      outcome->rows += heap->rows;
      outcome->bytes += heap->bytes;
    }
    // Batches that may overlap on the order-by columns must be marked so, or ordered reads go
    // wrong; a PARTIAL bit the target had from before goes if the source has none.
    if (!spec_.target_superuser) return absl::OkStatus();
    absl::StatusOr<pg::Result> carried = target_.Exec(
        sql::kCarryStatus, {spec_.target_chunk_schema, spec_.target_chunk_name,
                            // Heap rows copied make the chunk partial whatever the source's bit
                            // says, or they would be invisible.
                            absl::StrCat(source_state.status | (has_heap->GetBool(0, 0) ? 8 : 0))});
    return carried.status();
  }

  // For a continuous aggregate's materialization: the source's pending invalidations over the
  // task's range, read in the copy's snapshot, replace the target's (carry_invalidations.sql).
  // Returns how many entries were carried; 0 as well for a chunk of a plain hypertable.
  absl::StatusOr<int64_t> CarryInvalidations() {
    absl::StatusOr<pg::Result> pending =
        source_.Exec(sql::kSourceInvalidations,
                     {spec_.source_chunk_schema, spec_.source_chunk_name,
                      absl::StrCat(spec_.range_start), absl::StrCat(spec_.range_end)});
    if (!pending.ok()) return pending.status();
    if (pending->rows() == 0) return 0;
    const int64_t margin = std::max<int64_t>(0, pending->GetInt(0, 0));
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    const int64_t cut_from = spec_.range_start > kMax - margin ? kMax : spec_.range_start + margin;
    const int64_t add_until = spec_.range_end > kMax - margin ? kMax : spec_.range_end + margin;
    absl::StatusOr<pg::Result> locked =
        target_.Exec(sql::kLockCarry, {spec_.target_chunk_schema, spec_.target_chunk_name});
    if (!locked.ok()) return locked.status();
    absl::StatusOr<pg::Result> carried =
        target_.Exec(sql::kCarryInvalidations,
                     {spec_.target_chunk_schema, spec_.target_chunk_name, absl::StrCat(cut_from),
                      absl::StrCat(spec_.range_end), absl::StrCat(spec_.range_start),
                      absl::StrCat(add_until), pending->Get(0, 1), pending->Get(0, 2)});
    if (!carried.ok()) return carried.status();
    return carried->GetInt(0, 0);
  }

  // Carries the source chunk's compression statistics (what chunk_compression_stats()
  // reports) to the target chunk, whose compress_chunk of an empty chunk recorded zeros.
  // Writing them needs a superuser; without one the target keeps the zeros.
  absl::Status CopyCompressionSizes() {
    absl::StatusOr<pg::Result> sizes = source_.Exec(
        sql::kReadCompressionSize, {spec_.source_chunk_schema, spec_.source_chunk_name});
    if (!sizes.ok()) return sizes.status();
    if (sizes->rows() == 0) return absl::OkStatus();
    std::vector<pg::Param> params = {spec_.target_chunk_schema, spec_.target_chunk_name};
    for (int i = 0; i < 8; ++i) params.push_back(sizes->Get(0, i));
    if (absl::Status s = target_.ExecScript("SAVEPOINT compression_size"); !s.ok()) return s;
    absl::StatusOr<pg::Result> written = target_.Exec(sql::kWriteCompressionSize, params);
    if (written.ok()) return target_.ExecScript("RELEASE SAVEPOINT compression_size");
    if (written.status().code() != absl::StatusCode::kPermissionDenied) return written.status();
    VLOG(1) << "cannot record compression statistics of " << target_chunk_ << ": "
            << written.status().message();
    return target_.ExecScript("ROLLBACK TO SAVEPOINT compression_size");
  }

  pg::Queryable& source_;
  pg::Connection& target_;
  const CopySpec& spec_;
  const std::string source_chunk_;
  const std::string target_chunk_;
};

}  // namespace

absl::StatusOr<CopyOutcome> CopyChunk(pg::Queryable& source, pg::Connection& target,
                                      const CopySpec& spec) {
  absl::StatusOr<CopyOutcome> outcome = Copier(source, target, spec).Run();
  if (!outcome.ok() || outcome->kind == CopyOutcome::Kind::kFenced) {
    Rollback(target);
    Rollback(source);
  }
  return outcome;
}

}  // namespace backfill
