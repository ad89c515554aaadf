// throttle: change or show the copy's rate limit and per-hypertable cap, stored in the target.
#include "ctl/command.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/pg.h"
#include "coordinator/task_reports.h"

namespace backfill {

// Changes (or shows) __backfill.throttle in the target; a running copy's coordinator picks
// the change up within its progress interval, and its workers at their next heartbeat.
int RunThrottle(const CtlOptions& options) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      pg::Connection::Open(options.databases.target(), "backfillctl", "target");
  if (!target.ok()) return Fail(target.status());
  absl::StatusOr<Throttle> throttle = StoreThrottle(
      **target, options.max_rate >= 0 ? std::optional<int64_t>(options.max_rate) : std::nullopt,
      options.max_chunks_per_hypertable >= 0
          ? std::optional<int32_t>(options.max_chunks_per_hypertable)
          : std::nullopt);
  if (!throttle.ok()) return Fail(throttle.status());
  const int64_t rate = throttle->max_bytes_per_second;
  const int64_t cap = throttle->max_chunks_per_hypertable;
  std::cout << "Throttle: " << (rate > 0 ? HumanBytes(rate) + "/s" : std::string("no rate limit"))
            << " for all workers together; "
            << (cap > 0 ? absl::StrCat("at most ", cap, " chunks of one hypertable at a time")
                        : std::string("no cap on chunks per hypertable"))
            << "." << std::endl;
  return kExitOk;
}

}  // namespace backfill
