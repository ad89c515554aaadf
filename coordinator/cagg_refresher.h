// refresh-caggs: brings the target's continuous aggregates up to the source's, each refreshed
// from the target's watermark to the source's with the spec's
// CALL refresh_continuous_aggregate(view, target_watermark, source_watermark), parents first.
#pragma once

#include "absl/status/statusor.h"
#include "backfill.pb.h"
#include "common/pg.h"

namespace backfill {

// Which aggregates: those whose view matches the filter, plus with cascade_up every aggregate
// built on them and with cascade_down every aggregate they are built on. An aggregate whose
// target watermark has reached the source's is reported as up to date; none at all is not an
// error. The target connection must not be inside a transaction.
absl::StatusOr<v1::RefreshCaggsResponse> RefreshContinuousAggregates(
    pg::Connection& source, pg::Connection& target, const v1::RefreshCaggsRequest& request);

}  // namespace backfill
