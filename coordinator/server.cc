#include "coordinator/server.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "backfill.grpc.pb.h"
#include "proto/status_convert.h"

namespace backfill {
namespace {

// Unpack, call, pack, convert status: nothing else happens in these classes.
class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override {
    return Respond(coordinator_->RegisterWorker(*request), response);
  }
  grpc::Status LeaseTask(grpc::ServerContext*, const v1::LeaseTaskRequest* request,
                         v1::LeaseTaskResponse* response) override {
    return Respond(coordinator_->LeaseTask(*request), response);
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    return Respond(coordinator_->Heartbeat(*request), response);
  }
  grpc::Status ReportTask(grpc::ServerContext*, const v1::ReportTaskRequest* request,
                          v1::ReportTaskResponse*) override {
    return ToGrpcStatus(coordinator_->ReportTask(*request));
  }

 private:
  template <typename T>
  static grpc::Status Respond(absl::StatusOr<T> result, T* response) {
    if (!result.ok()) return ToGrpcStatus(result.status());
    *response = *std::move(result);
    return grpc::Status::OK;
  }
  Coordinator* coordinator_;
};

class ControlServiceImpl final : public v1::ControlService::Service {
 public:
  explicit ControlServiceImpl(Coordinator* coordinator) : coordinator_(coordinator) {}

  grpc::Status Stage(grpc::ServerContext*, const v1::StageRequest* request,
                     v1::StageResponse* response) override {
    return Respond(coordinator_->Stage(*request), response);
  }
  grpc::Status Copy(grpc::ServerContext* context, const v1::CopyRequest* request,
                    grpc::ServerWriter<v1::CopyProgress>* writer) override {
    return ToGrpcStatus(coordinator_->Copy(*request, [&](const v1::CopyProgress& progress) {
      return !context->IsCancelled() && writer->Write(progress);
    }));
  }
  grpc::Status Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                      v1::VerifyResponse* response) override {
    return Respond(coordinator_->Verify(*request, [context] { return !context->IsCancelled(); }),
                   response);
  }
  grpc::Status Clean(grpc::ServerContext*, const v1::CleanRequest* request,
                     v1::CleanResponse* response) override {
    return Respond(coordinator_->Clean(*request), response);
  }
  grpc::Status RefreshCaggs(grpc::ServerContext*, const v1::RefreshCaggsRequest* request,
                            v1::RefreshCaggsResponse* response) override {
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
};

}  // namespace

struct CoordinatorServer::Impl {
  explicit Impl(Coordinator* coordinator) : workers(coordinator), control(coordinator) {}
  WorkerServiceImpl workers;
  ControlServiceImpl control;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

CoordinatorServer::CoordinatorServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const std::string& address, Coordinator* coordinator) {
  auto impl = std::make_unique<Impl>(coordinator);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &impl->port);
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
