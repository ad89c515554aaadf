// The source-side workers a coordinator knows (backfill-worker --source-side), and which one
// each lease reads its source through. In memory only: a restarted coordinator learns them
// again from their next heartbeat, which it answers "unknown" so that they register again.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backfill.pb.h"
#include "common/clock.h"

namespace backfill {

class SourceSides {
 public:
  // A source-side worker not heard from within `timeout` (the lease timeout) gets no more
  // leases paired with it; one a lease lost gets none for as long.
  SourceSides(const Clock& clock, absl::Duration timeout) : clock_(clock), timeout_(timeout) {}

  void Register(const std::string& worker_id, const std::string& address);
  // False when `worker_id` is unknown here: it must register again.
  bool Heartbeat(const std::string& worker_id, const std::string& address);

  // The source-side worker `task_id`'s new lease reads through: the live one with the fewest
  // leases paired now (ties: the one paired longest ago); nullopt when there is none, and the
  // task's worker reads the source itself.
  std::optional<v1::SourceSide> Pair(int64_t task_id);
  // `task_id`'s lease ended. `lost`: its source-side worker could not be reached, or went
  // away mid-task; it is paired with nothing until `timeout` has passed.
  void Unpair(int64_t task_id, bool lost);

  // Source-side workers heard from within the timeout.
  int Live();

 private:
  struct Entry {
    std::string address;
    absl::Time last_seen;
    absl::Time lost_until = absl::InfinitePast();
    absl::Time last_paired = absl::InfinitePast();
    int paired = 0;
  };
  bool IsLive(const Entry& entry, absl::Time now) const;

  const Clock& clock_;
  const absl::Duration timeout_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> workers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, std::string> pairs_ ABSL_GUARDED_BY(mu_);  // task -> worker
};

}  // namespace backfill
