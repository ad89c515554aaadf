#include "common/pg.h"

#include <glog/logging.h>
#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace backfill::pg {
namespace {

// The source sends one CopyData message per row; they go to the target in blocks of this
// size (COPY FROM accepts any split of the stream): far fewer messages for both sides, and a
// worker's memory stays flat whatever the chunk's size. Chosen by measurement (bench/, README
// "Performance"), over 256 KiB blocks written by a second thread.
constexpr size_t kRelayBlockBytes = size_t{32} * 1024;

}  // namespace

namespace {

constexpr char kSqlStatePayload[] = "backfill/sqlstate";

absl::StatusCode CodeForSqlState(absl::string_view state) {
  if (absl::StartsWith(state, "08")) return absl::StatusCode::kUnavailable;
  if (state == "57P01" || state == "57P02" || state == "57P03") {
    return absl::StatusCode::kUnavailable;
  }
  if (state == "40001" || state == "40P01") return absl::StatusCode::kAborted;
  if (state == "55P03") return absl::StatusCode::kAborted;  // lock_not_available
  if (state == "57014") return absl::StatusCode::kCancelled;
  if (state == "42501") return absl::StatusCode::kPermissionDenied;
  if (state == "42P01" || state == "42883" || state == "3F000" || state == "3D000") {
    return absl::StatusCode::kNotFound;
  }
  if (absl::StartsWith(state, "22")) return absl::StatusCode::kInvalidArgument;
  if (absl::StartsWith(state, "53")) return absl::StatusCode::kResourceExhausted;
  return absl::StatusCode::kFailedPrecondition;
}

// libpq messages end with a newline and may carry a second, indented line; keep the first.
std::string FirstLine(const char* message) {
  if (message == nullptr) return "unknown error";
  absl::string_view text(message);
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.empty()) return "unknown error";
  return std::string(lines.front());
}

}  // namespace

std::optional<std::string> SqlState(const absl::Status& status) {
  auto payload = status.GetPayload(kSqlStatePayload);
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

absl::Status ServerError(absl::string_view state, absl::string_view message) {
  absl::Status status(CodeForSqlState(state), message);
  status.SetPayload(kSqlStatePayload, absl::Cord(state));
  return status;
}

bool IsRetryable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

Result::Result(pg_result* result) : result_(result) {}

void Result::Deleter::operator()(pg_result* r) const { PQclear(r); }

absl::StatusOr<Result> Result::FromText(const std::vector<std::string>& column_names,
                                        const std::vector<Param>& cells) {
  const size_t columns = column_names.size();
  if (columns == 0 ? !cells.empty() : cells.size() % columns != 0) {
    return absl::InvalidArgumentError("cells do not fill whole rows");
  }
  Result result(PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK));
  if (!result.result_) return absl::ResourceExhaustedError("out of memory");
  std::vector<PGresAttDesc> attributes(columns);
  for (size_t c = 0; c < columns; ++c) {
    attributes[c] = PGresAttDesc{};
    attributes[c].name = const_cast<char*>(column_names[c].c_str());
    attributes[c].typlen = -1;
  }
  if (columns > 0 &&
      PQsetResultAttrs(result.result_.get(), static_cast<int>(columns), attributes.data()) == 0) {
    return absl::ResourceExhaustedError("out of memory");
  }
  for (size_t i = 0; i < cells.size(); ++i) {
    const Param& cell = cells[i];
    // NULL: length -1; a value is copied by libpq.
    if (PQsetvalue(result.result_.get(), static_cast<int>(i / columns),
                   static_cast<int>(i % columns),
                   cell.has_value() ? const_cast<char*>(cell->data()) : nullptr,
                   cell.has_value() ? static_cast<int>(cell->size()) : -1) == 0) {
      return absl::ResourceExhaustedError("out of memory");
    }
  }
  return result;
}

std::string Result::ColumnName(int column) const {
  const char* name = result_ ? PQfname(result_.get(), column) : nullptr;
  return name != nullptr ? name : "";
}

