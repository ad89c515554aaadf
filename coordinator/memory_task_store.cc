#include "coordinator/memory_task_store.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/quote.h"
#include "coordinator/pg_task_store.h"

namespace backfill {
namespace {

// Largest first, tasks without a size last, then by id (lease_task.sql's ORDER BY).
bool GrantsBefore(const std::optional<int64_t>& a_bytes, int64_t a_id,
                  const std::optional<int64_t>& b_bytes, int64_t b_id) {
  if (a_bytes.has_value() != b_bytes.has_value()) return a_bytes.has_value();
  if (a_bytes.has_value() && *a_bytes != *b_bytes) return *a_bytes > *b_bytes;
  return a_id < b_id;
}

// How long a task is held back after a retryable failure or an expiry, given its attempts
// before it (record_failure.sql): 0.5 s doubling, at most 30 s.
absl::Duration Backoff(int attempts) {
  const double delay_ms = std::min(30000.0, 500 * std::pow(2.0, std::min(attempts, 16)));
  return absl::Milliseconds(static_cast<int64_t>(delay_ms));
}

}  // namespace

int64_t MemoryTaskStore::Add(const TaskSpec& spec) {
  absl::MutexLock lock(&mu_);
  const int64_t id = next_id_++;
  tasks_[id].spec = spec;
  return id;
}

bool MemoryTaskStore::Complete(int64_t task_id, int64_t epoch, int64_t rows, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || it->second.epoch != epoch || it->second.worked) return false;
  Task& t = it->second;
  t.worked = true;
  t.done_by = std::move(t.holder);
  t.holder.clear();
  t.rows = rows;
  t.bytes = bytes;
  t.expires.reset();
  t.session_pid.reset();
  t.last_error.clear();
  t.verified = false;
  t.matches.reset();
  t.report.clear();
  return true;
}

bool MemoryTaskStore::CompleteVerify(int64_t task_id, int64_t epoch, bool matches,
                                     const std::string& report) {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return false;
  Task& t = it->second;
  if (t.epoch != epoch || !t.worked || t.verified) return false;
  t.verified = true;
  t.done_by = std::move(t.holder);
  t.holder.clear();
  t.matches = matches;
  t.report = report;
  t.expires.reset();
  t.session_pid.reset();
  t.last_error.clear();
  return true;
}

TargetSession MemoryTaskStore::OpenSession() {
  absl::MutexLock lock(&mu_);
  const int32_t pid = next_pid_++;
  sessions_[pid] = absl::StrCat("session ", pid);
  return TargetSession{pid, sessions_[pid]};
}

void MemoryTaskStore::CloseSession(const TargetSession& session) {
  absl::MutexLock lock(&mu_);
  if (Alive(session.pid, session.start)) sessions_.erase(session.pid);
}

bool MemoryTaskStore::SessionAlive(const TargetSession& session) {
  absl::MutexLock lock(&mu_);
  return Alive(session.pid, session.start);
}

void MemoryTaskStore::SetSchemaVersion(int version) {
  absl::MutexLock lock(&mu_);
  schema_version_ = version;
}

bool MemoryTaskStore::Alive(int32_t pid, const std::string& start) const {
  auto it = sessions_.find(pid);
  return it != sessions_.end() && it->second == start;
}

MemoryTaskStore::Task* MemoryTaskStore::Find(const LeaseRef& lease) {
  auto it = tasks_.find(lease.task_id);
  if (it == tasks_.end() || it->second.epoch != lease.epoch ||
      it->second.holder != lease.worker_id || lease.worker_id.empty()) {
    return nullptr;
  }
  return &it->second;
}

MemoryTaskStore::Task* MemoryTaskStore::FindHeldOrDone(const LeaseRef& lease) {
  if (Task* t = Find(lease); t != nullptr) return t;
  auto it = tasks_.find(lease.task_id);
  if (it == tasks_.end() || it->second.epoch != lease.epoch || lease.worker_id.empty() ||
      it->second.done_by != lease.worker_id) {
    return nullptr;
  }
  return &it->second;
}

