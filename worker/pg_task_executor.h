// The production TaskExecutor: one source and one target session, kept across tasks, on which
// tasks are copied (chunk_copier.h) and verified (chunk_verifier.h).
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/pg.h"
#include "worker/source_side_session.h"
#include "worker/task_executor.h"

namespace backfill {

struct PgTaskExecutorOptions {
  // When set, used instead of the connection strings the coordinator hands out.
  std::string source_override;
  std::string target_override;
  std::string application_name = "backfill-worker";
  std::string worker_name;  // for a source-side worker's logs
  // Opens the source sessions of leases paired with a source-side worker; null: those read
  // the source directly.
  std::shared_ptr<SourceSideConnector> source_side;
};

class PgTaskExecutor : public TaskExecutor {
 public:
  explicit PgTaskExecutor(PgTaskExecutorOptions options);

  absl::Status Connect(const v1::LeaseTaskResponse& lease) override;
  int TargetBackendPid() const override;
  void Run(const v1::LeaseTaskResponse& lease, RateLimiter* limiter,
           v1::ReportTaskRequest* report) override;
  void Cancel() override;
  void Disconnect() override;

 private:
  void Copy(const v1::LeaseTaskResponse& lease, pg::Queryable& source, RateLimiter* limiter,
            v1::ReportTaskRequest* report);
  void Verify(const v1::LeaseTaskResponse& lease, pg::Queryable& source,
              v1::ReportTaskRequest* report);
  // Opens the task's source session through its source-side worker.
  absl::Status ConnectSourceSide(const v1::LeaseTaskResponse& lease);

  const PgTaskExecutorOptions options_;
  std::string source_conninfo_;
  std::string target_conninfo_;
  // Replaced only by Connect and Disconnect, never while Run is in progress: Cancel reads them.
  std::unique_ptr<pg::Connection> source_;
  std::unique_ptr<pg::Connection> target_;
  // The current task's source session through a source-side worker, if it has one. Set by
  // Connect, ended by Run; guarded for Cancel.
  absl::Mutex source_side_mu_;
  std::unique_ptr<SourceSideSession> source_side_ ABSL_GUARDED_BY(source_side_mu_);
  std::string skip_invalidation_;  // for the current target session
  bool target_superuser_ = false;  // the current target session may write the catalog
};

}  // namespace backfill
