#include "worker/source_side.h"

#include <glog/logging.h>
#include <unistd.h>

#include <iostream>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/catalog.h"
#include "common/pg.h"
#include "common/signals.h"
#include "worker/grpc_coordinator_client.h"
#include "worker/source_side_server.h"

namespace backfill {

int RunSourceSide(const SourceSideRun& run) {
  absl::Notification stop;
  // Installed before gRPC starts its threads, so they inherit the blocked signals.
  WatchTerminationSignals(
      [&stop] {
        std::cerr << "backfill-worker: stopping once the source sessions held have ended "
                     "(signal again to end them now)\n";
        if (!stop.HasBeenNotified()) stop.Notify();
      },
      [] {
        std::cerr << "backfill-worker: ending the source sessions held; their chunks are "
                     "copied again\n";
        _exit(130);
      });
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ClientCredentials(run.tls);
  if (!credentials.ok()) {
    std::cerr << "backfill-worker: " << credentials.status().message() << "\n";
    return 2;
  }
  // The source must answer before anyone is told to read through this worker; which
  // database it is goes to the coordinator, which pairs it only with jobs on that source.
  std::string identity;
  {
    absl::StatusOr<std::unique_ptr<pg::Connection>> probe =
        pg::Connection::Open(run.source, run.application_name, "source");
    absl::StatusOr<std::string> read =
        probe.ok() ? DatabaseIdentity(**probe) : absl::StatusOr<std::string>(probe.status());
    if (!read.ok()) {
      std::cerr << "backfill-worker: " << read.status().message() << "\n";
      return 1;
    }
    identity = *std::move(read);
    if (identity.empty()) {
      LOG(WARNING) << "the source user may not read pg_control_system(): the coordinator "
                      "cannot check that this worker reads the job's source";
    }
  }
  absl::StatusOr<std::unique_ptr<SourceSideServer>> server = SourceSideServer::Start(
      run.listen, run.token, run.tls,
      SourceSideOptions{.source = run.source, .application_name = run.application_name});
  if (!server.ok()) {
    std::cerr << "backfill-worker: " << server.status().message() << "\n";
    return 1;
  }
  std::cout << "backfill-worker serving the source on port " << (*server)->port() << std::endl;
  GrpcCoordinatorClient client(run.coordinator, run.token, *credentials);

  std::string worker_id;
  absl::Duration interval = absl::Seconds(1);
  bool complained = false;
  while (!stop.HasBeenNotified()) {
    absl::Status status;
    if (worker_id.empty()) {
      v1::RegisterWorkerRequest request;
      request.set_worker_name(run.name);
      request.set_source_side_address(run.advertise);
      request.set_source_side_identity(identity);
      absl::StatusOr<v1::RegisterWorkerResponse> registered = client.RegisterWorker(request);
      status = registered.status();
      if (registered.ok()) {
        worker_id = registered->worker_id();
        interval = absl::Milliseconds(std::max<int64_t>(100, registered->heartbeat_interval_ms()));
        LOG(INFO) << "source-side worker " << worker_id << " registered; target-side workers "
                  << "reach it at " << run.advertise << "; it reads " << identity;
      }
    } else {
      v1::SourceSideHeartbeatRequest request;
      request.set_worker_id(worker_id);
      request.set_address(run.advertise);
      request.set_sessions((*server)->sessions());
      absl::StatusOr<v1::SourceSideHeartbeatResponse> beat = client.SourceSideHeartbeat(request);
      status = beat.status();
      if (beat.ok() && !beat->known()) {
        LOG(INFO) << "the coordinator does not know " << worker_id << " (restarted?); registering";
        worker_id.clear();
        continue;
      }
    }
    if (!status.ok() && !complained) {
      LOG(WARNING) << "cannot reach the coordinator at " << run.coordinator << ": "
                   << status.message() << " (trying again)";
    } else if (status.ok() && complained) {
      LOG(INFO) << "the coordinator answers again";
    }
    complained = !status.ok();
    stop.WaitForNotificationWithTimeout(status.ok() ? interval : absl::Seconds(1));
  }
  (*server)->Drain();
  // Tell the coordinator at once, so that no lease is paired with a worker that would refuse
  // it (each such lease would fail an attempt); then keep telling it while sessions end.
  for (absl::Time next = absl::InfinitePast();;) {
    if (!worker_id.empty() && absl::Now() >= next) {
      v1::SourceSideHeartbeatRequest request;
      request.set_worker_id(worker_id);
      request.set_address(run.advertise);
      request.set_sessions((*server)->sessions());
      request.set_draining(true);
      (void)client.SourceSideHeartbeat(request);
      next = absl::Now() + interval;
    }
    if ((*server)->sessions() == 0) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  (*server)->Shutdown();
  return 0;
}

}  // namespace backfill
