// backfillctl's view of a coordinator's ControlService, hiding gRPC.
//
// Thread-safe: CancelCopy() may be called from a signal-watching thread while Copy() runs.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "backfill.pb.h"

namespace grpc {
class ChannelCredentials;
}  // namespace grpc

namespace backfill {

class ControlClient {
 public:
  // `address` is HOST:PORT; every call carries `token` (when not empty) as a bearer token.
  // `credentials` come from ClientCredentials() (TLS or plaintext).
  ControlClient(const std::string& address, const std::string& token,
                const std::shared_ptr<grpc::ChannelCredentials>& credentials);
  ~ControlClient();

  absl::StatusOr<v1::StageResponse> Stage(const v1::StageRequest& request);
  // Calls `on_progress` for each progress message until the copy finishes; the last message
  // has `finished` set. Cancelled when CancelCopy() is called.
  absl::Status Copy(const v1::CopyRequest& request,
                    const std::function<void(const v1::CopyProgress&)>& on_progress);
  void CancelCopy();
  // Calls `on_progress` while the verification runs, then returns its report.
  absl::StatusOr<v1::VerifyResponse> Verify(
      const v1::VerifyRequest& request,
      const std::function<void(const v1::CopyProgress&)>& on_progress);
  absl::StatusOr<v1::CleanResponse> Clean(const v1::CleanRequest& request);
  absl::StatusOr<v1::RefreshCaggsResponse> RefreshCaggs(const v1::RefreshCaggsRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace backfill
