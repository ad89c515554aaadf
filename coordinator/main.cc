// backfill-coordinator: stages tasks, leases them to backfill-worker processes and reports
// progress to backfillctl. All of its state is in the target's __backfill schema.
#include <glog/logging.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>

#include "CLI/CLI.hpp"
#include "common/auth.h"
#include "common/logging.h"
#include "common/metrics_server.h"
#include "common/signals.h"
#include "coordinator/coordinator.h"
#include "coordinator/server.h"
#include "proto/credentials.h"

int main(int argc, char** argv) {
  CLI::App app{"backfill-coordinator: leases chunk copies to backfill-worker processes"};
  std::string listen = "127.0.0.1:7433";
  // The defaults are CoordinatorOptions', which an embedded coordinator (backfillctl without
  // --coordinator) uses too.
  const backfill::CoordinatorOptions defaults;
  int64_t lease_timeout_ms = absl::ToInt64Milliseconds(defaults.lease_timeout);
  int64_t heartbeat_ms = absl::ToInt64Milliseconds(defaults.heartbeat_interval);
  int max_attempts = defaults.max_attempts;
  int verbosity = 0;
  app.add_option("--listen", listen, "address to serve on, HOST:PORT (loopback by default)")
      ->capture_default_str();
  app.add_option("--lease-timeout-ms", lease_timeout_ms,
                 "a lease without a heartbeat for this long is granted again")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{86400000}));
  app.add_option("--heartbeat-ms", heartbeat_ms, "how often workers heartbeat")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  app.add_option("--max-attempts", max_attempts,
                 "failures after which a task waits for the next copy")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file holding the bearer token every caller must present (default: "
                 "$BACKFILL_TOKEN)");
  backfill::TlsFiles tls;
  app.add_option("--tls-cert", tls.cert, "serve TLS with this certificate (PEM)");
  app.add_option("--tls-key", tls.key, "private key of --tls-cert (PEM)");
  app.add_option("--tls-client-ca", tls.ca, "require client certificates signed by this CA (PEM)");
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
  backfill::InitLogging(argv[0], verbosity + 1);
  backfill::RouteGrpcLogsToGlog();
  if (heartbeat_ms * 2 > lease_timeout_ms) {
    std::cerr << "backfill-coordinator: --heartbeat-ms must be at most half of "
                 "--lease-timeout-ms\n";
    return 2;
  }
  // --check-args reads no file: a token is there when a file or BACKFILL_TOKEN names one.
  const char* env_token = std::getenv("BACKFILL_TOKEN");
  absl::StatusOr<std::string> token =
      check_args ? std::string(!token_file.empty() || (env_token != nullptr && *env_token != 0)
                                   ? "(not read)"
                                   : "")
                 : backfill::LoadToken(token_file);
  if (!token.ok()) {
    std::cerr << "backfill-coordinator: " << token.status().message() << "\n";
    return 2;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  const bool loopback = host == "127.0.0.1" || host == "localhost" || host == "[::1]";
  if (token->empty() && !loopback) {
    std::cerr << "backfill-coordinator: refusing to listen on " << listen
              << " without a bearer token\nhint: give every program the same --token-file "
                 "(or BACKFILL_TOKEN)\n";
    return 2;
  }
  if (check_args) {
    std::cout << "backfill-coordinator: arguments are valid" << std::endl;
    return 0;
  }

  backfill::CoordinatorOptions options;
  options.lease_timeout = absl::Milliseconds(lease_timeout_ms);
  options.heartbeat_interval = absl::Milliseconds(heartbeat_ms);
  options.max_attempts = max_attempts;
  backfill::Coordinator coordinator(options);
  std::unique_ptr<backfill::MetricsServer> metrics;
  if (!metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<backfill::MetricsServer>> started =
        backfill::MetricsServer::Start(metrics_listen, coordinator.registry());
    if (!started.ok()) {
      std::cerr << "backfill-coordinator: " << started.status().message() << "\n";
      return 1;
    }
    metrics = *std::move(started);
    std::cout << "backfill-coordinator serving metrics on port " << metrics->port() << std::endl;
  }
  // Signals are blocked before gRPC starts its threads; the watcher shuts the server down.
  std::atomic<backfill::CoordinatorServer*> running{nullptr};
  backfill::WatchTerminationSignals(
      [&running] {
        std::cerr << "backfill-coordinator: shutting down\n";
        if (backfill::CoordinatorServer* s = running.load()) {
          s->Shutdown();
        } else {
          _exit(130);
        }
      },
      [] { _exit(130); });
  absl::StatusOr<std::unique_ptr<backfill::CoordinatorServer>> server =
      backfill::CoordinatorServer::Start(listen, &coordinator, *token, tls);
  if (!server.ok()) {
    std::cerr << "backfill-coordinator: " << server.status().message() << "\n";
    return 1;
  }
  running = server->get();
  std::cout << "backfill-coordinator listening on port " << (*server)->port() << std::endl;
  LOG(INFO) << "listening on " << listen << " (port " << (*server)->port() << ")";
  (*server)->Wait();
  return 0;
}
