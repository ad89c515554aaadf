// A small pool of connections to one database, for a process that serves many short
// requests (the coordinator). At most `max_connections` are open at once: a caller waits for
// one to come back rather than open (and soon close) another, which costs the database a new
// backend each time. Broken connections are dropped, not returned.
//
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/pg.h"

namespace backfill {

class ConnectionPool {
 public:
  static constexpr int kDefaultMaxConnections = 4;
  // `session_setup` (statements, e.g. SET ...) runs on each connection the pool opens.
  ConnectionPool(std::string conninfo, std::string application_name, std::string role,
                 int max_connections = kDefaultMaxConnections, std::string session_setup = "");

  // A connection back in the pool when this handle goes out of scope.
  class Handle {
   public:
    Handle(ConnectionPool* pool, std::unique_ptr<pg::Connection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Handle(Handle&&) = default;
    Handle& operator=(Handle&&) = default;
    ~Handle();
    pg::Connection& operator*() const { return *conn_; }
    pg::Connection* operator->() const { return conn_.get(); }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<pg::Connection> conn_;
  };

  // Waits while max_connections are in use. A caller must not hold one handle while it
  // acquires another.
  absl::StatusOr<Handle> Acquire();
  const std::string& conninfo() const { return conninfo_; }

 private:
  void Release(std::unique_ptr<pg::Connection> conn);

  const std::string conninfo_;
  const std::string application_name_;
  const std::string role_;
  const int max_connections_;
  const std::string session_setup_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<pg::Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle or handed out
};

}  // namespace backfill
