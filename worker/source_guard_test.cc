#include "worker/source_guard.h"

#include <gtest/gtest.h>

namespace backfill {
namespace {

TEST(SourceGuardTest, ScriptsAreTheReadOnlyTransactionControlAndNothingElse) {
  for (const char* ok : {"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "ROLLBACK", "COMMIT",
                         "  begin   read only; ", "COMMIT;"}) {
    EXPECT_TRUE(CheckSourceScript(ok).ok()) << ok;
  }
  for (const char* refused : {"BEGIN", "BEGIN READ WRITE", "BEGIN ISOLATION LEVEL REPEATABLE READ",
                              "SET default_transaction_read_only = off", "COMMIT; DROP TABLE t",
                              "ROLLBACK; SET TRANSACTION READ WRITE", "DROP TABLE t", "",
                              "SET TRANSACTION READ WRITE", "SELECT 1"}) {
    absl::Status status = CheckSourceScript(refused);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << refused;
  }
  EXPECT_NE(CheckSourceScript("DROP TABLE t").message().find("\"DROP TABLE t\""),
            absl::string_view::npos);
}

TEST(SourceGuardTest, StatementsAreQueries) {
  for (const char* ok : {"SELECT 1", "  with x AS (SELECT 1) SELECT * FROM x",
                         "-- a comment\nSELECT 1", "/* outer /* nested */ still */ SELECT 1",
                         "SHOW server_version_num", "VALUES (1)", "TABLE t"}) {
    EXPECT_TRUE(CheckSourceQuery(ok).ok()) << ok;
  }
  for (const char* refused :
       {"INSERT INTO t VALUES (1)", "SET TRANSACTION READ WRITE", "RESET ALL", "COPY t TO '/tmp/t'",
        "DELETE FROM t", "CALL p()", "DO $$ BEGIN END $$", "/* SELECT */ DROP TABLE t", "SELECT1",
        "select$x", "", "-- SELECT 1", "/* never closed SELECT 1", "BEGIN READ WRITE",
        // A carriage return ends a -- comment in PostgreSQL, as a newline does.
        "--\rSET TRANSACTION READ WRITE /*\nSELECT */",
        "--\rCOPY t TO PROGRAM 'true' /*\nSELECT */"}) {
    EXPECT_EQ(CheckSourceQuery(refused).code(), absl::StatusCode::kInvalidArgument) << refused;
  }
}

TEST(SourceGuardTest, CopiesGoToStdoutRebuiltFromTheirParts) {
  absl::StatusOr<SourceCopy> table =
      CheckSourceCopy(R"(COPY "_timescaledb_internal"."_hyper_1_1_chunk" ("time", "a""b", v) )"
                      R"(TO STDOUT (FORMAT binary))");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->statement,
            R"(COPY "_timescaledb_internal"."_hyper_1_1_chunk" ("time", "a""b", v) )"
            R"(TO STDOUT (FORMAT binary))");
  EXPECT_TRUE(table->query.empty());

  absl::StatusOr<SourceCopy> query = CheckSourceCopy(
      "COPY (SELECT \"time\" FROM s.t WHERE \"time\" < '2024-01-01') TO STDOUT (FORMAT text)");
  ASSERT_TRUE(query.ok()) << query.status();
  EXPECT_EQ(query->query, "SELECT \"time\" FROM s.t WHERE \"time\" < '2024-01-01'");
  EXPECT_EQ(query->statement,
            "COPY (SELECT \"time\" FROM s.t WHERE \"time\" < '2024-01-01'\n) TO STDOUT "
            "(FORMAT text)");

  for (const char* refused : {
           "COPY t (a) TO '/tmp/t'",
           "COPY t (a) TO PROGRAM 'rm -rf /'",
           "COPY t (a) FROM STDIN (FORMAT binary)",
           "COPY t TO STDOUT (FORMAT binary)",  // no column list: not what a copy sends
           "COPY t (a) TO '/tmp/x' (FORMAT text); COPY t (a) TO STDOUT (FORMAT binary)",
           "COPY t (a); DROP TABLE t; COPY t (a) TO STDOUT (FORMAT binary)",
           "COPY (DELETE FROM t RETURNING *) TO STDOUT (FORMAT binary)",
           "COPY (INSERT INTO t VALUES (1) RETURNING *) TO STDOUT (FORMAT binary)",
           "COPY \"\" (a) TO STDOUT (FORMAT binary)",
           "COPY \"t (a) TO STDOUT (FORMAT binary)",
           "SELECT 1 TO STDOUT (FORMAT binary)",
           "COPY t (a) TO STDOUT (FORMAT csv)",
           "COPY TO STDOUT (FORMAT text)",
           "COPY (--\rDELETE FROM t RETURNING a /*\nSELECT 1 */) TO STDOUT (FORMAT text)",
       }) {
    EXPECT_EQ(CheckSourceCopy(refused).status().code(), absl::StatusCode::kInvalidArgument)
        << refused;
  }
  // It looks like one COPY (query), but the query alone is not one statement: the caller's
  // Parse refuses it (SourceSideServer), and the rebuilt statement keeps the tail inside.
  absl::StatusOr<SourceCopy> sneaky =
      CheckSourceCopy("COPY (SELECT 1) TO '/tmp/x' (FORMAT text) -- ) TO STDOUT (FORMAT binary)");
  ASSERT_TRUE(sneaky.ok());
  EXPECT_EQ(sneaky->query, "SELECT 1) TO '/tmp/x' (FORMAT text) -- ");
}

}  // namespace
}  // namespace backfill
