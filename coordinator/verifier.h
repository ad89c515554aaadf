// Verify: compares, for every copied task, the rows of its range in the source chunk and in
// the target chunk.
#pragma once

#include "absl/status/statusor.h"
#include "backfill.pb.h"
#include "common/pg.h"

namespace backfill {

// FailedPrecondition when nothing was staged or copied yet.
absl::StatusOr<v1::VerifyResponse> VerifyCopiedTasks(pg::Connection& source,
                                                     pg::Connection& target);

}  // namespace backfill
