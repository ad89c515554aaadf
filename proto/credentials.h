// TLS for the gRPC connections between backfillctl, backfill-coordinator and
// backfill-worker. Without files, connections are plaintext (loopback or a trusted network).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class ChannelCredentials;
class ServerCredentials;
}  // namespace grpc

namespace backfill {

struct TlsFiles {
  std::string ca;    // PEM: the CA that signed the peer's certificate
  std::string cert;  // PEM: this side's certificate
  std::string key;   // PEM: this side's private key
};

// Client side: TLS when `files.ca` is set (verifying the coordinator's certificate against
// it; `cert`/`key` add a client certificate), plaintext otherwise.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientCredentials(const TlsFiles& files);

// Server side: TLS when `files.cert` and `files.key` are set; with `files.ca`, clients must
// present a certificate it signed. Plaintext otherwise.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsFiles& files);

// Sends gRPC's own log lines (e.g. TLS handshake failures) to glog at verbose level 1
// instead of stderr, so a user sees one clear error from us, not gRPC internals.
void RouteGrpcLogsToGlog();

}  // namespace backfill