int Result::rows() const { return result_ ? PQntuples(result_.get()) : 0; }
int Result::columns() const { return result_ ? PQnfields(result_.get()) : 0; }

bool Result::IsNull(int row, int column) const {
  return PQgetisnull(result_.get(), row, column) != 0;
}

std::string Result::Get(int row, int column) const {
  if (IsNull(row, column)) return "";
  return std::string(PQgetvalue(result_.get(), row, column),
                     PQgetlength(result_.get(), row, column));
}

int64_t Result::GetInt(int row, int column) const {
  int64_t value = 0;
  if (IsNull(row, column)) return 0;
  (void)absl::SimpleAtoi(PQgetvalue(result_.get(), row, column), &value);
  return value;
}

bool Result::GetBool(int row, int column) const {
  return !IsNull(row, column) && PQgetvalue(result_.get(), row, column)[0] == 't';
}

int64_t Result::affected_rows() const {
  int64_t value = 0;
  if (result_) (void)absl::SimpleAtoi(PQcmdTuples(result_.get()), &value);
  return value;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(absl::string_view conninfo,
                                                             absl::string_view application_name,
                                                             absl::string_view role) {
  if (absl::Status valid = ValidateConninfo(conninfo, role); !valid.ok()) return valid;
  std::string dsn(conninfo);
  std::string app(application_name);
  // With expand_dbname, `dbname` is expanded from the whole string and the keywords after it
  // override what it says: the session is always named after the process that opened it.
  const char* keywords[] = {"dbname", "application_name", "connect_timeout", nullptr};
  const char* values[] = {dsn.c_str(), app.c_str(), "10", nullptr};
  // An explicit connect_timeout in the string or environment wins over our default.
  if (absl::StrContains(dsn, "connect_timeout") || std::getenv("PGCONNECT_TIMEOUT") != nullptr) {
    keywords[2] = nullptr;
  }
  // A name that does not resolve is tried again for a moment: a container network's DNS
  // (podman's aardvark-dns while a container joins, a Kubernetes DNS pod restarting) can miss
  // an answer for a name that resolves a second later. A name that never resolves costs
  // 1.5 s more before the error; a resolver that times out is not waited for again once 2 s
  // have gone.
  constexpr int kNameAttempts = 5;
  constexpr absl::Duration kNameBudget = absl::Seconds(2);
  const absl::Time first_attempt = absl::Now();
  absl::Duration backoff = absl::Milliseconds(100);
  pg_conn* conn = nullptr;
  for (int attempt = 1;; ++attempt) {
    conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
    if (conn == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot connect to ", role, " database: out of memory"));
    }
    if (PQstatus(conn) == CONNECTION_OK) break;
    std::string error = FirstLine(PQerrorMessage(conn));
    const bool unresolved = absl::StrContains(error, "could not translate host name");
    // The next attempt starts within the budget or not at all.
    const absl::Duration left = kNameBudget - (absl::Now() - first_attempt);
    if (!unresolved || attempt == kNameAttempts || left <= absl::ZeroDuration()) {
      if (unresolved) {
        absl::StrAppend(
            &error, " (", attempt, attempt == 1 ? " attempt" : " attempts", " over ",
            absl::FormatDuration(absl::Trunc(absl::Now() - first_attempt, absl::Milliseconds(100))),
            ")");
      }
      PQfinish(conn);
      return absl::UnavailableError(absl::StrCat("cannot connect to ", role, " database (",
                                                 DescribeConninfo(conninfo), "): ", error));
    }
    PQfinish(conn);
    absl::SleepFor(std::min(backoff, left));
    backoff *= 2;
  }
  // Server notices (e.g. "drop cascades to ...") are for logs, not the user's terminal.
  PQsetNoticeProcessor(
      conn, [](void*, const char* message) { VLOG(1) << "server notice: " << FirstLine(message); },
      nullptr);
  std::unique_ptr<Connection> connection(new Connection(conn, std::string(role)));
  absl::Status pinned = connection->ExecScript(
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
      "SET standard_conforming_strings = on; SET search_path = '';");
  if (!pinned.ok()) return pinned;
  return connection;
}

Connection::Connection(pg_conn* conn, std::string role)
    : conn_(conn), cancel_(PQgetCancel(conn)), role_(std::move(role)) {}

Connection::~Connection() {
  if (cancel_ != nullptr) PQfreeCancel(cancel_);
  PQfinish(conn_);
}

bool Connection::ok() const { return PQstatus(conn_) == CONNECTION_OK; }

int Connection::backend_pid() const { return PQbackendPID(conn_); }

void Connection::Cancel() {
  char error[256];
  if (cancel_ != nullptr) (void)PQcancel(cancel_, error, sizeof(error));
}

absl::Status Connection::ErrorFromResult(pg_result* result) const {
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  if (state == nullptr) {
    // No SQLSTATE: the failure happened on the client side, usually a lost connection.
    return ErrorFromConnection("query failed");
  }
  return ServerError(state, absl::StrCat(role_, ": ", primary != nullptr ? primary : "error"));
}

absl::Status Connection::ErrorFromConnection(absl::string_view what) const {
  absl::StatusCode code = ok() ? absl::StatusCode::kInternal : absl::StatusCode::kUnavailable;
  return absl::Status(code,
                      absl::StrCat(role_, ": ", what, ": ", FirstLine(PQerrorMessage(conn_))));
}

absl::StatusOr<Result> Connection::ExecParams(absl::string_view sql,
                                              const std::vector<Param>& params) {
  std::string statement(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p.has_value() ? p->c_str() : nullptr);
  pg_result* raw = PQexecParams(conn_, statement.c_str(), static_cast<int>(values.size()), nullptr,
                                values.data(), nullptr, nullptr, 0);
  Result result(raw);
  if (raw == nullptr) return ErrorFromConnection("query failed");
  ExecStatusType status = PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return ErrorFromResult(raw);
  return result;
}

absl::StatusOr<Result> Connection::ExecPrepared(absl::string_view sql,
                                                const std::vector<Param>& params) {
  std::string statement(sql);
  auto it = prepared_.find(statement);
  if (it == prepared_.end()) {
    const std::string name = absl::StrCat("backfill_", ++prepared_count_);
    pg_result* raw =
        PQprepare(conn_, name.c_str(), statement.c_str(), static_cast<int>(params.size()), nullptr);
    Result prepared(raw);
    if (raw == nullptr) return ErrorFromConnection("prepare failed");
    if (PQresultStatus(raw) != PGRES_COMMAND_OK) return ErrorFromResult(raw);
    it = prepared_.emplace(std::move(statement), name).first;
  }
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p.has_value() ? p->c_str() : nullptr);
  pg_result* raw = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()),
                                  values.data(), nullptr, nullptr, 0);
  Result result(raw);
  if (raw == nullptr) return ErrorFromConnection("query failed");
  ExecStatusType status = PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    absl::Status error = ErrorFromResult(raw);
    // The session lost its prepared statements (DISCARD ALL, DEALLOCATE): prepare again.
    if (SqlState(error) == "26000" && !retried_prepare_) {
      prepared_.clear();
      retried_prepare_ = true;
      absl::StatusOr<Result> again = ExecPrepared(sql, params);
      retried_prepare_ = false;
      return again;
    }
    return error;
  }
  return result;
}

