// Shared fixture for the integration suites: a source and a target PostgreSQL cluster per
// suite, a fresh database pair per test, and helpers that run the real binaries.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/harness/pg_cluster.h"
#include "tests/harness/process.h"

namespace backfill::testing {

// Polls `done` every 50 ms for up to `seconds`; whether it became true.
template <typename Predicate>
bool WaitFor(Predicate done, int seconds = 60) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// A query for "DD:{STATUS,...}" per chunk of `hypertable` (in public), by day, from the chunk
// status bits; only chunks starting before `before` when it is given.
std::string ChunkStatesQuery(const std::string& hypertable, const std::string& before = "");

// Path of one of our binaries in the build tree.
std::string BinPath(const std::string& name);

// The objects a stage run reported, in its order: "public.raw_data", "public.daily_agg".
std::vector<std::string> StagedNames(const std::string& out);

class BackfillTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  // Creates a fresh database pair (with TimescaleDB) named after the test; skips the test
  // with one loud line when the server has no TimescaleDB.
  void SetUp() override;
  // Checks, after every test, that the counts the target keeps as tasks change
  // (__backfill.task_count) equal a count of the task table itself.
  void TearDown() override;

  // Runs timescaledb-backfill (or `program`) with `args`.
  ProcessResult Ctl(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env = {},
                    const std::string& program = "timescaledb-backfill");

  // timescaledb-backfill stage from the test's source to its target up to `until`, with
  // `extra` flags.
  ProcessResult Stage(const std::string& until, const std::vector<std::string>& extra = {});
  // copy with two local workers.
  ProcessResult Copy();

  // Connection strings: the source as key/value, the target as a URI, so every test exercises
  // both forms.
  std::string SourceDsn() const { return source_->Dsn(db_); }
  std::string TargetDsn() const { return target_->Uri(db_); }

  void ExecSource(const std::string& sql);
  void ExecTarget(const std::string& sql);
  std::string SourceValue(const std::string& sql);
  std::string TargetValue(const std::string& sql);

  // "count|md5" over the rows `query` returns, order-independent: equal digests mean equal
  // multisets of rows.
  std::string SourceDigest(const std::string& query);
  std::string TargetDigest(const std::string& query);

  // Prepares the target from the source as README.md's "Preparing the target" says, running
  // its recipe word for word (schema and TimescaleDB catalog by pg_dump, restored between
  // timescaledb_pre_restore() and timescaledb_post_restore()). The target database must be
  // empty but for the extension at the source's version.
  void PrepareTargetByReadmeRecipe();

  // public.metrics(time timestamptz, device int, value float8, note text), 1-day chunks, on
  // both sides; the source holds one row per minute from 2024-01-01 for `days` days.
  void CreateMetrics(int days);

  static PgCluster* source_;
  static PgCluster* target_;
  std::string db_;
};

// In `dir`: ca.pem/ca.key and other-ca.pem/other-ca.key, two CAs; server.pem/server.key, a
// certificate ca signed for 127.0.0.1 (a server, or a client); client.pem/client.key, one it
// signed for a client. Test assertions fail if openssl does.
void MakeCertificates(const std::string& dir);

}  // namespace backfill::testing
