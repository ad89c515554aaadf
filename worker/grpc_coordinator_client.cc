#include "worker/grpc_coordinator_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "backfill.grpc.pb.h"
#include "proto/status_convert.h"

namespace backfill {
namespace {

constexpr auto kCallTimeout = std::chrono::seconds(30);

std::unique_ptr<grpc::ClientContext> NewContext(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

template <typename Response, typename Call>
absl::StatusOr<Response> Invoke(const std::string& token, Call call) {
  Response response;
  std::unique_ptr<grpc::ClientContext> context = NewContext(token);
  grpc::Status status = call(context.get(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace

struct GrpcCoordinatorClient::Impl {
  std::unique_ptr<v1::WorkerService::Stub> stub;
  std::string token;
};

GrpcCoordinatorClient::GrpcCoordinatorClient(
    const std::string& address, std::string token,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials)
    : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  impl_->stub = v1::WorkerService::NewStub(grpc::CreateChannel(address, credentials));
}

GrpcCoordinatorClient::~GrpcCoordinatorClient() = default;

absl::StatusOr<v1::RegisterWorkerResponse> GrpcCoordinatorClient::RegisterWorker(
    const v1::RegisterWorkerRequest& request) {
  return Invoke<v1::RegisterWorkerResponse>(impl_->token, [&](grpc::ClientContext* c, auto* r) {
    return impl_->stub->RegisterWorker(c, request, r);
  });
}

absl::StatusOr<v1::LeaseTaskResponse> GrpcCoordinatorClient::LeaseTask(
    const v1::LeaseTaskRequest& request) {
  return Invoke<v1::LeaseTaskResponse>(impl_->token, [&](grpc::ClientContext* c, auto* r) {
    return impl_->stub->LeaseTask(c, request, r);
  });
}

absl::StatusOr<v1::HeartbeatResponse> GrpcCoordinatorClient::Heartbeat(
    const v1::HeartbeatRequest& request) {
  return Invoke<v1::HeartbeatResponse>(impl_->token, [&](grpc::ClientContext* c, auto* r) {
    return impl_->stub->Heartbeat(c, request, r);
  });
}

absl::Status GrpcCoordinatorClient::ReportTask(const v1::ReportTaskRequest& request) {
  return Invoke<v1::ReportTaskResponse>(impl_->token,
                                        [&](grpc::ClientContext* c, auto* r) {
                                          return impl_->stub->ReportTask(c, request, r);
                                        })
      .status();
}

absl::StatusOr<v1::SourceSideHeartbeatResponse> GrpcCoordinatorClient::SourceSideHeartbeat(
    const v1::SourceSideHeartbeatRequest& request) {
  return Invoke<v1::SourceSideHeartbeatResponse>(
      impl_->token, [&](grpc::ClientContext* c, auto* r) {
        return impl_->stub->SourceSideHeartbeat(c, request, r);
      });
}

}  // namespace backfill