absl::Status Connection::Parse(absl::string_view sql) {
  const std::string statement(sql);
  pg_result* raw = PQprepare(conn_, "", statement.c_str(), 0, nullptr);
  Result prepared(raw);
  if (raw == nullptr) return ErrorFromConnection("parse failed");
  if (PQresultStatus(raw) != PGRES_COMMAND_OK) return ErrorFromResult(raw);
  return absl::OkStatus();
}

bool Connection::in_transaction() const {
  const PGTransactionStatusType status = PQtransactionStatus(conn_);
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
}

absl::Status Connection::ExecScript(absl::string_view sql) {
  std::string script(sql);
  if (PQsendQuery(conn_, script.c_str()) == 0) return ErrorFromConnection("query failed");
  absl::Status first_error;
  // Drain every result so the connection is ready for the next statement.
  while (pg_result* raw = PQgetResult(conn_)) {
    Result result(raw);
    ExecStatusType status = PQresultStatus(raw);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && first_error.ok()) {
      first_error = ErrorFromResult(raw);
    }
  }
  if (first_error.ok() && !ok()) return ErrorFromConnection("query failed");
  return first_error;
}

absl::StatusOr<int64_t> Connection::CopyOutDiscard(absl::string_view copy_out_sql) {
  std::string sql(copy_out_sql);
  {
    pg_result* raw = PQexec(conn_, sql.c_str());
    Result result(raw);
    if (raw == nullptr) return ErrorFromConnection("COPY failed");
    if (PQresultStatus(raw) != PGRES_COPY_OUT) return ErrorFromResult(raw);
  }
  int64_t bytes = 0;
  for (;;) {
    char* buffer = nullptr;
    const int n = PQgetCopyData(conn_, &buffer, /*async=*/0);
    if (buffer != nullptr) PQfreemem(buffer);
    if (n < 0) break;
    bytes += n;
  }
  absl::Status error;
  while (pg_result* raw = PQgetResult(conn_)) {
    Result result(raw);
    if (PQresultStatus(raw) != PGRES_COMMAND_OK && error.ok()) error = ErrorFromResult(raw);
  }
  if (!error.ok()) return error;
  return bytes;
}

