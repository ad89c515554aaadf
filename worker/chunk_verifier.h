// Verifies one copied task: proves the target chunk holds the source chunk's rows over
// exactly the task's range, and records the report on the task row.
//
// Whole compressed chunks whose batches went across as they are are compared batch for batch
// (count, rows per batch and a hash of every batch), without decompressing either side; the
// uncompressed part of a partially compressed chunk is compared like an uncompressed chunk.
// Every other chunk, and a compressed one whose batches differ, is compared by row count
// and, per column, count of non-null values, min, max and sum where the type has them (any
// number of columns). With `row_hash`, an order-independent hash of every row is compared
// too. Reads only; the source side reads one REPEATABLE READ snapshot. No gRPC here.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "backfill.pb.h"
#include "common/pg.h"

namespace backfill {

struct VerifySpec {
  int64_t task_id = 0;
  int64_t lease_epoch = 0;
  std::string hypertable_schema;
  std::string hypertable_name;
  std::string source_chunk_schema;
  std::string source_chunk_name;
  std::string target_chunk_schema;
  std::string target_chunk_name;
  std::string time_column;
  std::string time_type;
  bool cut = false;
  std::string until_literal;
  std::string from_literal;        // stage --from: rows before it are not the task's
  std::string hypertable_display;  // for the report: a continuous aggregate's view
  bool row_hash = false;
};

struct VerifyOutcome {
  bool fenced = false;  // the lease was re-granted; the report was not recorded
  v1::ChunkVerification report;
};

// The two connections must be idle (no open transaction).
absl::StatusOr<VerifyOutcome> VerifyChunk(pg::Queryable& source, pg::Connection& target,
                                          const VerifySpec& spec);

}  // namespace backfill
