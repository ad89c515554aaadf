// refresh-caggs: bring the target's continuous aggregates up to date over the copied ranges.
#include "ctl/command.h"

#include <iostream>

#include "absl/strings/str_cat.h"

namespace backfill {

int RunRefreshCaggs(ControlClient& client, const CtlOptions& options) {
  v1::RefreshCaggsRequest request;
  *request.mutable_databases() = options.databases;
  request.set_filter(options.filter);
  request.set_cascade_up(options.cascade_up);
  request.set_cascade_down(options.cascade_down);
  absl::StatusOr<v1::RefreshCaggsResponse> response = client.RefreshCaggs(request);
  if (!response.ok()) return Fail(response.status());
  if (response->caggs_size() == 0) {
    std::cout << "No continuous aggregates to refresh." << std::endl;
    return kExitOk;
  }
  int refreshed = 0;
  for (const v1::RefreshedCagg& c : response->caggs()) {
    if (c.refreshed()) {
      ++refreshed;
      std::cout << "refreshed continuous aggregate " << c.view() << " over ["
                << (c.window_start().empty() ? "start" : c.window_start()) << ", " << c.window_end()
                << ")";
      if (!c.copied_until().empty()) {
        std::cout << "; the copied materialization before " << c.copied_until() << " is kept";
      }
      std::cout << "\n";
    } else {
      std::cout << "continuous aggregate " << c.view() << " is up to date\n";
    }
  }
  std::cout << "Refreshed " << refreshed << " of " << response->caggs_size()
            << " continuous aggregates." << std::endl;
  return kExitOk;
}

}  // namespace backfill
