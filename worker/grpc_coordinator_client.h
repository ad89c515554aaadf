// CoordinatorClient over a gRPC channel. Thread-safe (gRPC stubs are).
#pragma once

#include <memory>
#include <string>

#include "worker/coordinator_client.h"

namespace grpc {
class Channel;
class ChannelCredentials;
}  // namespace grpc

namespace backfill {

class GrpcCoordinatorClient : public CoordinatorClient {
 public:
  // `address` is HOST:PORT. Connects lazily; calls fail with kUnavailable while the
  // coordinator is unreachable. Every call carries `token` (when not empty) as a bearer token.
  // `credentials` come from ClientCredentials() (TLS or plaintext).
  GrpcCoordinatorClient(const std::string& address, std::string token,
                        const std::shared_ptr<grpc::ChannelCredentials>& credentials);
  ~GrpcCoordinatorClient() override;

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request) override;
  absl::StatusOr<v1::LeaseTaskResponse> LeaseTask(const v1::LeaseTaskRequest& request) override;
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) override;
  absl::Status ReportTask(const v1::ReportTaskRequest& request) override;
  absl::StatusOr<v1::SourceSideHeartbeatResponse> SourceSideHeartbeat(
      const v1::SourceSideHeartbeatRequest& request) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace backfill
