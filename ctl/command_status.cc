// status: where the migration stands, read from the target alone.
#include "ctl/command.h"

#include <iostream>

#include "common/pg.h"
#include "ctl/status.h"

namespace backfill {

int RunStatus(const CtlOptions& options) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      pg::Connection::Open(options.databases.target(), "backfillctl", "target");
  if (!target.ok()) return Fail(target.status());
  absl::StatusOr<MigrationStatus> status = ReadMigrationStatus(**target);
  if (!status.ok()) return Fail(status.status());
  if (options.json) {
    std::cout << FormatStatusJson(*status) << std::endl;
  } else {
    std::cout << FormatStatusText(*status) << std::flush;
  }
  return kExitOk;
}

}  // namespace backfill
