#include "proto/authorize.h"

#include <glog/logging.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/auth.h"

namespace backfill {

grpc::Status Authorize(const grpc::ServerContext* context, const std::string& token,
                       const char* method, const char* server) {
  if (token.empty()) return grpc::Status::OK;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  const std::string expected = "Bearer " + token;
  if (it != metadata.end() &&
      TokensEqual(absl::string_view(it->second.data(), it->second.size()), expected)) {
    return grpc::Status::OK;
  }
  LOG(WARNING) << "refused " << method << " from " << context->peer() << ": "
               << (it == metadata.end() ? "no bearer token" : "wrong bearer token");
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      absl::StrCat(server,
                                   " refused the request: missing or wrong bearer token "
                                   "(give every program the same --token-file or BACKFILL_TOKEN)"));
}

}  // namespace backfill
