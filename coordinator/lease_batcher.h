// Groups concurrent lease requests into one grant, as a database groups commits: the target
// then spends one round trip and one commit on every worker that asked at once, and a queue of
// hundreds of workers on the coordinator's few pooled sessions drains in a few statements
// instead of one statement each.
//
// A request that finds fewer than `max_running` groups running starts one at once, alone (no
// waiting to fill a group when the target is idle); requests that arrive while the groups run
// wait, and the next group takes the oldest of them with every other that asks for the same
// work under the same settings (`LeaseRequest` but its worker and clock), up to `max_group`.
// A group grants at the latest `now` of its requests. Each request gets its own grant, or
// nullopt when the group found fewer tasks than workers (the oldest requests are served
// first), or the group's error.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/task_store.h"

namespace backfill {

class LeaseBatcher {
 public:
  // Grants tasks to `workers` (one each at most) under `settings` (whose worker_id is
  // unused): one entry per worker, in order, nullopt where no task was left for it.
  using GrantMany = std::function<absl::StatusOr<std::vector<std::optional<Grant>>>(
      const LeaseRequest& settings, const std::vector<std::string>& workers)>;

  LeaseBatcher(GrantMany grant_many, int max_running, int max_group);

  absl::StatusOr<std::optional<Grant>> Lease(const LeaseRequest& request);

  // Requests waiting for a group (for tests).
  size_t Waiting() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    const LeaseRequest* request;
    bool done = false;
    absl::StatusOr<std::optional<Grant>> result;
  };

  // Takes the oldest waiter and those that group with it out of the queue.
  std::vector<Waiter*> TakeGroup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs a group (the lock released meanwhile) and hands each waiter its result.
  void RunGroup(const std::vector<Waiter*>& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const GrantMany grant_many_;
  const int max_running_;
  const size_t max_group_;
  absl::Mutex mu_;
  std::deque<Waiter*> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace backfill