absl::Status Connection::StartCopyOut(absl::string_view copy_out_sql) {
  std::string sql(copy_out_sql);
  pg_result* raw = PQexec(conn_, sql.c_str());
  Result result(raw);
  if (raw == nullptr) return ErrorFromConnection("COPY failed");
  if (PQresultStatus(raw) != PGRES_COPY_OUT) return ErrorFromResult(raw);
  in_copy_out_ = true;
  return absl::OkStatus();
}

absl::Status Connection::EndCopyOut() {
  in_copy_out_ = false;
  absl::Status error;
  while (pg_result* raw = PQgetResult(conn_)) {
    Result result(raw);
    const ExecStatusType status = PQresultStatus(raw);
    if (status == PGRES_COPY_OUT || status == PGRES_COPY_IN) {
      // Cannot happen once PQgetCopyData has said the end; never spin on it.
      return ErrorFromConnection("COPY did not end");
    }
    if (status != PGRES_COMMAND_OK && error.ok()) error = ErrorFromResult(raw);
  }
  return error;
}

absl::StatusOr<bool> Connection::ReadCopyOut(std::string* data, size_t at_least) {
  if (!in_copy_out_) return absl::FailedPreconditionError("no COPY OUT in progress");
  const size_t until = data->size() + at_least;
  while (data->size() < until) {
    char* buffer = nullptr;
    const int n = PQgetCopyData(conn_, &buffer, /*async=*/0);
    if (n == -1) {  // COPY OUT done; its final result follows.
      if (absl::Status s = EndCopyOut(); !s.ok()) return s;
      return false;
    }
    if (n < 0) {
      absl::Status error = ErrorFromConnection("COPY failed");
      (void)EndCopyOut();
      return error;
    }
    data->append(buffer, static_cast<size_t>(n));
    PQfreemem(buffer);
  }
  return true;
}

void Connection::AbortCopyOut() {
  if (!in_copy_out_) return;
  // Stop the COPY and drain it, or the connection would stay in COPY OUT (where PQgetResult
  // never returns NULL).
  Cancel();
  for (;;) {
    char* buffer = nullptr;
    const int n = PQgetCopyData(conn_, &buffer, /*async=*/0);
    if (buffer != nullptr) PQfreemem(buffer);
    if (n < 0) break;
  }
  (void)EndCopyOut();
}

