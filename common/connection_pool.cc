#include "common/connection_pool.h"

#include <utility>

namespace backfill {

ConnectionPool::ConnectionPool(std::string conninfo, std::string application_name, std::string role,
                               int max_connections, std::string session_setup)
    : conninfo_(std::move(conninfo)),
      application_name_(std::move(application_name)),
      role_(std::move(role)),
      max_connections_(max_connections < 1 ? 1 : max_connections),
      session_setup_(std::move(session_setup)) {}

ConnectionPool::Handle::~Handle() {
  if (conn_ != nullptr && pool_ != nullptr) pool_->Release(std::move(conn_));
}

absl::StatusOr<ConnectionPool::Handle> ConnectionPool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    auto can_go = [](ConnectionPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
      return !p->idle_.empty() || p->open_ < p->max_connections_;
    };
    mu_.Await(absl::Condition(+can_go, this));
    while (!idle_.empty()) {
      std::unique_ptr<pg::Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      if (conn->ok()) return Handle(this, std::move(conn));
      --open_;
    }
    ++open_;  // this caller opens one
  }
  absl::StatusOr<std::unique_ptr<pg::Connection>> conn =
      pg::Connection::Open(conninfo_, application_name_, role_);
  if (conn.ok() && !session_setup_.empty()) {
    if (absl::Status s = (*conn)->ExecScript(session_setup_); !s.ok()) conn = s;
  }
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return conn.status();
  }
  return Handle(this, *std::move(conn));
}

void ConnectionPool::Release(std::unique_ptr<pg::Connection> conn) {
  absl::MutexLock lock(&mu_);
  if (!conn->ok()) {
    --open_;  // dropped: its place is free
    return;
  }
  idle_.push_back(std::move(conn));
}

}  // namespace backfill
