// backfill-worker: leases chunk copies from a backfill-coordinator and runs them.
#include <unistd.h>

#include <atomic>
#include <iostream>

#include "CLI/CLI.hpp"
#include "common/argv_scrub.h"
#include "common/auth.h"
#include "common/logging.h"
#include "common/metrics_server.h"
#include "common/pg.h"
#include "common/signals.h"
#include "proto/credentials.h"
#include "worker/grpc_coordinator_client.h"
#include "worker/metrics.h"
#include "worker/worker.h"

int main(int argc, char** argv) {
  CLI::App app{"backfill-worker: copies chunks leased from a backfill-coordinator"};
  std::string coordinator;
  backfill::WorkerOptions options;
  options.name = backfill::DefaultWorkerName();
  int verbosity = 0;
  app.add_option("--coordinator", coordinator, "coordinator address, HOST:PORT")->required();
  app.add_option("--source", options.source_override,
                 "source connection string, when this host reaches it by another address");
  app.add_option("--target", options.target_override,
                 "target connection string, when this host reaches it by another address");
  app.add_option("--name", options.name, "name shown in status and logs (default host:pid)");
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file holding the coordinator's bearer token (default: $BACKFILL_TOKEN)");
  backfill::TlsFiles tls;
  app.add_option("--tls-ca", tls.ca,
                 "speak TLS to the coordinator, trusting certificates signed by this CA (PEM)");
  app.add_option("--tls-cert", tls.cert,
                 "client certificate (PEM), when the coordinator requires one");
  app.add_option("--tls-key", tls.key, "client private key (PEM)");
  app.add_option("--reconnect-every", options.reconnect_every,
                 "open fresh database sessions after this many chunks")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  std::string metrics_listen;
  app.add_option("--metrics-listen", metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (off by default)");
  app.add_flag("-v,--verbose", verbosity, "more logging; repeat for more");
  bool check_args = false;
  app.add_flag("--check-args", check_args,
               "parse and check the arguments, print whether they are valid and exit: nothing is "
               "read, started or connected");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  for (const auto& [conninfo, role] : {std::pair{&options.source_override, "source"},
                                       std::pair{&options.target_override, "target"}}) {
    if (absl::Status valid = backfill::pg::ValidateConninfo(*conninfo, role); !valid.ok()) {
      std::cerr << "backfill-worker: " << valid.message() << "\n";
      return 2;
    }
  }
  if (check_args) {
    std::cout << "backfill-worker: arguments are valid" << std::endl;
    return 0;
  }
  backfill::ScrubPasswordsFromArgv(argc, argv);
  backfill::InitLogging(argv[0], verbosity + 1);
  backfill::RouteGrpcLogsToGlog();
  absl::StatusOr<std::string> token = backfill::LoadToken(token_file);
  if (!token.ok()) {
    std::cerr << "backfill-worker: " << token.status().message() << "\n";
    return 2;
  }

  // Installed before gRPC starts its threads, so they inherit the blocked signals.
  std::atomic<backfill::Worker*> running{nullptr};
  backfill::WatchTerminationSignals(
      [&running] {
        std::cerr << "backfill-worker: stopping after the chunk in progress "
                     "(signal again to abort it)\n";
        if (backfill::Worker* w = running.load()) {
          w->Stop();
        } else {
          _exit(0);
        }
      },
      [] {
        std::cerr << "backfill-worker: aborting; the chunk in progress is rolled back\n";
        _exit(130);
      });
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      backfill::ClientCredentials(tls);
  if (!credentials.ok()) {
    std::cerr << "backfill-worker: " << credentials.status().message() << "\n";
    return 2;
  }
  auto registry = std::make_shared<prometheus::Registry>();
  auto metrics = std::make_shared<backfill::WorkerMetrics>(*registry);
  std::unique_ptr<backfill::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<backfill::MetricsServer>> started =
        backfill::MetricsServer::Start(metrics_listen, registry);
    if (!started.ok()) {
      std::cerr << "backfill-worker: " << started.status().message() << "\n";
      return 1;
    }
    metrics_server = *std::move(started);
    std::cout << "backfill-worker serving metrics on port " << metrics_server->port() << std::endl;
  }
  backfill::GrpcCoordinatorClient client(coordinator, *token, *credentials);
  backfill::Worker worker(options, &client, metrics);
  running = &worker;
  worker.Run();
  running = nullptr;
  return 0;
}
