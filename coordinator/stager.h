// Stage: discover the source chunks to copy, pre-create their target chunks with the same
// slices, and write one task per chunk into the target's __backfill.task.
//
// Target chunks are created here, not by workers, so copies never contend on the
// hypertable-level lock chunk creation takes. Each hypertable's chunks are created and their
// tasks written in one short target transaction, so that lock is held briefly.
#pragma once

#include "absl/status/statusor.h"
#include "backfill.pb.h"
#include "common/pg.h"

namespace backfill {

// Stages the hypertables `request` selects. Every problem found before writing (a bad
// --until, a hypertable missing in the target, incompatible columns, different TimescaleDB
// versions) is reported at once, and then nothing is written.
absl::StatusOr<v1::StageResponse> StageTasks(pg::Connection& source, pg::Connection& target,
                                             const v1::StageRequest& request);

}  // namespace backfill
