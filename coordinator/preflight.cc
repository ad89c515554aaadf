#include "coordinator/preflight.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backfill_coordinator_sql.h"
#include "common/catalog.h"
#include "common/connection_pool.h"
#include "common/json.h"
#include "coordinator/pg_task_store.h"

namespace backfill {
namespace {

std::string JsonArray(const std::vector<std::string>& values) {
  std::vector<std::string> quoted;
  quoted.reserve(values.size());
  for (const std::string& v : values) quoted.push_back(JsonQuote(v));
  return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
}

}  // namespace

void Findings::Hint(const std::string& hint) {
  if (std::find(hints.begin(), hints.end(), hint) == hints.end()) hints.push_back(hint);
}

absl::Status Findings::ToStatus(const std::string& what) const {
  if (problems.empty()) return absl::OkStatus();
  std::string message = problems.size() == 1
                            ? absl::StrCat(what, ": ", problems.front())
                            : absl::StrCat(what, ": ", problems.size(), " problems\n  ",
                                           absl::StrJoin(problems, "\n  "));
  for (const std::string& hint : hints) absl::StrAppend(&message, "\nhint: ", hint);
  return absl::FailedPreconditionError(message);
}

absl::Status CheckActiveJobs(pg::Connection& target,
                             const std::vector<std::string>& target_hypertables,
                             Findings* findings) {
  if (target_hypertables.empty()) return absl::OkStatus();
  absl::StatusOr<pg::Result> jobs = target.Exec(sql::kActiveJobs, {JsonArray(target_hypertables)});
  if (!jobs.ok()) return jobs.status();
  for (int i = 0; i < jobs->rows(); ++i) {
    findings->problems.push_back(
        absl::StrCat("job ", jobs->Get(i, 0), " (", jobs->Get(i, 1), " on ", jobs->Get(i, 2),
                     ") is scheduled in the target; pause it with: SELECT alter_job(",
                     jobs->Get(i, 0), ", scheduled => false);"));
  }
  if (jobs->rows() > 0) {
    findings->Hint(
        "policies running during the backfill refresh, drop or compress what is being written; "
        "pause them, and resume each after the backfill with SELECT alter_job(<job id>, "
        "scheduled => true); or pass --allow-active-jobs");
  }
  return absl::OkStatus();
}

absl::Status CheckPrivileges(pg::Connection& source, const std::vector<std::string>& source_tables,
                             pg::Connection& target, const std::vector<std::string>& target_tables,
                             Findings* findings) {
  struct Need {
    pg::Connection* conn;
    const std::vector<std::string>* tables;
    const char* privilege;
  };
  for (const Need& need :
       {Need{&source, &source_tables, "SELECT"}, Need{&target, &target_tables, "INSERT"},
        Need{&target, &target_tables, "DELETE"}}) {
    if (need.tables->empty()) continue;
    absl::StatusOr<pg::Result> missing =
        need.conn->Exec(sql::kMissingPrivileges, {JsonArray(*need.tables), need.privilege});
    if (!missing.ok()) return missing.status();
    for (int i = 0; i < missing->rows(); ++i) {
      findings->problems.push_back(absl::StrCat("the ", need.conn->role(), " user lacks ",
                                                need.privilege, " on ", missing->Get(i, 0)));
      findings->Hint(absl::StrCat("GRANT ", need.privilege, " ON <table> TO <user> in the ",
                                  need.conn->role(), ", or connect as the tables' owner"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckConnectionRoom(pg::Connection& conn, int needed, const std::string& why,
                                 Findings* findings) {
  absl::StatusOr<pg::Result> room = conn.Exec(sql::kConnectionRoom);
  if (!room.ok()) return room.status();
  const int64_t free = room->GetInt(0, 0);
  if (free >= needed) return absl::OkStatus();
  findings->problems.push_back(
      absl::StrCat("the ", conn.role(), " accepts ", std::max<int64_t>(free, 0),
                   " more connections under max_connections, but ", why, " needs ", needed));
  findings->Hint("lower --parallelism, or raise max_connections");
  return absl::OkStatus();
}

absl::StatusOr<JobStore> OpenTargetStore(const v1::Databases& databases, const JobChecks& checks,
                                         const std::string& application_name) {
  // Fail early, with one clear message, on what every worker would otherwise trip over.
  Findings findings;
  JobStore opened;
  const std::string parallelism = absl::StrCat("--parallelism ", checks.planned_workers);
  {
    absl::StatusOr<std::unique_ptr<pg::Connection>> source =
        pg::Connection::Open(databases.source(), application_name, "source");
    if (!source.ok()) return source.status();
    absl::StatusOr<std::unique_ptr<pg::Connection>> target =
        pg::Connection::Open(databases.target(), application_name, "target");
    if (!target.ok()) return target.status();
    // Before any lease: batches written by one TimescaleDB version must not land in another's.
    if (absl::Status s = CheckVersions(**source, **target); !s.ok()) return s;
    // Source-side workers are paired only when they read this very database.
    absl::StatusOr<std::string> identity = DatabaseIdentity(**source);
    if (!identity.ok()) return identity.status();
    opened.source_identity = *std::move(identity);
    if (checks.planned_workers > 0) {
      if (absl::Status s =
              CheckConnectionRoom(**source, checks.planned_workers, parallelism, &findings);
          !s.ok()) {
        return s;
      }
    }
  }
  // A statement of the coordinator's that waits on a row a stopped worker's transaction
  // holds (a heartbeat on its own task) gives up after a while instead of keeping one of the
  // pool's few connections until that session is ended. Its statements read a few rows by
  // index, many times a second: never worth starting parallel workers for (60 ms each when
  // a cached plan expects many rows).
  auto pool = std::make_shared<ConnectionPool>(
      databases.target(), application_name, "target", ConnectionPool::kDefaultMaxConnections,
      "SET lock_timeout = '5s'; SET max_parallel_workers_per_gather = 0");
  absl::StatusOr<ConnectionPool::Handle> conn = pool->Acquire();
  if (!conn.ok()) return conn.status();
  absl::StatusOr<pg::Result> exists = (*conn)->Exec(sql::kSchemaExists);
  if (!exists.ok()) return exists.status();
  if (!exists->GetBool(0, 0)) return absl::NotFoundError("the target has no __backfill schema");
  if (checks.planned_workers > 0) {
    // Each worker holds one target connection; the coordinator its pool.
    if (absl::Status s = CheckConnectionRoom(
            **conn, checks.planned_workers + ConnectionPool::kDefaultMaxConnections,
            absl::StrCat(parallelism, " (plus the coordinator's ",
                         ConnectionPool::kDefaultMaxConnections, ")"),
            &findings);
        !s.ok()) {
      return s;
    }
  }
  if (checks.active_jobs) {
    absl::StatusOr<pg::Result> tables = (*conn)->Exec(sql::kStagedTargetHypertables);
    if (!tables.ok()) return tables.status();
    std::vector<std::string> names;
    names.reserve(static_cast<size_t>(tables->rows()));
    for (int i = 0; i < tables->rows(); ++i) names.push_back(tables->Get(i, 0));
    if (absl::Status s = CheckActiveJobs(**conn, names, &findings); !s.ok()) return s;
  }
  if (absl::Status s = findings.ToStatus("cannot start"); !s.ok()) return s;
  opened.store = std::make_shared<PgTaskStore>(std::move(pool));
  return opened;
}

}  // namespace backfill
