#include "common/connection_pool.h"

#include <utility>

namespace backfill {

namespace {
constexpr size_t kMaxIdle = 8;
}  // namespace

ConnectionPool::ConnectionPool(std::string conninfo, std::string application_name, std::string role)
    : conninfo_(std::move(conninfo)),
      application_name_(std::move(application_name)),
      role_(std::move(role)) {}

ConnectionPool::Handle::~Handle() {
  if (conn_ != nullptr && pool_ != nullptr) pool_->Release(std::move(conn_));
}

absl::StatusOr<ConnectionPool::Handle> ConnectionPool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    while (!idle_.empty()) {
      std::unique_ptr<pg::Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      if (conn->ok()) return Handle(this, std::move(conn));
    }
  }
  absl::StatusOr<std::unique_ptr<pg::Connection>> conn =
      pg::Connection::Open(conninfo_, application_name_, role_);
  if (!conn.ok()) return conn.status();
  return Handle(this, *std::move(conn));
}

void ConnectionPool::Release(std::unique_ptr<pg::Connection> conn) {
  if (!conn->ok()) return;
  absl::MutexLock lock(&mu_);
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(conn));
}

}  // namespace backfill
