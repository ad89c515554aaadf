// The embedded runtime: a coordinator and, for copy, workers, all inside this process (the
// spec's one-machine commands). They talk over loopback gRPC exactly like a cluster does, with
// the coordinator's default settings (CoordinatorOptions) for leases, heartbeats and attempts.
//
// Thread-safety: AbortWorkers may be called from any thread (the signal watcher); the rest on
// the command's thread.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/auth.h"
#include "coordinator/coordinator.h"
#include "coordinator/server.h"
#include "worker/grpc_coordinator_client.h"
#include "worker/worker.h"

namespace backfill {

class Embedded {
 public:
  Embedded() = default;
  Embedded(const Embedded&) = delete;
  Embedded& operator=(const Embedded&) = delete;
  // Stops the workers (each finishes its chunk) and the coordinator.
  ~Embedded();

  // Starts the coordinator on a free loopback port; says why when it cannot.
  absl::Status Start();
  // Starts `n` workers, each on its own thread.
  void StartWorkers(int n);
  // Workers finish the chunk in progress, then return.
  void StopWorkers();
  void Join();
  // The second Ctrl-C: every chunk in progress is rolled back now (see Worker::Abort), and
  // the target says which ones were and which committed first. Printed on stdout.
  void AbortWorkers(const std::string& target_conninfo);

  const std::string& address() const { return address_; }
  const std::string& token() const { return token_; }

 private:
  // Even on loopback, other local users must not drive this process's coordinator.
  const std::string token_ = RandomToken();
  Coordinator coordinator_{CoordinatorOptions{}};
  std::unique_ptr<CoordinatorServer> server_;
  std::string address_;
  std::vector<std::unique_ptr<GrpcCoordinatorClient>> clients_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
};

}  // namespace backfill