absl::StatusOr<std::optional<Grant>> MemoryTaskStore::Lease(const LeaseRequest& request) {
  absl::MutexLock lock(&mu_);
  const bool verify = request.work == Work::kVerify;
  std::map<std::pair<std::string, std::string>, int> leased;  // per hypertable
  if (!verify && request.max_per_hypertable > 0) {
    for (const auto& [id, t] : tasks_) {
      if (!t.worked && LeaseLive(t, request.now)) {
        ++leased[{t.spec.hypertable_schema, t.spec.hypertable_name}];
      }
    }
  }
  Task* best = nullptr;
  int64_t best_id = 0;
  for (auto& [id, t] : tasks_) {
    if (verify ? (!t.worked || t.verified) : t.worked) continue;
    // Held (an expired lease is given up by a sweep); a copied task still names its copy's
    // holder, with no expiry, and is free to verify.
    if (!t.holder.empty() && !(verify && !t.expires.has_value())) continue;
    if (t.attempts >= request.max_attempts) continue;
    if (t.expires.has_value() && *t.expires >= request.now) continue;
    if (!verify && request.max_per_hypertable > 0 &&
        leased[{t.spec.hypertable_schema, t.spec.hypertable_name}] >= request.max_per_hypertable) {
      continue;
    }
    // Verifications go in task order; copies largest first.
    if (best == nullptr ||
        (!verify && GrantsBefore(t.spec.source_bytes, id, best->spec.source_bytes, best_id))) {
      best = &t;
      best_id = id;
    }
  }
  if (best == nullptr) return std::nullopt;
  Grant grant;
  ++best->epoch;
  best->holder = request.worker_id;
  best->expires = request.now + request.lease_timeout;
  best->session_pid.reset();
  best->session_start.clear();
  v1::Task& task = grant.task;
  task.set_task_id(best_id);
  task.set_lease_epoch(best->epoch);
  task.set_hypertable_schema(best->spec.hypertable_schema);
  task.set_hypertable_name(best->spec.hypertable_name);
  task.set_hypertable_display(
      DisplayName(best->spec.hypertable_schema, best->spec.hypertable_name));
  task.set_source_chunk_schema(best->spec.chunk_schema);
  task.set_source_chunk_name(best->spec.chunk_name);
  task.set_target_chunk_schema(best->spec.chunk_schema);
  task.set_target_chunk_name(best->spec.chunk_name);
  return grant;
}

absl::StatusOr<bool> MemoryTaskStore::ExtendLease(const LeaseRef& lease, absl::Duration timeout,
                                                  absl::Time now,
                                                  std::optional<int32_t> backend_pid) {
  absl::MutexLock lock(&mu_);
  Task* t = FindHeldOrDone(lease);
  if (t == nullptr) return false;
  if (!t->expires.has_value()) return true;  // completed (or failed) by this holder
  t->expires = now + timeout;
  t->session_pid = backend_pid;
  auto session = backend_pid.has_value() ? sessions_.find(*backend_pid) : sessions_.end();
  t->session_start = session == sessions_.end() ? "" : session->second;
  return true;
}

absl::StatusOr<bool> MemoryTaskStore::HoldsLease(const LeaseRef& lease) {
  absl::MutexLock lock(&mu_);
  return FindHeldOrDone(lease) != nullptr;
}

absl::StatusOr<bool> MemoryTaskStore::RecordFailure(const LeaseRef& lease, const std::string& error,
                                                    bool retryable, int max_attempts,
                                                    absl::Time now) {
  absl::MutexLock lock(&mu_);
  Task* t = Find(lease);
  if (t == nullptr) return false;
  t->holder.clear();
  if (retryable) {
    t->expires = now + Backoff(t->attempts);
  } else {
    t->expires.reset();
  }
  t->session_pid.reset();
  t->last_error = error;
  t->attempts = retryable ? t->attempts + 1 : std::max(t->attempts + 1, max_attempts);
  return true;
}

absl::StatusOr<bool> MemoryTaskStore::ReleaseLease(const LeaseRef& lease) {
  absl::MutexLock lock(&mu_);
  Task* t = Find(lease);
  if (t == nullptr || (t->worked && t->verified)) return false;
  t->holder.clear();
  t->expires.reset();
  t->session_pid.reset();
  return true;
}

absl::StatusOr<Sweep> MemoryTaskStore::SweepLeases(Work work, int max_attempts, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Sweep sweep;
  for (auto& [id, t] : tasks_) {
    if (!t.session_pid.has_value() || !t.expires.has_value()) continue;
    if (*t.expires > now && !Alive(*t.session_pid, t.session_start)) {
      t.expires = now;
      t.session_pid.reset();
      ++sweep.released;
    }
  }
  for (auto& [id, t] : tasks_) {
    if (!t.session_pid.has_value() || !t.expires.has_value() || *t.expires >= now) continue;
    if (!Alive(*t.session_pid, t.session_start)) continue;
    sessions_.erase(*t.session_pid);
    sweep.ended.push_back(
        Sweep::Lease{id, DisplayName(t.spec.chunk_schema, t.spec.chunk_name), t.holder});
  }
  for (auto& [id, t] : tasks_) {
    const bool of_work = work == Work::kCopy ? !t.worked : t.worked && !t.verified;
    if (!of_work || t.holder.empty() || !t.expires.has_value() || *t.expires >= now) continue;
    const std::string holder = t.holder;
    t.holder.clear();
    t.last_error = absl::StrCat("the lease expired: worker ", holder, " stopped answering");
    t.expires = now + Backoff(t.attempts);
    ++t.attempts;
    sweep.expired.push_back(
        Sweep::Lease{id, DisplayName(t.spec.chunk_schema, t.spec.chunk_name), holder, t.attempts});
    t.session_pid.reset();
    t.session_start.clear();
  }
  return sweep;
}

