// What a worker exports to Prometheus (--metrics-listen). Names and meanings are listed in
// README.md ("Metrics").
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace backfill {

struct WorkerMetrics {
  explicit WorkerMetrics(prometheus::Registry& registry);

  prometheus::Counter& chunks_copied;
  prometheus::Counter& chunks_verified;
  prometheus::Counter& chunks_failed;
  prometheus::Counter& chunks_fenced;  // leases lost before commit: nothing written
  prometheus::Counter& rows_copied;
  prometheus::Counter& bytes_copied;
  prometheus::Histogram& chunk_copy_seconds;
  prometheus::Gauge& busy;  // tasks in progress in this process
};

}  // namespace backfill
