#include "ctl/control_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "backfill.grpc.pb.h"
#include "proto/status_convert.h"

namespace backfill {
namespace {

// Stage and verify read whole catalogs and tables; give them hours, not seconds.
constexpr auto kUnaryTimeout = std::chrono::hours(24);

}  // namespace

struct ControlClient::Impl {
  std::string address;
  std::string token;
  std::unique_ptr<v1::ControlService::Stub> stub;
  absl::Mutex mu;
  grpc::ClientContext* copy_context ABSL_GUARDED_BY(mu) = nullptr;
  bool copy_cancelled ABSL_GUARDED_BY(mu) = false;

  void Authenticate(grpc::ClientContext* context) const {
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  }

  absl::Status Convert(const grpc::Status& status) const {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
        status.error_message().find("failed to connect") != std::string::npos) {
      return absl::UnavailableError(
          absl::StrCat("cannot reach the coordinator at ", address, ": ", status.error_message()));
    }
    return FromGrpcStatus(status);
  }

  template <typename Response, typename Call>
  absl::StatusOr<Response> Invoke(Call call) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kUnaryTimeout);
    Authenticate(&context);
    Response response;
    grpc::Status status = call(&context, &response);
    if (!status.ok()) return Convert(status);
    return response;
  }
};

ControlClient::ControlClient(const std::string& address, const std::string& token,
                             const std::shared_ptr<grpc::ChannelCredentials>& credentials)
    : impl_(std::make_unique<Impl>()) {
  impl_->address = address;
  impl_->token = token;
  impl_->stub = v1::ControlService::NewStub(grpc::CreateChannel(address, credentials));
}

ControlClient::~ControlClient() = default;

absl::StatusOr<v1::StageResponse> ControlClient::Stage(const v1::StageRequest& request) {
  return impl_->Invoke<v1::StageResponse>(
      [&](grpc::ClientContext* c, auto* r) { return impl_->stub->Stage(c, request, r); });
}

absl::StatusOr<v1::VerifyResponse> ControlClient::Verify(
    const v1::VerifyRequest& request,
    const std::function<void(const v1::CopyProgress&)>& on_progress) {
  grpc::ClientContext context;
  impl_->Authenticate(&context);
  std::unique_ptr<grpc::ClientReader<v1::VerifyUpdate>> reader =
      impl_->stub->Verify(&context, request);
  v1::VerifyUpdate update;
  std::optional<v1::VerifyResponse> report;
  while (reader->Read(&update)) {
    if (update.finished()) {
      report = update.report();
    } else {
      on_progress(update.progress());
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return impl_->Convert(status);
  if (!report.has_value()) {
    return absl::UnavailableError("the coordinator ended verify without a report");
  }
  return *std::move(report);
}

absl::StatusOr<v1::CleanResponse> ControlClient::Clean(const v1::CleanRequest& request) {
  return impl_->Invoke<v1::CleanResponse>(
      [&](grpc::ClientContext* c, auto* r) { return impl_->stub->Clean(c, request, r); });
}

absl::StatusOr<v1::RefreshCaggsResponse> ControlClient::RefreshCaggs(
    const v1::RefreshCaggsRequest& request) {
  return impl_->Invoke<v1::RefreshCaggsResponse>(
      [&](grpc::ClientContext* c, auto* r) { return impl_->stub->RefreshCaggs(c, request, r); });
}

absl::Status ControlClient::Copy(const v1::CopyRequest& request,
                                 const std::function<void(const v1::CopyProgress&)>& on_progress) {
  grpc::ClientContext context;
  impl_->Authenticate(&context);
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->copy_cancelled) return absl::CancelledError("copy interrupted");
    impl_->copy_context = &context;
  }
  std::unique_ptr<grpc::ClientReader<v1::CopyProgress>> reader =
      impl_->stub->Copy(&context, request);
  v1::CopyProgress progress;
  while (reader->Read(&progress)) on_progress(progress);
  grpc::Status status = reader->Finish();
  bool cancelled;
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->copy_context = nullptr;
    cancelled = impl_->copy_cancelled;
  }
  if (cancelled) return absl::CancelledError("copy interrupted");
  if (!status.ok()) return impl_->Convert(status);
  return absl::OkStatus();
}

void ControlClient::CancelCopy() {
  absl::MutexLock lock(&impl_->mu);
  impl_->copy_cancelled = true;
  if (impl_->copy_context != nullptr) impl_->copy_context->TryCancel();
}

}  // namespace backfill
