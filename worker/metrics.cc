#include "worker/metrics.h"

#include <string>

namespace backfill {
namespace {

prometheus::Family<prometheus::Counter>& ChunksFamily(prometheus::Registry& registry) {
  return prometheus::BuildCounter()
      .Name("backfill_worker_chunks_total")
      .Help("Tasks this worker finished, by outcome")
      .Register(registry);
}

prometheus::Counter& NewCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

WorkerMetrics::WorkerMetrics(prometheus::Registry& registry)
    : chunks_copied(ChunksFamily(registry).Add({{"outcome", "copied"}})),
      chunks_verified(ChunksFamily(registry).Add({{"outcome", "verified"}})),
      chunks_failed(ChunksFamily(registry).Add({{"outcome", "failed"}})),
      chunks_fenced(ChunksFamily(registry).Add({{"outcome", "fenced"}})),
      rows_copied(NewCounter(registry, "backfill_worker_rows_copied_total",
                             "Rows this worker copied in committed chunks")),
      bytes_copied(NewCounter(registry, "backfill_worker_bytes_copied_total",
                              "Bytes of COPY data this worker moved in committed chunks")),
      chunk_copy_seconds(
          prometheus::BuildHistogram()
              .Name("backfill_worker_chunk_copy_seconds")
              .Help("Time from lease to commit of this worker's chunk copies")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
                                                               300, 600, 1800, 3600})),
      busy(prometheus::BuildGauge()
               .Name("backfill_worker_tasks_in_progress")
               .Help("Tasks this process's workers are working on")
               .Register(registry)
               .Add({})) {}

}  // namespace backfill
