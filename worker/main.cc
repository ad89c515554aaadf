// backfill-worker: leases chunk copies from a backfill-coordinator and runs them; with
// --source-side, serves the source to the workers that do (a worker next to the source when
// the target is far from it).
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
#include "worker/source_side.h"
#include "worker/source_side_session.h"
#include "worker/worker.h"

int main(int argc, char** argv) {
  CLI::App app{"backfill-worker: copies chunks leased from a backfill-coordinator"};
  std::string coordinator;
  backfill::WorkerOptions options;
  options.name = backfill::DefaultWorkerName();
  int verbosity = 0;
  app.add_option("--coordinator", coordinator, "coordinator address, HOST:PORT")->required();
  app.add_option("--source", options.source_override,
                 "source connection string, when this host reaches it by another address "
                 "(required with --source-side: the source it reads)");
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
  bool source_side = false;
  app.add_flag("--source-side", source_side,
               "run next to the source: serve source sessions to the workers next to the "
               "target, sending COPY data compressed (needs --listen)");
  std::string listen;
  app.add_option("--listen", listen,
                 "--source-side: address to serve on, HOST:PORT (0.0.0.0:PORT for every "
                 "interface)");
  std::string advertise;
  app.add_option("--advertise", advertise,
                 "--source-side: HOST:PORT at which the other workers reach this one (default: "
                 "--listen)");
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
  if (source_side) {
    if (listen.empty()) {
      std::cerr << "backfill-worker: --source-side needs --listen HOST:PORT\n";
      return 2;
    }
    // It reads the source it is told here, never one a caller names: the target-side
    // workers hold the token, not the source's credentials.
    if (options.source_override.empty()) {
      std::cerr << "backfill-worker: --source-side needs --source, the source it reads for the "
                   "other workers\n";
      return 2;
    }
    if (advertise.empty()) advertise = listen;
    const std::string host = advertise.substr(0, advertise.rfind(':'));
    if (host == "0.0.0.0" || host == "[::]" || host.empty()) {
      std::cerr << "backfill-worker: give --advertise HOST:PORT, the address the other workers "
                   "reach this one at (--listen "
                << listen << " names none)\n";
      return 2;
    }
    // It serves TLS to the workers that dial it when they speak TLS: it needs its own pair.
    if (!tls.ca.empty() && (tls.cert.empty() || tls.key.empty())) {
      std::cerr << "backfill-worker: --source-side with --tls-ca needs --tls-cert and --tls-key: "
                   "the other workers speak TLS to it and present certificates signed by that "
                   "CA\n";
      return 2;
    }
    // Whoever reaches this port reads the source: off loopback, only with the token.
    const std::string listen_host = listen.substr(0, listen.rfind(':'));
    const bool loopback =
        listen_host == "127.0.0.1" || listen_host == "localhost" || listen_host == "[::1]";
    const char* env_token = std::getenv("BACKFILL_TOKEN");
    if (!loopback && token_file.empty() && (env_token == nullptr || *env_token == 0)) {
      std::cerr << "backfill-worker: refusing to serve the source on " << listen
                << " without a bearer token\nhint: give every program the same --token-file "
                   "(or BACKFILL_TOKEN)\n";
      return 2;
    }
  } else if (!listen.empty() || !advertise.empty()) {
    std::cerr << "backfill-worker: --listen and --advertise go with --source-side\n";
    return 2;
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

  if (source_side) {
    return backfill::RunSourceSide(backfill::SourceSideRun{
        .coordinator = coordinator,
        .token = *token,
        .tls = tls,
        .name = options.name,
        .listen = listen,
        .advertise = advertise,
        .source = options.source_override,
        .application_name = options.application_name,
    });
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
  options.source_side = std::make_shared<backfill::SourceSideConnector>(*token, *credentials);
  backfill::GrpcCoordinatorClient client(coordinator, *token, *credentials);
  backfill::Worker worker(options, &client, metrics);
  running = &worker;
  worker.Run();
  running = nullptr;
  return 0;
}
