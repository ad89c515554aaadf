#include "ctl/commands.h"

#include <unistd.h>

#include <atomic>
#include <iostream>
#include <memory>

#include "common/catalog.h"
#include "common/signals.h"
#include "ctl/command.h"
#include "ctl/embedded.h"
#include "proto/credentials.h"

namespace backfill {

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << std::endl;
  return kExitError;
}

ProgressCounts CountsOf(const v1::CopyProgress& progress) {
  ProgressCounts counts;
  counts.total = progress.tasks_total();
  counts.done = progress.tasks_done();
  counts.failed = progress.tasks_failed();
  counts.leased = progress.tasks_leased();
  counts.rows = progress.rows_copied();
  counts.bytes = progress.bytes_copied();
  return counts;
}

// Progress goes to stderr (a bar on a terminal, else a line per interval), JSON to stdout.
ProgressStyle StyleFor(const CtlOptions& options, bool json_progress) {
  if (options.quiet) return ProgressStyle::kQuiet;
  if (options.json && json_progress) return ProgressStyle::kJson;
  return StderrIsTerminal() ? ProgressStyle::kBar : ProgressStyle::kLines;
}

// Bad arguments found before anything connects: one message and exit 2, nothing written.
int CheckArguments(const CtlOptions& options) {
  for (const auto& [conninfo, role] : {std::pair{&options.databases.source(), "source"},
                                       std::pair{&options.databases.target(), "target"}}) {
    if (conninfo->empty()) continue;
    if (absl::Status s = pg::ValidateConninfo(*conninfo, role); !s.ok()) {
      std::cerr << "error: " << s.message() << std::endl;
      return kExitUsage;
    }
  }
  if (options.command == "stage") {
    for (const auto& [flag, value] :
         {std::pair{"--until", &options.until}, std::pair{"--from", &options.from}}) {
      if (absl::Status s = CheckAbsoluteTime(flag, *value); !s.ok()) {
        std::cerr << "error: " << s.message() << std::endl;
        return kExitUsage;
      }
    }
  }
  return kExitOk;
}

int RunCommand(const CtlOptions& options) {
  if (int code = CheckArguments(options); code != kExitOk) return code;
  if (options.check_args) {
    std::cout << "arguments are valid" << std::endl;
    return kExitOk;
  }
  // status and throttle work on the target alone: no coordinator, no signals to handle.
  if (options.command == "status") return RunStatus(options);
  if (options.command == "throttle") return RunThrottle(options);
  std::unique_ptr<Embedded> embedded;
  std::string address = options.coordinator;
  std::string token = options.token;
  // Block the signals before gRPC starts threads; the watcher decides what they mean.
  // Static: the watcher thread outlives this call.
  static std::atomic<ControlClient*> copy_client{nullptr};
  static std::atomic<Embedded*> copy_workers{nullptr};  // embedded mode, during copy
  static std::string target_conninfo;
  target_conninfo = options.databases.target();
  WatchTerminationSignals(
      [] {
        if (ControlClient* c = copy_client.load()) {
          std::cerr << "Shutting down, waiting for in-progress copies to complete... "
                       "(interrupt again to abort them)"
                    << std::endl;
          c->CancelCopy();
        } else {
          _exit(kExitInterrupted);
        }
      },
      [] {
        if (Embedded* e = copy_workers.load()) {
          std::cerr << "Terminating immediately; in-progress copies are rolled back." << std::endl;
          e->AbortWorkers(target_conninfo);
          std::cerr << "copy aborted; run copy again to resume" << std::endl;
        } else if (copy_client.load() != nullptr) {
          // The workers are other processes: they finish what they hold, and lease no more.
          std::cerr << "Leaving at once; the workers finish the chunks they hold and take no "
                       "new ones (stop them to roll those back). Run copy again to resume."
                    << std::endl;
        }
        _exit(kExitInterrupted);
      });
  if (address.empty()) {
    embedded = std::make_unique<Embedded>();
    if (absl::Status s = embedded->Start(); !s.ok()) return Fail(s);
    address = embedded->address();
    token = embedded->token();
  }
  TlsFiles tls;
  if (embedded == nullptr) tls = TlsFiles{options.tls_ca, options.tls_cert, options.tls_key};
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = ClientCredentials(tls);
  if (!credentials.ok()) return Fail(credentials.status());
  ControlClient client(address, token, *credentials);
  if (options.command == "stage") return RunStage(client, options);
  if (options.command == "copy") {
    if (embedded != nullptr) embedded->StartWorkers(options.parallelism);
    copy_client = &client;
    copy_workers = embedded.get();
    int code = RunCopy(client, options, embedded.get());
    copy_workers = nullptr;
    copy_client = nullptr;
    return code;
  }
  if (options.command == "verify") {
    if (embedded != nullptr) embedded->StartWorkers(options.parallelism);
    return RunVerify(client, options);
  }
  if (options.command == "clean") return RunClean(client, options);
  if (options.command == "refresh-caggs") return RunRefreshCaggs(client, options);
  std::cerr << "error: unknown command '" << options.command << "'" << std::endl;
  return kExitUsage;
}

}  // namespace backfill