absl::StatusOr<TaskCounts> MemoryTaskStore::Counts(Work work, int max_attempts, absl::Time now) {
  absl::MutexLock lock(&mu_);
  TaskCounts c;
  for (const auto& [id, t] : tasks_) {
    if (work == Work::kCopy) {
      ++c.total;
      c.done += t.worked;
      c.failed += !t.worked && t.attempts >= max_attempts;
      c.leased += !t.worked && LeaseLive(t, now);
      c.rows += t.rows;
      c.bytes += t.bytes;
    } else if (t.worked) {
      ++c.total;
      c.done += t.verified;
      c.failed += !t.verified && t.attempts >= max_attempts;
      c.leased += !t.verified && LeaseLive(t, now);
      c.mismatches += t.matches.has_value() && !*t.matches;
    }
  }
  return c;
}

absl::StatusOr<std::vector<FailedTask>> MemoryTaskStore::FailedTasks(int max_attempts) {
  absl::MutexLock lock(&mu_);
  std::vector<FailedTask> failed;
  for (const auto& [id, t] : tasks_) {
    if (t.worked || t.attempts < max_attempts) continue;
    failed.push_back(FailedTask{DisplayName(t.spec.chunk_schema, t.spec.chunk_name),
                                DisplayName(t.spec.hypertable_schema, t.spec.hypertable_name),
                                t.last_error});
  }
  return failed;
}

absl::StatusOr<std::optional<Throttle>> MemoryTaskStore::ReadThrottle() {
  absl::MutexLock lock(&mu_);
  return throttle_;
}

absl::Status MemoryTaskStore::Migrate() {
  absl::MutexLock lock(&mu_);
  if (schema_version_ > kTaskSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("the target's __backfill schema is version ", schema_version_,
                     ", written by a newer release of timescaledb-backfill"));
  }
  schema_version_ = kTaskSchemaVersion;
  return absl::OkStatus();
}

absl::Status MemoryTaskStore::ResetFailed() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, t] : tasks_) {
    if (!t.worked) t.attempts = 0;
  }
  return absl::OkStatus();
}

absl::Status MemoryTaskStore::SetThrottle(std::optional<int64_t> max_bytes_per_second,
                                          std::optional<int32_t> max_chunks_per_hypertable) {
  absl::MutexLock lock(&mu_);
  if (max_bytes_per_second) throttle_.max_bytes_per_second = *max_bytes_per_second;
  if (max_chunks_per_hypertable) {
    throttle_.max_chunks_per_hypertable = *max_chunks_per_hypertable;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MemoryTaskStore::ReopenMismatched() {
  absl::MutexLock lock(&mu_);
  const bool any_verified = std::any_of(tasks_.begin(), tasks_.end(), [](const auto& entry) {
    return entry.second.worked && entry.second.verified;
  });
  if (!any_verified) {
    return absl::FailedPreconditionError("nothing to repair: no copied chunk has been verified");
  }
  std::vector<std::string> chunks;
  for (auto& [id, t] : tasks_) {
    if (!t.worked || !t.matches.has_value() || *t.matches) continue;
    const TaskSpec spec = t.spec;
    const int64_t epoch = t.epoch + 1;
    t = Task{};
    t.spec = spec;
    t.epoch = epoch;
    chunks.push_back(DisplayName(spec.chunk_schema, spec.chunk_name));
  }
  std::sort(chunks.begin(), chunks.end());
  return chunks;
}

absl::StatusOr<int64_t> MemoryTaskStore::ResetVerify() {
  absl::MutexLock lock(&mu_);
  int64_t copied = 0;
  for (auto& [id, t] : tasks_) {
    if (!t.worked) continue;
    ++copied;
    t.verified = false;
    t.matches.reset();
    t.report.clear();
    t.attempts = 0;
    t.holder.clear();
    t.expires.reset();
  }
  return copied;
}

absl::StatusOr<std::vector<VerifyRecord>> MemoryTaskStore::VerifyRecords() {
  absl::MutexLock lock(&mu_);
  std::vector<VerifyRecord> records;
  for (const auto& [id, t] : tasks_) {
    if (!t.worked) continue;
    const std::string chunk = DisplayName(t.spec.chunk_schema, t.spec.chunk_name);
    records.push_back(VerifyRecord{t.report, t.last_error,
                                   DisplayName(t.spec.hypertable_schema, t.spec.hypertable_name),
                                   chunk, chunk});
  }
  return records;
}

}  // namespace backfill
