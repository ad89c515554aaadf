// Copies one task's rows from a source chunk into its target chunk: the hot path.
//
// One target transaction holds everything: the fence on the task row, clearing the task's
// range in the target chunk, the COPY relayed from the source without decoding rows, and the
// task's completion. Either all of it commits or none of it does, so a chunk's rows land
// exactly once whatever dies. No gRPC here: the worker loop adapts.
//
// What is copied depends on the chunks' state when the copy runs, not when it was staged:
//  - source compressed, whole chunk: its compressed batches are copied as they are into the
//    target chunk's compressed chunk (created empty by compress_chunk when missing, emptied
//    when present), and its uncompressed heap rows, if any, through the target hypertable so
//    the target chunk is marked partial. Nothing is decompressed on either side. The source's
//    UNORDERED and PARTIAL status bits are carried (target_superuser). When the two
//    compressed layouts differ, or the source chunk is unordered and the bits cannot be
//    carried, the rows are copied decompressed and the target compresses them (ordered).
//  - source compressed and cut by --until: the rows before --until are read decompressed,
//    the target chunk is decompressed, cleared below --until, filled, and compressed again.
//  - source uncompressed: rows are copied; a target chunk that was compressed is decompressed
//    first and stays so. A whole chunk (not cut by --until or --from) that is plain on both
//    sides is loaded as pg_restore loads a table where it can be (spec.bulk_load, the target
//    user's rights, no foreign key referencing it, no reader holding it): TRUNCATE, its own
//    indexes dropped, COPY FREEZE, the indexes built again in bulk. Otherwise, row by row into
//    its indexes, and CopyOutcome::row_by_row says why.
// The target chunk thus ends in the source chunk's compression state at copy time.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/pg.h"
#include "common/rate_limiter.h"

namespace backfill {

struct CopySpec {
  int64_t task_id = 0;
  int64_t lease_epoch = 0;
  std::string source_chunk_schema;
  std::string source_chunk_name;
  std::string target_chunk_schema;
  std::string target_chunk_name;
  std::string time_column;
  std::string time_type;
  bool cut = false;  // copy only rows with time_column < until_literal
  std::string until_literal;
  std::string from_literal;  // when set, copy only rows with time_column >= from_literal
  // Run at the start of the copy transaction to keep backfilled rows out of the target's
  // invalidation log (SkipInvalidationStatement); refresh-caggs brings the aggregates up to
  // date afterwards. Empty when the target has no way to.
  std::string skip_invalidation;
  // The target session may write TimescaleDB's catalog (a superuser): chunk status bits are
  // carried as they are.
  bool target_superuser = false;
  // The task's time range in TimescaleDB's internal units (the chunk's slice cut by --from and
  // --until). When the chunk is a continuous aggregate's materialization and
  // carry_invalidations is set (a superuser target that keeps the copy's own writes out of its
  // invalidation log), what the source still has to recompute over this range is carried to
  // the target's log in the copy transaction, and the rest of the range counts as
  // materialized: refresh-caggs does not recompute it.
  int64_t range_start = 0;
  int64_t range_end = 0;
  bool carry_invalidations = false;
  // A whole plain chunk is loaded as pg_restore loads a table (chunk_copier.cc, BulkLoad)
  // where it can be; false: always row by row into the chunk's indexes (copy --no-bulk-load).
  bool bulk_load = true;
  // Paces the COPY data to the coordinator's share of --max-rate; null: no limit.
  RateLimiter* limiter = nullptr;
};

struct CopyOutcome {
  enum class Kind {
    kCopied,         // committed together with the task's completion
    kSourceMissing,  // source chunk gone; the task was completed with a message
    kFenced,         // the lease was re-granted; nothing was committed
  };
  Kind kind = Kind::kCopied;
  int64_t rows = 0;
  int64_t bytes = 0;
  // The source chunk's compressed batches went across as they are.
  bool batches_copied = false;
  // Why a whole plain chunk was copied row by row into its indexes rather than loaded in
  // bulk ("" when it was not, or was not such a chunk), and whether the reason holds for its
  // whole hypertable (said once per hypertable in the log).
  std::string row_by_row;
  bool row_by_row_per_hypertable = false;
};

// Runs the copy on the two connections, which must be idle (no open transaction). On error
// both transactions are rolled back and the connections stay usable unless they broke.
absl::StatusOr<CopyOutcome> CopyChunk(pg::Queryable& source, pg::Connection& target,
                                      const CopySpec& spec);

}  // namespace backfill
