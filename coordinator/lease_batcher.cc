#include "coordinator/lease_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"

namespace backfill {
namespace {

// Whether two requests can be granted by one statement.
bool SameSettings(const LeaseRequest& a, const LeaseRequest& b) {
  return a.work == b.work && a.lease_timeout == b.lease_timeout &&
         a.max_attempts == b.max_attempts && a.max_per_hypertable == b.max_per_hypertable;
}

}  // namespace

LeaseBatcher::LeaseBatcher(GrantMany grant_many, int max_running, int max_group)
    : grant_many_(std::move(grant_many)),
      max_running_(std::max(1, max_running)),
      max_group_(static_cast<size_t>(std::max(1, max_group))) {}

absl::StatusOr<std::optional<Grant>> LeaseBatcher::Lease(const LeaseRequest& request) {
  Waiter me{&request, false, absl::UnknownError("not served")};
  absl::MutexLock lock(&mu_);
  queue_.push_back(&me);
  // Until this request is served, whoever finds room for a group runs one: this request's,
  // or, when it was taken by a group still running, the next one's.
  const auto served_or_room = [this, &me]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return me.done || (running_ < max_running_ && !queue_.empty());
  };
  while (true) {
    mu_.Await(absl::Condition(&served_or_room));
    if (me.done) break;
    RunGroup(TakeGroup());
  }
  return std::move(me.result);
}

size_t LeaseBatcher::Waiting() {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

std::vector<LeaseBatcher::Waiter*> LeaseBatcher::TakeGroup() {
  std::vector<Waiter*> group = {queue_.front()};
  queue_.pop_front();
  for (auto it = queue_.begin(); it != queue_.end() && group.size() < max_group_;) {
    if (SameSettings(*(*it)->request, *group.front()->request)) {
      group.push_back(*it);
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return group;
}

void LeaseBatcher::RunGroup(const std::vector<Waiter*>& group) {
  LeaseRequest settings = *group.front()->request;
  std::vector<std::string> workers;
  workers.reserve(group.size());
  for (const Waiter* w : group) {
    settings.now = std::max(settings.now, w->request->now);
    workers.push_back(w->request->worker_id);
  }
  ++running_;
  mu_.Unlock();
  absl::StatusOr<std::vector<std::optional<Grant>>> grants = grant_many_(settings, workers);
  mu_.Lock();
  --running_;
  for (size_t i = 0; i < group.size(); ++i) {
    Waiter* w = group[i];
    if (!grants.ok()) {
      w->result = grants.status();
    } else if (i < grants->size()) {
      w->result = std::move((*grants)[i]);
    } else {
      w->result = std::optional<Grant>();
    }
    w->done = true;
  }
}

}  // namespace backfill
