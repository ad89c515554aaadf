#include "ctl/embedded.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/auth.h"
#include "common/pg.h"
#include "coordinator/task_reports.h"
#include "proto/credentials.h"

namespace backfill {

absl::Status Embedded::Start() {
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start("127.0.0.1:0", &coordinator_, token_);
  if (!server.ok()) {
    return absl::Status(
        server.status().code(),
        absl::StrCat("cannot start the embedded coordinator: ", server.status().message()));
  }
  server_ = *std::move(server);
  address_ = absl::StrCat("127.0.0.1:", server_->port());
  return absl::OkStatus();
}

void Embedded::StartWorkers(int n) {
  for (int i = 0; i < n; ++i) {
    clients_.push_back(
        std::make_unique<GrpcCoordinatorClient>(address_, token_, *ClientCredentials(TlsFiles{})));
    WorkerOptions options;
    options.name = absl::StrCat(DefaultWorkerName(), "/", i + 1);
    options.application_name = "timescaledb-backfill worker";
    workers_.push_back(std::make_unique<Worker>(options, clients_.back().get()));
    threads_.emplace_back([w = workers_.back().get()] { w->Run(); });
  }
}

void Embedded::StopWorkers() {
  coordinator_.Close();  // answers their lease requests at once
  for (auto& w : workers_) w->Stop();
}

void Embedded::Join() {
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Embedded::AbortWorkers(const std::string& target_conninfo) {
  const std::string prefix = absl::StrCat(DefaultWorkerName(), "/");
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      pg::Connection::Open(target_conninfo, "backfillctl", "target");
  absl::StatusOr<std::vector<int64_t>> held =
      target.ok() ? HeldTasks(**target, prefix)
                  : absl::StatusOr<std::vector<int64_t>>(target.status());
  coordinator_.Close();
  bool stopped = true;
  for (auto& w : workers_) stopped = w->Abort(absl::Seconds(10)) && stopped;
  if (!held.ok()) {
    std::cerr << "cannot tell which chunks were in progress: " << held.status().message()
              << std::endl;
    return;
  }
  absl::StatusOr<std::vector<TaskOutcome>> done = TaskOutcomes(**target, *held);
  if (!done.ok()) {
    std::cerr << "cannot tell which chunks were rolled back: " << done.status().message()
              << std::endl;
    return;
  }
  std::vector<std::string> rolled_back, committed;
  for (const TaskOutcome& outcome : *done) {
    (outcome.committed ? committed : rolled_back).push_back(outcome.chunk);
  }
  std::cout << "Aborted: rolled back the copies of " << rolled_back.size() << " chunks in progress"
            << (rolled_back.empty() ? "." : ":") << std::endl;
  for (const std::string& chunk : rolled_back) std::cout << "  " << chunk << std::endl;
  if (!committed.empty()) {
    std::cout << committed.size() << " chunks committed before they could be stopped:" << std::endl;
    for (const std::string& chunk : committed) std::cout << "  " << chunk << std::endl;
  }
  if (!stopped) {
    std::cout << "Some workers did not stop in time; their sessions end with this process."
              << std::endl;
  }
}

Embedded::~Embedded() {
  StopWorkers();
  Join();
  if (server_ != nullptr) server_->Shutdown();
}

}  // namespace backfill
