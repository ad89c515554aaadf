// throttle: change or show the copy's rate limit and per-hypertable cap, stored in the target.
#include "ctl/command.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "backfill_common_sql.h"
#include "common/pg.h"

namespace backfill {

// Changes (or shows) __backfill.throttle in the target; a running copy's coordinator picks
// the change up within its progress interval, and its workers at their next heartbeat.
int RunThrottle(const CtlOptions& options) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      pg::Connection::Open(options.databases.target(), "backfillctl", "target");
  if (!target.ok()) return Fail(target.status());
  absl::StatusOr<pg::Result> exists =
      (*target)->Exec("SELECT pg_catalog.to_regclass('__backfill.task') IS NOT NULL");
  if (!exists.ok()) return Fail(exists.status());
  if (!exists->GetBool(0, 0)) {
    return Fail(absl::FailedPreconditionError(
        "nothing staged: the target has no __backfill schema\nhint: run stage first"));
  }
  if (absl::Status s = (*target)->ExecScript(sql::kCreateThrottle); !s.ok()) return Fail(s);
  absl::StatusOr<pg::Result> row = (*target)->Exec(
      sql::kSetThrottle,
      {options.max_rate >= 0 ? pg::Param(absl::StrCat(options.max_rate)) : pg::Param(),
       options.max_chunks_per_hypertable >= 0
           ? pg::Param(absl::StrCat(options.max_chunks_per_hypertable))
           : pg::Param()});
  if (!row.ok()) return Fail(row.status());
  const int64_t rate = row->GetInt(0, 0);
  const int64_t cap = row->GetInt(0, 1);
  std::cout << "Throttle: " << (rate > 0 ? HumanBytes(rate) + "/s" : std::string("no rate limit"))
            << " for all workers together; "
            << (cap > 0 ? absl::StrCat("at most ", cap, " chunks of one hypertable at a time")
                        : std::string("no cap on chunks per hypertable"))
            << "." << std::endl;
  return kExitOk;
}

}  // namespace backfill
