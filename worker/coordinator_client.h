// What a worker needs from the coordinator. The production implementation speaks gRPC
// (grpc_coordinator_client.h); tests can substitute their own.
#pragma once

#include "absl/status/statusor.h"
#include "backfill.pb.h"

namespace backfill {

class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;
  virtual absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request) = 0;
  virtual absl::StatusOr<v1::LeaseTaskResponse> LeaseTask(const v1::LeaseTaskRequest& request) = 0;
  virtual absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) = 0;
  virtual absl::Status ReportTask(const v1::ReportTaskRequest& request) = 0;
  // A source-side worker's sign of life (backfill-worker --source-side).
  virtual absl::StatusOr<v1::SourceSideHeartbeatResponse> SourceSideHeartbeat(
      const v1::SourceSideHeartbeatRequest& request) {
    (void)request;
    return absl::UnimplementedError("SourceSideHeartbeat");
  }
};

}  // namespace backfill
