// clean: drop what the migration left in the target (__backfill).
#include "ctl/command.h"

#include <iostream>

namespace backfill {

int RunClean(ControlClient& client, const CtlOptions& options) {
  v1::CleanRequest request;
  request.mutable_databases()->set_target(options.databases.target());
  absl::StatusOr<v1::CleanResponse> response = client.Clean(request);
  if (!response.ok()) return Fail(response.status());
  if (response->existed()) {
    std::cout << "Removed the __backfill administrative schema from the target." << std::endl;
  } else {
    std::cout << "Nothing to clean: the target has no __backfill schema." << std::endl;
  }
  return kExitOk;
}

}  // namespace backfill
