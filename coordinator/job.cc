#include "coordinator/job.h"

#include "absl/strings/str_cat.h"

namespace backfill {

absl::StatusOr<std::shared_ptr<const Job>> JobRegistry::Join(const Job& proto,
                                                             const OpenJob& open) {
  std::shared_ptr<Job> opening;
  {
    absl::MutexLock lock(&mu_);
    for (;;) {
      if (job_ == nullptr) break;
      if (job_->databases.target() != proto.databases.target() || job_->work != proto.work ||
          job_->row_hash != proto.row_hash || job_->row_by_row != proto.row_by_row) {
        return absl::FailedPreconditionError(
            "this coordinator is serving another copy or verify; wait for it to finish");
      }
      if (!opening_) {
        ++state_.followers;
        return std::shared_ptr<const Job>(job_);
      }
      // The same job is being opened: join it once it is open, or open it when that failed.
      const Job* seen = job_.get();
      auto settled = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return job_.get() != seen || !opening_;
      };
      mu_.Await(absl::Condition(&settled));
    }
    opening = std::make_shared<Job>(proto);
    job_ = opening;
    opening_ = true;
    state_ = State{};
    state_.followers = 1;
  }
  // Outside the lock: preparing the job may take a while (verify resets every copied task).
  // Nothing leases from the job meanwhile, and a refused job prepares nothing.
  absl::Status prepared = open ? open(*opening) : absl::OkStatus();
  absl::MutexLock lock(&mu_);
  opening_ = false;
  if (!prepared.ok()) {
    job_ = nullptr;
    return prepared;
  }
  state_.done_at_open = opening->done_at_open;
  last_store_ = opening->store;
  return std::shared_ptr<const Job>(opening);
}

void JobRegistry::Leave(const std::shared_ptr<const Job>& job) {
  absl::MutexLock lock(&mu_);
  if (job_ == job && --state_.followers == 0) job_ = nullptr;
}

std::shared_ptr<const Job> JobRegistry::Await(absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  auto open_or_closed = [](JobRegistry* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
    return (r->job_ != nullptr && !r->opening_) || r->closed_;
  };
  mu_.AwaitWithTimeout(absl::Condition(+open_or_closed, this), wait);
  return opening_ ? nullptr : job_;
}

std::shared_ptr<TaskStore> JobRegistry::LastStore() {
  absl::MutexLock lock(&mu_);
  return last_store_;
}

void JobRegistry::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

JobRegistry::State* JobRegistry::StateOf(const std::shared_ptr<const Job>& job) {
  return job_ != nullptr && job_ == job ? &state_ : nullptr;
}

void JobRegistry::ReopenedBeforeStart(const std::shared_ptr<const Job>& job, int64_t reopened) {
  absl::MutexLock lock(&mu_);
  if (State* s = StateOf(job)) s->done_at_open -= reopened;
}

int64_t JobRegistry::DoneAtOpen(const std::shared_ptr<const Job>& job) {
  absl::MutexLock lock(&mu_);
  State* s = StateOf(job);
  return s == nullptr ? job->done_at_open : s->done_at_open;
}

void JobRegistry::Granted(int64_t task_id, const std::string& chunk,
                          const std::string& hypertable) {
  absl::MutexLock lock(&mu_);
  if (job_ != nullptr && !opening_) state_.names[task_id] = {chunk, hypertable};
}

void JobRegistry::Reported(const v1::ReportTaskRequest& report) {
  absl::MutexLock lock(&mu_);
  if (job_ == nullptr || opening_) return;
  v1::TaskEvent event;
  auto it = state_.names.find(report.task_id());
  if (it != state_.names.end()) {
    event.set_chunk(it->second.first);
    event.set_hypertable(it->second.second);
  } else {
    event.set_chunk(absl::StrCat("task ", report.task_id()));
  }
  event.set_worker_id(report.worker_id());
  event.set_outcome(report.outcome());
  event.set_rows(report.rows());
  event.set_bytes(report.bytes());
  event.set_error(report.error());
  event.set_note(report.note());
  state_.events.push_back(std::move(event));
  if (report.outcome() == v1::ReportTaskRequest::COPIED ||
      report.outcome() == v1::ReportTaskRequest::SOURCE_MISSING) {
    ++state_.done_events;
  }
}

size_t JobRegistry::EventCount(const std::shared_ptr<const Job>& job) {
  absl::MutexLock lock(&mu_);
  State* s = StateOf(job);
  return s == nullptr ? 0 : s->events.size();
}

std::vector<v1::TaskEvent> JobRegistry::EventsFrom(const std::shared_ptr<const Job>& job,
                                                   size_t from) {
  absl::MutexLock lock(&mu_);
  State* s = StateOf(job);
  if (s == nullptr || from >= s->events.size()) return {};
  return std::vector<v1::TaskEvent>(s->events.begin() + static_cast<ptrdiff_t>(from),
                                    s->events.end());
}

void JobRegistry::AwaitEvents(const std::shared_ptr<const Job>& job, size_t count,
                              absl::Duration timeout) {
  struct Wait {
    JobRegistry* r;
    const Job* job;
    size_t count;
  } wait{this, job.get(), count};
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](Wait* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                             return w->r->job_.get() != w->job ||
                                    w->r->state_.events.size() >= w->count;
                           },
                           &wait),
                       timeout);
}

void JobRegistry::AwaitDoneReports(const std::shared_ptr<const Job>& job, int64_t count,
                                   absl::Duration timeout) {
  struct Wait {
    JobRegistry* r;
    const Job* job;
    int64_t count;
  } wait{this, job.get(), count};
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](Wait* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                             return w->r->job_.get() != w->job ||
                                    w->r->state_.done_events >= w->count;
                           },
                           &wait),
                       timeout);
}

}  // namespace backfill
