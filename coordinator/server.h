// The coordinator's gRPC server: WorkerService and ControlService as thin adapters over a
// Coordinator. Used by backfill-coordinator and by backfillctl's embedded mode.
//
// Thread-safe; Shutdown() may be called from any thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/coordinator.h"
#include "proto/credentials.h"

namespace backfill {

class CoordinatorServer {
 public:
  // Listens on `address` (HOST:PORT; port 0 picks a free one) and serves `coordinator`,
  // which must outlive the server. With a `token`, every call must carry it as a bearer
  // token; calls without it, or with another, are refused with UNAUTHENTICATED and logged.
  // With `tls` certificate and key, the server speaks TLS (see ServerCredentials).
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(const std::string& address,
                                                                  Coordinator* coordinator,
                                                                  const std::string& token,
                                                                  const TlsFiles& tls = {});
  ~CoordinatorServer();

  int port() const;
  // Stops accepting calls and cancels those in progress.
  void Shutdown();
  // Blocks until Shutdown().
  void Wait();

 private:
  struct Impl;
  explicit CoordinatorServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace backfill
