// The bearer-token check every gRPC service of ours makes: the coordinator's and a
// source-side worker's.
#pragma once

#include <string>

namespace grpc {
class ServerContext;
class Status;
}  // namespace grpc

namespace backfill {

// OK when `token` is empty or the call carries "authorization: Bearer <token>". A refusal is
// logged with the method and the peer, never with what was sent; its message names `server`
// ("the coordinator", "the source-side worker").
grpc::Status Authorize(const grpc::ServerContext* context, const std::string& token,
                       const char* method, const char* server = "the coordinator");

}  // namespace backfill
