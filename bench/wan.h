// The `wan` figure: a copy across a slow link between two hosts, with and without a
// source-side worker (backfill-worker --source-side), next to a psql pipe across the same link.
#pragma once

#include <cstdint>
#include <string>

#include "bench/bench_util.h"

namespace backfill::bench {

struct WanOptions {
  // The plain figure's table (two secondary indexes), in daily chunks.
  int64_t rows = 6'000'000;
  int chunks = 8;
  int rounds = 3;
  // Chunks at a time: psql pipes, and workers next to the target (one source-side worker).
  int parallel = 1;
  // Each host's egress (tc tbf) and the delay each way (backfill_delay_line: no netem here).
  std::string rate = "100mbit";
  int delay_ms = 20;
  // Writes <prefix>.json and <prefix>.txt (the figure's lines); empty: neither.
  std::string results_prefix;
};

// Runs the wan figure in two network namespaces of its own (its own clusters) and adds it to
// `figures`. Without root, ip or tc it prints one loud "*** SKIPPING wan: ..." line and returns.
void WanFigures(const WanOptions& options, Figures* figures);

}  // namespace backfill::bench
