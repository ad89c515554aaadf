// Verify: proves, for every copied task, that the target chunk holds the source chunk's rows
// over exactly the task's range.
//
// Whole compressed chunks whose batches went across as they are are compared batch for batch
// (count, rows per batch and a hash of every batch), without decompressing either side; the
// heap rows of a partially compressed chunk are compared like an uncompressed chunk. Every
// other chunk, and a compressed one whose batches differ, is compared by row count and, per
// column, count of non-null values, min, max and sum where the type has them (any number of
// columns). With `row_hash`, an order-independent hash of every row is compared too.
#pragma once

#include "absl/status/statusor.h"
#include "backfill.pb.h"
#include "common/pg.h"

namespace backfill {

// FailedPrecondition when nothing was staged or copied yet.
absl::StatusOr<v1::VerifyResponse> VerifyCopiedTasks(pg::Connection& source, pg::Connection& target,
                                                     bool row_hash);

}  // namespace backfill
