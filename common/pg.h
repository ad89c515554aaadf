// A thin, typed layer over libpq: connections with pinned session settings, parameterised
// statements, and raw COPY streaming between two connections.
//
// libpq is used directly (not libpqxx) because the copy hot path relays CopyData messages
// from one connection to another inside the same target transaction that fences and
// completes the task; libpqxx 6.4 (Debian bookworm) cannot hand out its PGconn for that.
//
// Thread-safety: a Connection is used by one thread at a time. Cancel() is the exception: it
// may be called from any thread while another thread runs a statement.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"
#include "common/rate_limiter.h"

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct pg_conn;
struct pg_result;
struct pg_cancel;

namespace backfill::pg {

// The SQLSTATE a failed statement reported, when the status came from the server.
std::optional<std::string> SqlState(const absl::Status& status);

// Whether retrying the same work later may succeed (lost connections, serialization
// failures, deadlocks, admin shutdown). Decided by SQLSTATE and status code, never by text.
bool IsRetryable(const absl::Status& status);

using Param = std::optional<std::string>;

// The rows of one statement, as text. Cheap to move; owns the PGresult.
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* result);
  // Rows read elsewhere (a source-side worker's answer), as a result of their own: `cells`
  // row by row, nullopt for NULL, `column_names.size()` per row.
  static absl::StatusOr<Result> FromText(const std::vector<std::string>& column_names,
                                         const std::vector<Param>& cells);
  std::string ColumnName(int column) const;

  int rows() const;
  int columns() const;
  bool IsNull(int row, int column) const;
  std::string Get(int row, int column) const;  // "" for NULL
  int64_t GetInt(int row, int column) const;   // 0 for NULL
  bool GetBool(int row, int column) const;     // false for NULL
  // Rows affected by INSERT/UPDATE/DELETE/COPY.
  int64_t affected_rows() const;

 private:
  struct Deleter {
    void operator()(pg_result* r) const;
  };
  std::unique_ptr<pg_result, Deleter> result_;
};

// What a COPY relay moved.
struct CopyStats {
  int64_t rows = 0;
  int64_t bytes = 0;
};

// The error a statement failed with on the server: SQLSTATE `state` and its message, with
// the code and payload a local failure of that state has (SqlState, IsRetryable).
absl::Status ServerError(absl::string_view state, absl::string_view message);

// A database session one can query and read a COPY from: a Connection, or one held by a
// source-side worker elsewhere (worker/source_side_session.h). What the copy and the verification
// ask of their source.
class Queryable {
 public:
  virtual ~Queryable() = default;
  // One statement with text parameters ($1, $2, ...).
  absl::StatusOr<Result> Exec(absl::string_view sql, const std::vector<Param>& params = {}) {
    return ExecParams(sql, params);
  }
  // Exec, as each kind of session runs it.
  virtual absl::StatusOr<Result> ExecParams(absl::string_view sql,
                                            const std::vector<Param>& params) = 0;
  // One or more statements; no parameters.
  virtual absl::Status ExecScript(absl::string_view sql) = 0;
  // Starts `copy_out_sql` (COPY ... TO STDOUT). Then ReadCopyOut until it says the end.
  virtual absl::Status StartCopyOut(absl::string_view copy_out_sql) = 0;
  // Appends the COPY's next data to `data`, at least `at_least` bytes unless it ends first;
  // false once it has ended (its final result collected: an error if it failed mid-stream).
  virtual absl::StatusOr<bool> ReadCopyOut(std::string* data, size_t at_least) = 0;
  // Ends a COPY OUT that is still running (the reader gave up): the session can be used, or
  // is broken, afterwards; never left in COPY OUT.
  virtual void AbortCopyOut() = 0;
  // Asks the server to cancel the statement in progress. Safe from any thread.
  virtual void Cancel() = 0;
  // False once the session is broken; it must be replaced.
  virtual bool ok() const = 0;
  // "source" or "target", or where the session is held, for messages.
  virtual const std::string& role() const = 0;
};

class Connection : public Queryable {
 public:
  // Opens a connection from a libpq key/value string or URI (PG* environment variables fill
  // what it leaves out) and pins the session: TimeZone UTC, DateStyle ISO, an empty
  // search_path, standard_conforming_strings on, and `application_name`. `role` ("source",
  // "target") names the database in error messages, which never contain the password.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(absl::string_view conninfo,
                                                          absl::string_view application_name,
                                                          absl::string_view role);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One statement through the extended protocol with text parameters ($1, $2, ...).
  absl::StatusOr<Result> ExecParams(absl::string_view sql,
                                    const std::vector<Param>& params) override;
  // Exec for a statement this session runs again and again (the coordinator's lease path):
  // prepared once per session, so that later runs skip parsing and, once the server settles
  // on a generic plan, planning. The statement's text is its identity. Not thread-safe.
  absl::StatusOr<Result> ExecPrepared(absl::string_view sql, const std::vector<Param>& params);
  // One or more statements through the simple protocol; no parameters.
  absl::Status ExecScript(absl::string_view sql) override;

  absl::Status StartCopyOut(absl::string_view copy_out_sql) override;
  absl::StatusOr<bool> ReadCopyOut(std::string* data, size_t at_least) override;
  void AbortCopyOut() override;

  // Runs `copy_out_sql` (a COPY ... TO STDOUT) and throws the data away; the bytes read.
  absl::StatusOr<int64_t> CopyOutDiscard(absl::string_view copy_out_sql);
  // Runs `copy_out_sql` (COPY ... TO STDOUT) on `source` and `copy_in_sql`
  // (COPY ... FROM STDIN) on this connection, relaying the raw CopyData bytes without
  // decoding them, paced by `limiter` when set. On error both COPYs are ended and the status
  // says which side failed.
  absl::StatusOr<CopyStats> CopyFrom(Queryable& source, absl::string_view copy_out_sql,
                                     absl::string_view copy_in_sql, RateLimiter* limiter = nullptr);

  // Parses `sql` as one statement without running it (an unnamed prepared statement): an
  // error if it is not exactly one statement the server understands.
  absl::Status Parse(absl::string_view sql);
  // True inside a transaction block (BEGIN ... not yet ended), failed or not.
  bool in_transaction() const;

  void Cancel() override;
  bool ok() const override;
  const std::string& role() const override { return role_; }
  int backend_pid() const;

 private:
  Connection(pg_conn* conn, std::string role);
  absl::Status ErrorFromResult(pg_result* result) const;
  absl::Status ErrorFromConnection(absl::string_view what) const;
  // Collects a finished COPY OUT's final result: its error, if it failed.
  absl::Status EndCopyOut();

  pg_conn* conn_;
  pg_cancel* cancel_;
  std::string role_;
  // Statements prepared in this session: text -> name.
  absl::flat_hash_map<std::string, std::string> prepared_;
  int64_t prepared_count_ = 0;  // names are never reused
  bool retried_prepare_ = false;
  bool in_copy_out_ = false;
};

// Validates a connection string without connecting; the error names `role` and why.
absl::Status ValidateConninfo(absl::string_view conninfo, absl::string_view role);

// A printable description of a connection string (host, port, database, user), never the
// password. For logs and messages.
std::string DescribeConninfo(absl::string_view conninfo);

}  // namespace backfill::pg
