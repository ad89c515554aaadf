// `backfillctl status`: the state of a migration (ReadMigrationStatus, task_reports.h) as a
// table or as JSON.
#pragma once

#include <string>

#include "coordinator/task_reports.h"

namespace backfill {

std::string FormatStatusText(const MigrationStatus& status);
std::string FormatStatusJson(const MigrationStatus& status);

}  // namespace backfill
