#include "tests/harness/pg_cluster.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/harness/process.h"

namespace backfill::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kFallbackBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr char kFallbackPkgLibDir[] = "/usr/lib/postgresql/15/lib";
constexpr int kMaxStartAttempts = 5;
constexpr size_t kMaxNameLength = 32;

bool IsExistingFile(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// Runs `argv` and returns its trimmed stdout if it exits 0, else "".
std::string CommandOutput(const std::vector<std::string>& argv) {
  ProcessResult result = RunProcess(argv, {}, 60);
  if (result.exit_code != 0) return "";
  return std::string(absl::StripAsciiWhitespace(result.out));
}

bool RunningAsRoot() { return geteuid() == 0; }

std::string SanitizeName(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (out.size() >= kMaxNameLength) break;
    out += (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  }
  return out.empty() ? "pg" : out;
}

// Chowns `dir` (recursively) to the OS user postgres.
absl::Status ChownToPostgres(const std::string& dir) {
  struct passwd* pw = getpwnam("postgres");
  if (pw == nullptr) {
    return absl::FailedPreconditionError(
        "running as root but there is no OS user 'postgres' to run initdb/postgres as");
  }
  uid_t uid = pw->pw_uid;
  gid_t gid = pw->pw_gid;
  if (lchown(dir.c_str(), uid, gid) != 0) {
    return absl::InternalError(absl::StrCat("chown ", dir, " failed"));
  }
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (lchown(it->path().c_str(), uid, gid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", it->path().string(), " failed"));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("walking ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

std::string QuoteIdentifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string QuoteLiteral(const std::string& value) {
  std::string out = "'";
  for (char c : value) out += (c == '\'') ? std::string("''") : std::string(1, c);
  return out + "'";
}

// Quotes a libpq key/value connection-string value if it needs quoting.
std::string ConninfoValue(const std::string& value) {
  bool needs_quotes = value.empty();
  for (char c : value) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '\'' || c == '\\') {
      needs_quotes = true;
    }
  }
  if (!needs_quotes) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string PercentEncode(const std::string& value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

std::string Truncate(const std::string& s, size_t max_length) {
  if (s.size() <= max_length) return s;
  return s.substr(0, max_length) + "...";
}

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

void IgnoreNotice(void* /*arg*/, const char* /*message*/) {}

absl::StatusOr<PgConnPtr> Connect(const std::string& dsn) {
  PgConnPtr conn(PQconnectdb(absl::StrCat(dsn, " connect_timeout=30").c_str()));
  if (conn == nullptr) return absl::ResourceExhaustedError("PQconnectdb returned null");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to ", dsn, ": ", absl::StripAsciiWhitespace(PQerrorMessage(conn.get()))));
  }
  // Keep CREATE EXTENSION banners and other notices out of the test output.
  PQsetNoticeProcessor(conn.get(), IgnoreNotice, nullptr);
  return conn;
}

// Runs `sql` on `conn`; OK statuses are turned into the result, others into an error status.
absl::StatusOr<PgResultPtr> Execute(PGconn* conn, const std::string& sql) {
  PgResultPtr result(PQexec(conn, sql.c_str()));
  if (result == nullptr) {
    return absl::InternalError(
        absl::StrCat("PQexec failed: ", absl::StripAsciiWhitespace(PQerrorMessage(conn)),
                     " (sql: ", Truncate(sql, 300), ")"));
  }
  ExecStatusType status = PQresultStatus(result.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
    return result;
  }
  const char* sqlstate = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
  std::string message(absl::StripAsciiWhitespace(PQresultErrorMessage(result.get())));
  if (message.empty()) message = PQresStatus(status);
  return absl::InternalError(absl::StrCat(message, " [SQLSTATE ",
                                          sqlstate == nullptr ? "?" : sqlstate,
                                          "] (sql: ", Truncate(sql, 300), ")"));
}

}  // namespace

std::string PgBinDir() {
  static const std::string* const bin_dir = new std::string([] {
    std::string dir = CommandOutput({"pg_config", "--bindir"});
    if (!dir.empty() && IsExistingFile(dir + "/initdb")) return dir;
    return std::string(kFallbackBinDir);
  }());
  return *bin_dir;
}

std::string PgPkgLibDir() {
  static const std::string* const pkglib_dir = new std::string([] {
    // Prefer the pg_config that belongs to the binaries we run.
    std::string own_pg_config = PgBinDir() + "/pg_config";
    std::string dir = CommandOutput(
        {IsExistingFile(own_pg_config) ? own_pg_config : std::string("pg_config"), "--pkglibdir"});
    return dir.empty() ? std::string(kFallbackPkgLibDir) : dir;
  }());
  return *pkglib_dir;
}

std::string TimescaleMissingReason() {
  std::string so_path = PgPkgLibDir() + "/timescaledb.so";
  if (IsExistingFile(so_path)) return "";
  return so_path + " missing";
}

PgCluster::PgCluster(std::string dir, bool preload_timescaledb, PgClusterOptions options)
    : dir_(std::move(dir)),
      preload_timescaledb_(preload_timescaledb),
      options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start(const PgClusterOptions& options) {
  std::string dir_template =
      absl::StrCat("/tmp/backfill-test-", SanitizeName(options.name), "-XXXXXX");
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", dir_template, " failed"));
  }
  bool preload = options.preload_timescaledb && TimescaleMissingReason().empty();
  // From here on the destructor stops whatever was started and removes the dir.
  std::unique_ptr<PgCluster> cluster(new PgCluster(dir_template, preload, options));

  if (RunningAsRoot()) {
    absl::Status status = ChownToPostgres(cluster->dir_);
    if (!status.ok()) return status;
  }
  absl::Status status = cluster->RunPgTool("initdb",
                                           {"-D", cluster->data_dir(), "-A", "trust", "-U",
                                            "postgres", "--no-sync", "-E", "UTF8", "--locale=C"},
                                           180);
  if (!status.ok()) return status;
  if (!options.trusted_network.empty()) {
    std::ofstream hba(cluster->data_dir() + "/pg_hba.conf", std::ios::app);
    hba << "host all postgres " << options.trusted_network << " trust\n";
    if (!hba) return absl::InternalError("could not extend pg_hba.conf");
  }

  for (int attempt = 1;; ++attempt) {
    cluster->port_ = FreeLoopbackPort();
    if (cluster->port_ <= 0) return absl::UnavailableError("no free loopback port");
    size_t log_size_before = ReadFile(cluster->log_path()).size();
    status = cluster->StartServer();
    if (status.ok()) break;
    std::string new_log = ReadFile(cluster->log_path());
    new_log = new_log.size() > log_size_before ? new_log.substr(log_size_before) : "";
    bool port_clash = absl::StrContains(new_log, "could not bind") ||
                      absl::StrContains(new_log, "Address already in use");
    if (!port_clash || attempt >= kMaxStartAttempts) return status;
  }
  status = cluster->ProbeTimescale();
  if (!status.ok()) return status;
  return cluster;
}

PgCluster::~PgCluster() {
  if (maybe_running_) {
    (void)RunPgTool("pg_ctl", {"stop", "-D", data_dir(), "-m", "immediate", "-w", "-t", "60"}, 90);
    // Belt and braces: if a postmaster is still registered, shoot it.
    std::string pid_file = ReadFile(data_dir() + "/postmaster.pid");
    int pid = 0;
    if (!pid_file.empty() &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(pid_file.substr(0, pid_file.find('\n'))),
                         &pid) &&
        pid > 0 && kill(pid, 0) == 0) {
      kill(pid, SIGQUIT);
      for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      kill(pid, SIGKILL);
    }
  }
  const char* keep = std::getenv("BACKFILL_KEEP_CLUSTERS");
  if (keep != nullptr && std::string(keep) == "1") {
    std::fprintf(stderr, "[harness] BACKFILL_KEEP_CLUSTERS=1: keeping %s\n", dir_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string PgCluster::Dsn(const std::string& dbname) const {
  return absl::StrCat("host=", options_.listen_address, " port=", port_,
                      " user=postgres dbname=", ConninfoValue(dbname));
}

std::string PgCluster::LocalDsn(const std::string& dbname) const {
  if (options_.netns.empty()) return Dsn(dbname);
  return absl::StrCat("host=", dir_, " port=", port_,
                      " user=postgres dbname=", ConninfoValue(dbname));
}

std::string PgCluster::Uri(const std::string& dbname) const {
  return absl::StrCat("postgresql://postgres@", options_.listen_address, ":", port_, "/",
                      PercentEncode(dbname));
}

absl::Status PgCluster::RunPgTool(const std::string& tool, const std::vector<std::string>& args,
                                  int timeout_seconds) {
  std::vector<std::string> argv;
  if (!options_.netns.empty()) argv = {"ip", "netns", "exec", options_.netns};
  if (RunningAsRoot()) argv.insert(argv.end(), {"runuser", "-u", "postgres", "--"});
  argv.push_back(PgBinDir() + "/" + tool);
  argv.insert(argv.end(), args.begin(), args.end());
  // Run from the cluster dir: the caller's cwd may not be readable by user postgres.
  ProcessResult result = RunProcess(argv, {{"LC_ALL", "C"}}, timeout_seconds, dir_);
  if (result.exit_code == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("`", absl::StrJoin(argv, " "), "` exited with ",
                                          result.exit_code, "\n--- stdout:\n", result.out,
                                          "\n--- stderr:\n", result.err));
}

std::string PgCluster::ServerOptions() const {
  std::vector<std::string> settings = {
      absl::StrCat("listen_addresses=", options_.listen_address),
      absl::StrCat("port=", port_),
      absl::StrCat("unix_socket_directories=", dir_),
      "fsync=off",
      "synchronous_commit=off",
      "full_page_writes=off",
      "max_connections=100",
      "shared_buffers=128MB",
      "log_min_messages=warning",
  };
  if (preload_timescaledb_) {
    settings.push_back("shared_preload_libraries=timescaledb");
    settings.push_back("timescaledb.telemetry_level=off");
  }
  // pg_ctl hands this string to /bin/sh; dir_ is sanitized, but quote each setting anyway.
  return absl::StrJoin(settings, " ", [](std::string* out, const std::string& setting) {
    absl::StrAppend(out, "-c '", setting, "'");
  });
}

absl::Status PgCluster::StartServer() {
  maybe_running_ = true;
  absl::Status status = RunPgTool(
      "pg_ctl",
      {"start", "-w", "-t", "60", "-D", data_dir(), "-l", log_path(), "-o", ServerOptions()}, 120);
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(status.message(), "\n--- server.log tail:\n", LogTail()));
}

absl::Status PgCluster::ProbeTimescale() {
  has_timescaledb_ = false;
  if (!preload_timescaledb_) return absl::OkStatus();
  absl::StatusOr<std::string> count = QueryValue(
      "postgres", "select count(*) from pg_available_extensions where name='timescaledb'");
  if (!count.ok()) return count.status();
  has_timescaledb_ = (*count != "0");
  return absl::OkStatus();
}

std::string PgCluster::LogTail() const {
  std::vector<std::string> lines = absl::StrSplit(ReadFile(log_path()), '\n');
  constexpr size_t kTailLines = 40;
  size_t first = lines.size() > kTailLines ? lines.size() - kTailLines : 0;
  return absl::StrJoin(lines.begin() + static_cast<std::ptrdiff_t>(first), lines.end(), "\n");
}

absl::Status PgCluster::CreateDatabase(const std::string& name,
                                       const std::string& timescaledb_version) {
  absl::Status status = CreateDatabaseWithoutTimescale(name);
  if (!status.ok() || !has_timescaledb_) return status;
  std::string version = timescaledb_version;
  if (version.empty()) {
    const char* env_version = std::getenv("BACKFILL_TEST_TIMESCALEDB_VERSION");
    if (env_version != nullptr) version = env_version;
  }
  std::string sql = "CREATE EXTENSION timescaledb";
  if (!version.empty()) absl::StrAppend(&sql, " VERSION ", QuoteLiteral(version));
  return Exec(name, sql);
}

absl::Status PgCluster::CreateDatabaseWithoutTimescale(const std::string& name) {
  return Exec("postgres", absl::StrCat("CREATE DATABASE ", QuoteIdentifier(name)));
}

absl::StatusOr<QueryRows> PgCluster::Query(const std::string& dbname, const std::string& sql) {
  absl::StatusOr<PgConnPtr> conn = Connect(LocalDsn(dbname));
  if (!conn.ok()) return conn.status();
  absl::StatusOr<PgResultPtr> result = Execute(conn->get(), sql);
  if (!result.ok()) return result.status();
  PGresult* res = result->get();
  QueryRows rows;
  int num_rows = PQntuples(res);
  int num_cols = PQnfields(res);
  rows.reserve(static_cast<size_t>(num_rows));
  for (int r = 0; r < num_rows; ++r) {
    std::vector<std::optional<std::string>>& row = rows.emplace_back();
    row.reserve(static_cast<size_t>(num_cols));
    for (int c = 0; c < num_cols; ++c) {
      if (PQgetisnull(res, r, c)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(res, r, c), PQgetlength(res, r, c)));
      }
    }
  }
  return rows;
}

