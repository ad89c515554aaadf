#include "coordinator/source_sides.h"

#include <tuple>

#include <glog/logging.h>

namespace backfill {

bool SourceSides::IsLive(const Entry& entry, absl::Time now) const {
  return !entry.draining && now - entry.last_seen <= timeout_;
}

void SourceSides::Register(const std::string& worker_id, const std::string& address,
                           const std::string& identity) {
  absl::MutexLock lock(&mu_);
  Entry& entry = workers_[worker_id];
  entry.address = address;
  entry.identity = identity;
  entry.last_seen = clock_.Now();
  entry.draining = false;
}

bool SourceSides::Heartbeat(const std::string& worker_id, const std::string& address,
                            bool draining) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return false;
  it->second.address = address;
  it->second.last_seen = clock_.Now();
  if (draining && !it->second.draining) {
    LOG(INFO) << "source-side worker " << worker_id << " at " << address
              << " is stopping; no more leases are paired with it";
  }
  it->second.draining = draining;
  return true;
}

std::optional<v1::SourceSide> SourceSides::Pair(int64_t task_id, int64_t epoch,
                                                const std::string& source_identity) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  // A task granted again after its lease expired: the old pair ends here.
  if (auto old = pairs_.find(task_id); old != pairs_.end()) {
    if (auto w = workers_.find(old->second.worker_id); w != workers_.end()) --w->second.paired;
    pairs_.erase(old);
  }
  const std::string* best = nullptr;
  for (auto it = workers_.begin(); it != workers_.end();) {
    Entry& entry = it->second;
    // Forgotten once nothing is paired with it and it has been silent for a long while.
    if (entry.paired <= 0 && now - entry.last_seen > 10 * timeout_) {
      workers_.erase(it++);
      continue;
    }
    // Reading another database (a --source mistyped, or naming the target): reading
    // through it would copy, and verify, the wrong rows.
    if (!source_identity.empty() && !entry.identity.empty() && entry.identity != source_identity) {
      if (entry.warned_for != source_identity) {
        entry.warned_for = source_identity;
        LOG(ERROR) << "source-side worker " << it->first << " at " << entry.address
                   << " reads another database (" << entry.identity << ") than this job's source ("
                   << source_identity
                   << "): nothing is paired with it; give it the source's --source";
      }
      ++it;
      continue;
    }
    if (IsLive(entry, now) && now >= entry.lost_until) {
      const Entry* chosen = best == nullptr ? nullptr : &workers_.at(*best);
      // Fewest pairs, then least recently paired, then the name: the same answer on every
      // run whatever order the map iterates in.
      if (chosen == nullptr || std::tie(entry.paired, entry.last_paired, it->first) <
                                   std::tie(chosen->paired, chosen->last_paired, *best)) {
        best = &it->first;
      }
    }
    ++it;
  }
  if (best == nullptr) return std::nullopt;
  Entry& entry = workers_.at(*best);
  ++entry.paired;
  entry.last_paired = ++pairings_;
  pairs_[task_id] = Pairing{*best, epoch};
  v1::SourceSide side;
  side.set_worker_id(*best);
  side.set_address(entry.address);
  return side;
}

void SourceSides::Unpair(int64_t task_id, int64_t epoch, bool lost) {
  absl::MutexLock lock(&mu_);
  auto pair = pairs_.find(task_id);
  if (pair == pairs_.end() || pair->second.epoch != epoch) return;
  if (auto w = workers_.find(pair->second.worker_id); w != workers_.end()) {
    --w->second.paired;
    if (lost) {
      w->second.lost_until = clock_.Now() + timeout_;
      LOG(WARNING) << "source-side worker " << w->first << " at " << w->second.address
                   << " was lost by a lease; no leases are paired with it for "
                   << absl::FormatDuration(timeout_);
    }
  }
  pairs_.erase(pair);
}

int SourceSides::Live() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  int live = 0;
  for (const auto& [id, entry] : workers_) live += IsLive(entry, now) ? 1 : 0;
  return live;
}

int SourceSides::Known() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(workers_.size());
}

}  // namespace backfill
