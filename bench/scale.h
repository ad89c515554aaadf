// The `scale` figures: the coordinator at a million tasks and hundreds of workers.
#pragma once

#include <cstdint>
#include <vector>

#include "bench/bench_util.h"

namespace backfill::bench {

struct ScaleOptions {
  // Synthetic task tables (half of the tasks done), loaded with the stager's statements.
  std::vector<int64_t> tasks = {10'000, 1'000'000};
  int workers = 256;
  // How long a busy worker's simulated copy takes in the latency phases.
  double copy_seconds = 1.0;
  double phase_seconds = 15.0;
  // Real chunks staged for the staging figure, small and large.
  int stage_small = 10'000;
  int stage_large = 100'000;
};

// Runs the scale figures and adds them to `figures`. The lease figures use one database of
// `source` as both source and target (only the coordinator and its statements are measured);
// staging goes from `source` to `target`.
void ScaleFigures(PgCluster& source, PgCluster& target, const ScaleOptions& options,
                  Figures* figures);

}  // namespace backfill::bench
