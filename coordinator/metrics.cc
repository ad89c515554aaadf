#include "coordinator/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

namespace backfill {
namespace {

prometheus::Family<prometheus::Gauge>& TasksFamily(prometheus::Registry& registry) {
  return prometheus::BuildGauge()
      .Name("backfill_tasks")
      .Help("Tasks of the copy in progress (or the last one) by state")
      .Register(registry);
}

prometheus::Counter& NewCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& registry)
    : tasks_pending(TasksFamily(registry).Add({{"state", "pending"}})),
      tasks_leased(TasksFamily(registry).Add({{"state", "leased"}})),
      tasks_done(TasksFamily(registry).Add({{"state", "done"}})),
      tasks_failed(TasksFamily(registry).Add({{"state", "failed"}})),
      rows_copied(NewCounter(registry, "backfill_rows_copied_total",
                             "Rows copied by committed chunk copies")),
      bytes_copied(NewCounter(registry, "backfill_bytes_copied_total",
                              "Bytes of COPY data in committed chunk copies")),
      chunks_copied(NewCounter(registry, "backfill_chunks_copied_total", "Chunk copies committed")),
      chunks_failed(NewCounter(registry, "backfill_chunk_failures_total",
                               "Chunk copies that failed and were rolled back")),
      chunk_copy_seconds(
          prometheus::BuildHistogram()
              .Name("backfill_chunk_copy_seconds")
              .Help("Time from lease to commit of a chunk copy")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
                                                               300, 600, 1800, 3600})),
      lease_grants(NewCounter(registry, "backfill_lease_grants_total", "Leases granted")),
      lease_statement_seconds(
          prometheus::BuildHistogram()
              .Name("backfill_lease_statement_seconds")
              .Help("Time a lease request spent granting in the target (its wait for a group of "
                    "requests included); requests answered WAIT without asking are not counted")
              .Register(registry)
              .Add({},
                   prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                           0.05, 0.1, 0.25, 0.5, 1, 2.5})),
      lease_expiries(NewCounter(registry, "backfill_lease_expiries_total",
                                "Leases that expired and whose task was granted again")),
      connected_workers(prometheus::BuildGauge()
                            .Name("backfill_connected_workers")
                            .Help("Workers heard from within one lease timeout")
                            .Register(registry)
                            .Add({})),
      source_side_workers(prometheus::BuildGauge()
                              .Name("backfill_source_side_workers")
                              .Help("Source-side workers heard from within one lease timeout")
                              .Register(registry)
                              .Add({})) {}

int WorkerTracker::Seen(const std::string& worker_id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  last_seen_[worker_id] = now;
  Prune(now);
  return static_cast<int>(last_seen_.size());
}

int WorkerTracker::Connected(absl::Time now) {
  absl::MutexLock lock(&mu_);
  Prune(now);
  return static_cast<int>(last_seen_.size());
}

void WorkerTracker::Prune(absl::Time now) {
  absl::erase_if(last_seen_, [&](const auto& entry) { return now - entry.second > window_; });
}

}  // namespace backfill
