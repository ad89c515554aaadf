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

  // `identity`: which database it reads (DatabaseIdentity); empty: unknown.
  void Register(const std::string& worker_id, const std::string& address,
                const std::string& identity);
  // False when `worker_id` is unknown here: it must register again. `draining`: it is
  // stopping and takes no new sessions; nothing more is paired with it.
  bool Heartbeat(const std::string& worker_id, const std::string& address, bool draining);

  // The source-side worker `task_id`'s new lease reads through: of the live ones reading the
  // job's source (`source_identity`; either side unknown: taken as the same), the one with
  // the fewest leases paired now (ties: the one paired longest ago); nullopt when there is
  // none, and the task's worker reads the source itself.
  std::optional<v1::SourceSide> Pair(int64_t task_id, int64_t epoch,
                                     const std::string& source_identity);
  // The lease of `task_id` at `epoch` ended (a report; a report of an older epoch, whose
  // task was granted again since, changes nothing). `lost`: its source-side worker could not
  // be reached, or went away mid-task; it is paired with nothing for `timeout`, whatever its
  // heartbeats say.
  void Unpair(int64_t task_id, int64_t epoch, bool lost);

  // Source-side workers heard from within the timeout and not stopping.
  int Live();
  // Source-side workers registered and not forgotten (silent ten timeouts with nothing paired).
  int Known();

 private:
  struct Entry {
    std::string address;
    std::string identity;
    std::string warned_for;  // the job identity it was last refused for, said once
    absl::Time last_seen;
    absl::Time lost_until = absl::InfinitePast();
    int64_t last_paired = 0;  // pairings_ when it was last paired; 0: never
    int paired = 0;
    bool draining = false;
  };
  bool IsLive(const Entry& entry, absl::Time now) const;

  const Clock& clock_;
  const absl::Duration timeout_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> workers_ ABSL_GUARDED_BY(mu_);
  struct Pairing {
    std::string worker_id;
    int64_t epoch = 0;
  };
  absl::flat_hash_map<int64_t, Pairing> pairs_ ABSL_GUARDED_BY(mu_);  // by task
  int64_t pairings_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace backfill
