// What the coordinator exports to Prometheus (--metrics-listen). Names and meanings are listed
// in README.md ("Metrics").
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace backfill {

struct CoordinatorMetrics {
  explicit CoordinatorMetrics(prometheus::Registry& registry);

  // Tasks of the copy in progress (or the last one), by state; read from __backfill.task.
  prometheus::Gauge& tasks_pending;
  prometheus::Gauge& tasks_leased;
  prometheus::Gauge& tasks_done;
  prometheus::Gauge& tasks_failed;
  prometheus::Counter& rows_copied;
  prometheus::Counter& bytes_copied;
  prometheus::Counter& chunks_copied;
  prometheus::Counter& chunks_failed;  // failure reports, retried or not
  prometheus::Histogram& chunk_copy_seconds;
  prometheus::Counter& lease_grants;
  // Lease requests that asked the target: the grant statement, its wait for a group included.
  prometheus::Histogram& lease_statement_seconds;
  prometheus::Counter& lease_expiries;  // grants that took a task over from an expired holder
  prometheus::Gauge& connected_workers;
  // Source-side workers heard from within a lease timeout (backfill-worker --source-side).
  prometheus::Gauge& source_side_workers;
};

// Workers heard from within a window (a lease timeout): the connected_workers gauge.
class WorkerTracker {
 public:
  explicit WorkerTracker(absl::Duration window) : window_(window) {}
  // Records contact from `worker_id` and returns how many workers are connected.
  int Seen(const std::string& worker_id, absl::Time now);
  // How many workers were heard from within the window before `now`.
  int Connected(absl::Time now);

 private:
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const absl::Duration window_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> last_seen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace backfill
