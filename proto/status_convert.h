// absl::Status <-> grpc::Status at the wire boundary. Codes map one to one (both follow
// google.rpc.Code); messages pass through unchanged.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace backfill {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace backfill