absl::StatusOr<CopyStats> Connection::CopyFrom(Queryable& source, absl::string_view copy_out_sql,
                                               absl::string_view copy_in_sql,
                                               RateLimiter* limiter) {
  // Start the receiving side first: if the target refuses, nothing was read from the source.
  std::string in_sql(copy_in_sql);
  {
    pg_result* raw = PQexec(conn_, in_sql.c_str());
    Result result(raw);
    if (raw == nullptr) return ErrorFromConnection("COPY failed");
    if (PQresultStatus(raw) != PGRES_COPY_IN) return ErrorFromResult(raw);
  }
  auto abort_in = [this](const char* why) {
    (void)PQputCopyEnd(conn_, why);
    while (pg_result* raw = PQgetResult(conn_)) PQclear(raw);
  };
  if (absl::Status s = source.StartCopyOut(copy_out_sql); !s.ok()) {
    abort_in("source COPY failed");
    return s;
  }
  CopyStats stats;
  std::string block;
  block.reserve(kRelayBlockBytes + 65536);
  for (;;) {
    absl::StatusOr<bool> more = source.ReadCopyOut(&block, kRelayBlockBytes);
    if (!more.ok()) {  // the source failed mid-stream: its error, not the target's
      abort_in("source COPY failed");
      return more.status();
    }
    if (!block.empty()) {
      stats.bytes += static_cast<int64_t>(block.size());
      if (limiter != nullptr) limiter->Consume(static_cast<int64_t>(block.size()));
      if (PQputCopyData(conn_, block.data(), static_cast<int>(block.size())) != 1) {
        absl::Status error = ErrorFromConnection("COPY failed");
        source.AbortCopyOut();
        abort_in("target COPY failed");
        return error;
      }
      block.clear();
    }
    if (!*more) break;
  }
  if (PQputCopyEnd(conn_, nullptr) != 1) return ErrorFromConnection("COPY failed");
  absl::Status target_error;
  while (pg_result* raw = PQgetResult(conn_)) {
    Result result(raw);
    if (PQresultStatus(raw) == PGRES_COMMAND_OK) {
      stats.rows = result.affected_rows();
    } else if (target_error.ok()) {
      target_error = ErrorFromResult(raw);
    }
  }
  if (!target_error.ok()) return target_error;
  return stats;
}

absl::Status ValidateConninfo(absl::string_view conninfo, absl::string_view role) {
  std::string dsn(conninfo);
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (options == nullptr) {
    std::string why = error != nullptr ? FirstLine(error) : "out of memory";
    if (error != nullptr) PQfreemem(error);
    return absl::InvalidArgumentError(absl::StrCat("invalid ", role, " connection string: ", why));
  }
  PQconninfoFree(options);
  return absl::OkStatus();
}

std::string DescribeConninfo(absl::string_view conninfo) {
  std::string dsn(conninfo);
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), nullptr);
  if (options == nullptr) return "unparseable connection string";
  std::string host, port, dbname, user;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    absl::string_view key(o->keyword);
    if (key == "host" || key == "hostaddr") {
      if (host.empty()) host = o->val;
    } else if (key == "port") {
      port = o->val;
    } else if (key == "dbname") {
      dbname = o->val;
    } else if (key == "user") {
      user = o->val;
    }
  }
  PQconninfoFree(options);
  // Fall back to what libpq would use from the environment.
  auto env_or = [](std::string value, const char* var) {
    if (value.empty() && std::getenv(var) != nullptr) value = std::getenv(var);
    return value;
  };
  host = env_or(host, "PGHOST");
  port = env_or(port, "PGPORT");
  dbname = env_or(dbname, "PGDATABASE");
  user = env_or(user, "PGUSER");
  std::string out = absl::StrCat("host=", host.empty() ? "default" : host);
  if (!port.empty()) absl::StrAppend(&out, " port=", port);
  if (!dbname.empty()) absl::StrAppend(&out, " dbname=", dbname);
  if (!user.empty()) absl::StrAppend(&out, " user=", user);
  return out;
}

}  // namespace backfill::pg
