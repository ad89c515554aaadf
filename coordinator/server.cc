#include "coordinator/server.h"

#include <glog/logging.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "backfill.grpc.pb.h"
#include "proto/authorize.h"
#include "proto/status_convert.h"

namespace backfill {
namespace {

// Unpack, call, pack, convert status: nothing else happens in these classes.
class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Coordinator* coordinator, std::string token)
      : coordinator_(coordinator), token_(std::move(token)) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override {
    if (grpc::Status auth = Authorize(context, token_, "RegisterWorker"); !auth.ok()) return auth;
    return Respond(coordinator_->RegisterWorker(*request), response);
  }
  grpc::Status LeaseTask(grpc::ServerContext* context, const v1::LeaseTaskRequest* request,
                         v1::LeaseTaskResponse* response) override {
    if (grpc::Status auth = Authorize(context, token_, "LeaseTask"); !auth.ok()) return auth;
    return Respond(coordinator_->LeaseTask(*request), response);
  }
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    if (grpc::Status auth = Authorize(context, token_, "Heartbeat"); !auth.ok()) return auth;
    return Respond(coordinator_->Heartbeat(*request), response);
  }
  grpc::Status ReportTask(grpc::ServerContext* context, const v1::ReportTaskRequest* request,
                          v1::ReportTaskResponse*) override {
    if (grpc::Status auth = Authorize(context, token_, "ReportTask"); !auth.ok()) return auth;
    return ToGrpcStatus(coordinator_->ReportTask(*request));
  }
  grpc::Status SourceSideHeartbeat(grpc::ServerContext* context,
                                   const v1::SourceSideHeartbeatRequest* request,
                                   v1::SourceSideHeartbeatResponse* response) override {
    if (grpc::Status auth = Authorize(context, token_, "SourceSideHeartbeat"); !auth.ok()) {
      return auth;
    }
    return Respond(coordinator_->SourceSideHeartbeat(*request), response);
  }

 private:
  template <typename T>
  static grpc::Status Respond(absl::StatusOr<T> result, T* response) {
    if (!result.ok()) return ToGrpcStatus(result.status());
    *response = *std::move(result);
    return grpc::Status::OK;
  }
  Coordinator* coordinator_;
  const std::string token_;
};

class ControlServiceImpl final : public v1::ControlService::Service {
 public:
  ControlServiceImpl(Coordinator* coordinator, std::string token)
      : coordinator_(coordinator), token_(std::move(token)) {}

  grpc::Status Stage(grpc::ServerContext* context, const v1::StageRequest* request,
                     v1::StageResponse* response) override {
    if (grpc::Status auth = Authorize(context, token_, "Stage"); !auth.ok()) return auth;
    return Respond(coordinator_->Stage(*request), response);
  }
  grpc::Status Copy(grpc::ServerContext* context, const v1::CopyRequest* request,
                    grpc::ServerWriter<v1::CopyProgress>* writer) override {
    if (grpc::Status auth = Authorize(context, token_, "Copy"); !auth.ok()) return auth;
    return ToGrpcStatus(coordinator_->Copy(*request, [&](const v1::CopyProgress& progress) {
      return !context->IsCancelled() && writer->Write(progress);
    }));
  }
  grpc::Status Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                      grpc::ServerWriter<v1::VerifyUpdate>* writer) override {
    if (grpc::Status auth = Authorize(context, token_, "Verify"); !auth.ok()) return auth;
    absl::StatusOr<v1::VerifyResponse> report =
        coordinator_->Verify(*request, [&](const v1::CopyProgress& progress) {
          v1::VerifyUpdate update;
          *update.mutable_progress() = progress;
          return !context->IsCancelled() && writer->Write(update);
        });
    if (!report.ok()) return ToGrpcStatus(report.status());
    v1::VerifyUpdate last;
    *last.mutable_report() = *std::move(report);
    last.set_finished(true);
    writer->Write(last);
    return grpc::Status::OK;
  }
  grpc::Status Clean(grpc::ServerContext* context, const v1::CleanRequest* request,
                     v1::CleanResponse* response) override {
    if (grpc::Status auth = Authorize(context, token_, "Clean"); !auth.ok()) return auth;
    return Respond(coordinator_->Clean(*request), response);
  }
  grpc::Status RefreshCaggs(grpc::ServerContext* context, const v1::RefreshCaggsRequest* request,
                            v1::RefreshCaggsResponse* response) override {
    if (grpc::Status auth = Authorize(context, token_, "RefreshCaggs"); !auth.ok()) return auth;
    return Respond(coordinator_->RefreshCaggs(*request), response);
  }

 private:
  template <typename T>
  static grpc::Status Respond(absl::StatusOr<T> result, T* response) {
    if (!result.ok()) return ToGrpcStatus(result.status());
    *response = *std::move(result);
    return grpc::Status::OK;
  }
  Coordinator* coordinator_;
  const std::string token_;
};

}  // namespace

struct CoordinatorServer::Impl {
  Impl(Coordinator* coordinator, const std::string& token)
      : workers(coordinator, token), control(coordinator, token) {}
  WorkerServiceImpl workers;
  ControlServiceImpl control;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

CoordinatorServer::CoordinatorServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const std::string& address, Coordinator* coordinator, const std::string& token,
    const TlsFiles& tls) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ServerCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  auto impl = std::make_unique<Impl>(coordinator, token);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, *credentials, &impl->port);
  builder.RegisterService(&impl->workers);
  builder.RegisterService(&impl->control);
  builder.SetMaxReceiveMessageSize(4 << 20);
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": the address is invalid or already in use"));
  }
  return std::unique_ptr<CoordinatorServer>(new CoordinatorServer(std::move(impl)));
}

int CoordinatorServer::port() const { return impl_->port; }

void CoordinatorServer::Shutdown() {
  if (impl_->server != nullptr) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
}

void CoordinatorServer::Wait() { impl_->server->Wait(); }

}  // namespace backfill