absl::Status PgCluster::Exec(const std::string& dbname, const std::string& sql) {
  absl::StatusOr<PgConnPtr> conn = Connect(LocalDsn(dbname));
  if (!conn.ok()) return conn.status();
  return Execute(conn->get(), sql).status();
}

absl::StatusOr<std::string> PgCluster::QueryValue(const std::string& dbname,
                                                  const std::string& sql) {
  absl::StatusOr<QueryRows> rows = Query(dbname, sql);
  if (!rows.ok()) return rows.status();
  if (rows->empty() || rows->front().empty()) {
    return absl::NotFoundError(absl::StrCat("query returned no rows: ", Truncate(sql, 300)));
  }
  return rows->front().front().value_or("");
}

absl::Status PgCluster::Restart() {
  maybe_running_ = true;
  absl::Status status = RunPgTool("pg_ctl",
                                  {"restart", "-w", "-t", "60", "-m", "fast", "-D", data_dir(),
                                   "-l", log_path(), "-o", ServerOptions()},
                                  120);
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(status.message(), "\n--- server.log tail:\n", LogTail()));
}

absl::Status PgCluster::Stop() {
  absl::Status status =
      RunPgTool("pg_ctl", {"stop", "-w", "-t", "60", "-m", "fast", "-D", data_dir()}, 90);
  if (status.ok()) maybe_running_ = false;
  return status;
}

namespace internal {

void ReportTimescaleSkip(const PgCluster& cluster) {
  std::string suite = "<unknown suite>";
  const ::testing::UnitTest* unit_test = ::testing::UnitTest::GetInstance();
  if (const ::testing::TestSuite* test_suite = unit_test->current_test_suite()) {
    suite = test_suite->name();
  } else if (const ::testing::TestInfo* info = unit_test->current_test_info()) {
    suite = info->test_suite_name();
  }
  static std::mutex* const mu = new std::mutex;
  static std::set<std::string>* const reported = new std::set<std::string>;
  {
    std::lock_guard<std::mutex> lock(*mu);
    if (!reported->insert(suite).second) return;
  }
  std::string reason = TimescaleMissingReason();
  if (reason.empty()) {
    reason = cluster.preloaded_timescaledb()
                 ? "timescaledb.so is installed but the extension is not available in the cluster"
                 : "cluster was started without preload_timescaledb";
  }
  std::fprintf(stderr,
               "*** SKIPPING %s: TimescaleDB is not installed for this PostgreSQL (%s); these "
               "integration tests prove nothing here ***\n",
               suite.c_str(), reason.c_str());
  std::fflush(stderr);
}

}  // namespace internal
}  // namespace backfill::testing
