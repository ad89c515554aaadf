// Preflight: the spec's limitations turned into checks, run before stage writes and before
// copy leases. Each check appends every finding it has (one line each) and the hint that goes
// with them; callers report all findings at once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backfill.pb.h"
#include "common/pg.h"
#include "coordinator/task_store.h"

namespace backfill {

struct Findings {
  std::vector<std::string> problems;
  std::vector<std::string> hints;  // each at most once

  void Hint(const std::string& hint);
  // "<what>: <problem>" or "<what>: N problems\n  ...", then "hint: ..." lines; OK when empty.
  absl::Status ToStatus(const std::string& what) const;
};

// Background jobs scheduled in the target on `target_hypertables` ("schema.table", as
// format('%I.%I') spells them) or on continuous aggregates built on them, each with the SQL
// that pauses it.
absl::Status CheckActiveJobs(pg::Connection& target,
                             const std::vector<std::string>& target_hypertables,
                             Findings* findings);

// The privileges a copy needs: SELECT on the source hypertables, INSERT and DELETE on the
// target ones.
absl::Status CheckPrivileges(pg::Connection& source, const std::vector<std::string>& source_tables,
                             pg::Connection& target, const std::vector<std::string>& target_tables,
                             Findings* findings);

// Whether `conn` accepts `needed` more connections under max_connections.
absl::Status CheckConnectionRoom(pg::Connection& conn, int needed, const std::string& why,
                                 Findings* findings);

// What copy and verify check before they open a job.
struct JobChecks {
  bool active_jobs = false;  // refuse while jobs are scheduled on the staged hypertables
  int planned_workers = 0;   // check max_connections room for them; 0: unknown
};

// A job's task store, and which database its source is.
struct JobStore {
  std::shared_ptr<TaskStore> store;
  std::string source_identity;  // DatabaseIdentity; empty: unknown
};

// The target's task store, once the source is reachable with the target's TimescaleDB
// version and `checks` pass (every finding at once). NotFound when the target has no
// __backfill schema.
absl::StatusOr<JobStore> OpenTargetStore(const v1::Databases& databases, const JobChecks& checks,
                                         const std::string& application_name);

}  // namespace backfill
