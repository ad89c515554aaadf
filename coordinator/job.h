// The job lifecycle: at most one copy or verify job is open on a coordinator at a time. Copy
// and Verify calls open it or join it (the same work on the same target), workers' leases are
// served from it, their reports become its events, and it closes when its last follower
// leaves. Plain state, no database: the tasks live in the job's TaskStore.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backfill.pb.h"
#include "coordinator/task_store.h"

namespace backfill {

struct Job {
  v1::LeaseTaskResponse::Work work = v1::LeaseTaskResponse::COPY;
  bool row_hash = false;
  bool row_by_row = false;  // copy --no-bulk-load
  v1::Databases databases;
  std::shared_ptr<TaskStore> store;
  std::string source_identity;  // DatabaseIdentity of the source; empty: unknown
  int64_t done_at_open = 0;     // tasks done before the job could lease
};

class JobRegistry {
 public:
  // Prepares a job that is opening (fills in what it found), before any worker can lease
  // from it; a failure refuses the job.
  using OpenJob = std::function<absl::Status(Job&)>;

  // Joins the open job when it is the same work on the same target, or opens one like `proto`
  // and runs `open` on it first; FailedPrecondition while another job runs. Only the call that
  // opens the job runs `open`: a call that joins does not prepare it again, and a refused call
  // prepares nothing. Calls for the same job wait while it is being opened.
  absl::StatusOr<std::shared_ptr<const Job>> Join(const Job& proto, const OpenJob& open = nullptr);
  // The last follower's leaving closes the job.
  void Leave(const std::shared_ptr<const Job>& job);
  // The open job, waiting up to `wait` for one to open (nullptr: none, or closed).
  std::shared_ptr<const Job> Await(absl::Duration wait);
  // The store of the open job, or of the last one (heartbeats and reports may outlive a job).
  std::shared_ptr<TaskStore> LastStore();
  // Answers every Await at once from now on; for shutting down.
  void Close();
  // Moves the job's baseline (copy --repair re-opened tasks that were done).
  void ReopenedBeforeStart(const std::shared_ptr<const Job>& job, int64_t reopened);
  int64_t DoneAtOpen(const std::shared_ptr<const Job>& job);

  // --- events: what workers reported, for progress output ---
  void Granted(int64_t task_id, const std::string& chunk, const std::string& hypertable);
  // Records a report on the open job (dropped when none is open).
  void Reported(const v1::ReportTaskRequest& report);
  // How many events the job has.
  size_t EventCount(const std::shared_ptr<const Job>& job);
  // Events from `from` on.
  std::vector<v1::TaskEvent> EventsFrom(const std::shared_ptr<const Job>& job, size_t from);
  // Waits up to `timeout` for the job to have at least `count` events.
  void AwaitEvents(const std::shared_ptr<const Job>& job, size_t count, absl::Duration timeout);
  // Waits up to `timeout` until the job's done reports reach `count`.
  void AwaitDoneReports(const std::shared_ptr<const Job>& job, int64_t count,
                        absl::Duration timeout);

 private:
  struct State {
    int followers = 0;
    int64_t done_at_open = 0;
    std::vector<v1::TaskEvent> events;
    int64_t done_events = 0;  // reports of tasks finished (copied or skipped)
    std::map<int64_t, std::pair<std::string, std::string>> names;  // chunk, hypertable
  };
  State* StateOf(const std::shared_ptr<const Job>& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::shared_ptr<Job> job_ ABSL_GUARDED_BY(mu_);
  State state_ ABSL_GUARDED_BY(mu_);  // of job_
  std::shared_ptr<TaskStore> last_store_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // job_ is being prepared (Join's `open`): not served to workers yet.
  bool opening_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace backfill
