// Throwaway PostgreSQL 15 clusters for integration tests.
//
// Each PgCluster lives in its own fresh temp dir (/tmp/backfill-test-<name>-XXXXXX) holding the
// data directory (data/), the server log (server.log) and the unix socket; the server listens on
// a free port on 127.0.0.1 with trust authentication for user "postgres", and is tuned for speed
// (no fsync). When the tests run as root, initdb and pg_ctl run as the OS user "postgres" (via
// runuser), since PostgreSQL refuses to run as root.
//
// The binaries come from `pg_config --bindir` when it holds an initdb, else from
// /usr/lib/postgresql/15/bin. TimescaleDB is preloaded when requested and
// <pkglibdir>/timescaledb.so exists.

#ifndef BACKFILL_TESTS_HARNESS_PG_CLUSTER_H_
#define BACKFILL_TESTS_HARNESS_PG_CLUSTER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace backfill::testing {

struct PgClusterOptions {
  // Preload TimescaleDB (shared_preload_libraries) if it is installed.
  bool preload_timescaledb = true;
  // Short label used in the temp dir name; characters other than [A-Za-z0-9_-] are replaced.
  std::string name = "pg";
  // Run the server inside this network namespace (`ip netns exec`), for multi-host tests; the
  // harness's own queries then go through the unix socket in dir().
  std::string netns;
  // The address the server listens on and Dsn()/Uri() name.
  std::string listen_address = "127.0.0.1";
  // A CIDR (e.g. "10.231.0.0/24") from which user postgres may connect without a password,
  // added to pg_hba.conf; loopback is always trusted.
  std::string trusted_network;
};

// Rows of a query result as text; nullopt for SQL NULL.
using QueryRows = std::vector<std::vector<std::optional<std::string>>>;

// A running PostgreSQL server in a temp dir. Not thread-safe for Restart()/Stop(); the query
// helpers open a fresh connection per call and may be used from several threads.
class PgCluster {
 public:
  // Creates the temp dir, runs initdb, starts the server (retrying on a port clash) and probes
  // for TimescaleDB. On failure, returns an error carrying the tool output / server log tail,
  // and leaves no server running.
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start(const PgClusterOptions& options = {});

  // Stops the server (pg_ctl stop -m immediate, errors ignored) and removes the temp dir, unless
  // the environment has BACKFILL_KEEP_CLUSTERS=1, in which case the dir (data + server.log) is
  // kept for inspection and its path printed to stderr. The server is stopped either way.
  ~PgCluster();

  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // libpq key/value connection string: "host=<listen address> port=N user=postgres dbname=<dbname>"
  // (dbname is quoted only if it needs to be).
  std::string Dsn(const std::string& dbname = "postgres") const;
  // "postgresql://postgres@<listen address>:N/<dbname>" (dbname percent-encoded where needed).
  std::string Uri(const std::string& dbname = "postgres") const;

  int port() const { return port_; }
  // True only if TimescaleDB was preloaded and shows up in pg_available_extensions.
  bool has_timescaledb() const { return has_timescaledb_; }
  // Whether shared_preload_libraries included timescaledb (requested and the .so exists).
  bool preloaded_timescaledb() const { return preload_timescaledb_; }
  // The temp dir holding data/, server.log and the unix socket.
  const std::string& dir() const { return dir_; }
  std::string data_dir() const { return dir_ + "/data"; }
  std::string log_path() const { return dir_ + "/server.log"; }

  // CREATE DATABASE <name>; then, when has_timescaledb(), CREATE EXTENSION timescaledb in it,
  // with VERSION '<timescaledb_version>' if given, else with the version from the environment
  // variable BACKFILL_TEST_TIMESCALEDB_VERSION if set and non-empty, else the default version.
  absl::Status CreateDatabase(const std::string& name, const std::string& timescaledb_version = "");
  // CREATE DATABASE <name> without any extension.
  absl::Status CreateDatabaseWithoutTimescale(const std::string& name);

  // Runs one statement (simple query protocol) in `dbname` and returns its rows as text (empty
  // for statements that return no rows). Error status with the server message on failure.
  absl::StatusOr<QueryRows> Query(const std::string& dbname, const std::string& sql);
  // Runs `sql`, which may contain several statements, in `dbname`; discards any rows.
  absl::Status Exec(const std::string& dbname, const std::string& sql);
  // First column of the first row ("" for NULL); error if the query fails or returns no rows.
  absl::StatusOr<std::string> QueryValue(const std::string& dbname, const std::string& sql);

  // pg_ctl restart -w with the same settings (same port). Existing connections are dropped.
  absl::Status Restart();
  // pg_ctl stop -m fast -w. The cluster can be brought back with Restart().
  absl::Status Stop();

 private:
  PgCluster(std::string dir, bool preload_timescaledb, PgClusterOptions options);

  // The connection string for the harness's own queries: Dsn(), or the unix socket when the
  // server lives in another network namespace.
  std::string LocalDsn(const std::string& dbname) const;

  // Runs a PostgreSQL tool (bin dir name, e.g. "pg_ctl") with `args`, as user postgres when we
  // are root. Error status with the output on a non-zero exit.
  absl::Status RunPgTool(const std::string& tool, const std::vector<std::string>& args,
                         int timeout_seconds);
  // The -o option string passed to pg_ctl start/restart.
  std::string ServerOptions() const;
  absl::Status StartServer();
  absl::Status ProbeTimescale();
  // Last lines of the server log, for error messages.
  std::string LogTail() const;

  std::string dir_;
  bool preload_timescaledb_;
  PgClusterOptions options_;
  int port_ = -1;
  bool has_timescaledb_ = false;
  bool maybe_running_ = false;  // pg_ctl start/restart has been attempted since the last stop.
};

// "" if <pkglibdir>/timescaledb.so exists, else a one-line reason
// (e.g. "/usr/lib/postgresql/15/lib/timescaledb.so missing").
std::string TimescaleMissingReason();

// Directory holding the PostgreSQL binaries (initdb, pg_ctl, postgres, psql, ...).
std::string PgBinDir();
// PostgreSQL's pkglibdir (where extension .so files live).
std::string PgPkgLibDir();

namespace internal {
// Prints the loud "*** SKIPPING <suite>: ..." line to stderr, saying why `cluster` lacks
// TimescaleDB (once per test suite per process).
void ReportTimescaleSkip(const PgCluster& cluster);
}  // namespace internal

}  // namespace backfill::testing

// Use at the top of a test body or a fixture's SetUp(): if `cluster_ptr` (a PgCluster*,
// unique_ptr or shared_ptr) has no TimescaleDB, prints one loud line to stderr (once per suite)
// and skips the test via GTEST_SKIP(). A null `cluster_ptr` is a test failure instead.
// Not for SetUpTestSuite(): GoogleTest 1.12 does not skip the suite's tests from there.
#define BACKFILL_REQUIRE_TIMESCALEDB(cluster_ptr)                         \
  do {                                                                    \
    if ((cluster_ptr) == nullptr) {                                       \
      GTEST_FAIL() << "BACKFILL_REQUIRE_TIMESCALEDB: cluster is null";    \
    }                                                                     \
    if (!(cluster_ptr)->has_timescaledb()) {                              \
      ::backfill::testing::internal::ReportTimescaleSkip(*(cluster_ptr)); \
      GTEST_SKIP() << "TimescaleDB is not available in this PostgreSQL";  \
    }                                                                     \
  } while (false)

#endif  // BACKFILL_TESTS_HARNESS_PG_CLUSTER_H_
