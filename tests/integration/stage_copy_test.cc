// stage, copy, verify and clean end to end, in embedded mode, on real TimescaleDB.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

constexpr char kUntil[] = "2024-01-04T12:00:00";
constexpr char kBelowUntil[] = "SELECT * FROM public.metrics WHERE time < '2024-01-04 12:00+00'";
constexpr char kAtOrAfterUntil[] =
    "SELECT * FROM public.metrics WHERE time >= '2024-01-04 12:00+00'";
// Rows the application dual-wrote into the target at or after --until, one of them in a
// chunk that is not staged at all.
constexpr char kDualWrites[] =
    "INSERT INTO public.metrics VALUES "
    "('2024-01-04 12:00+00', 100, 1.5, 'dual a'), ('2024-01-04 18:30+00', 101, 2.5, 'dual b'), "
    "('2024-01-05 01:00+00', 102, 3.5, 'dual c')";
// The spec's progress query, verbatim.
constexpr char kSpecProgressQuery[] = R"(select
    hypertable_schema,
    hypertable_name,
    count(*) as total_chunks,
    count(worked) as finished_chunks,
    count(worked is null) pending_chunks
from __backfill.task
group by
    1,
    2)";

class StageCopyTest : public BackfillTest {
 protected:
  std::vector<std::string> Stage() {
    return {"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", kUntil};
  }
  std::vector<std::string> Copy(int parallelism = 2) {
    return {"copy",
            "--source",
            SourceDsn(),
            "--target",
            TargetDsn(),
            "--parallelism",
            absl::StrCat(parallelism)};
  }
  std::vector<std::string> Verify() {
    return {"verify", "--source", SourceDsn(), "--target", TargetDsn()};
  }
  // xmin and ctid of every target row at or after --until: unchanged means untouched.
  std::string DualWriteRowVersions() {
    return TargetValue(
        "SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY time) FROM public.metrics "
        "WHERE time >= '2024-01-04 12:00+00'");
  }
};

TEST_F(StageCopyTest, StageWritesOneTaskPerChunkAndCreatesTargetChunksWithTheSameSlices) {
  CreateMetrics(5);
  ProcessResult r = Ctl(Stage());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "staged 4 chunks of public.metrics (1 cut at --until)"))
      << r.out;
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task"), "4");
  // Only the chunk that straddles --until is cut, at exactly --until.
  EXPECT_EQ(TargetValue("SELECT string_agg(until_literal, ',') FROM __backfill.task"),
            "2024-01-04 12:00:00+00");
  const std::string ranges =
      "SELECT string_agg(range_start::text || '/' || range_end::text, ',' ORDER BY range_start) "
      "FROM timescaledb_information.chunks WHERE hypertable_name = 'metrics' "
      "AND range_start < '2024-01-04 12:00+00'";
  EXPECT_EQ(TargetValue(ranges), SourceValue(ranges));
  EXPECT_EQ(TargetValue("SELECT count(*) FROM timescaledb_information.chunks "
                        "WHERE hypertable_name = 'metrics'"),
            "4");
  // Every task points at the target chunk created for it.
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task t WHERE to_regclass(format('%I.%I', "
                        "t.target_chunk_schema, t.target_chunk_name)) IS NULL"),
            "0");
}

TEST_F(StageCopyTest, SpecProgressQueryWorksUnchanged) {
  CreateMetrics(5);
  ASSERT_EQ(Ctl(Stage()).exit_code, 0);
  EXPECT_EQ(TargetValue(absl::StrCat("SELECT string_agg(concat_ws('|', hypertable_schema, "
                                     "hypertable_name, total_chunks, finished_chunks, "
                                     "pending_chunks), ',') FROM (",
                                     kSpecProgressQuery, ") q")),
            "public|metrics|4|0|4");
  ASSERT_EQ(Ctl(Copy()).exit_code, 0);
  // count(worked is null) counts every row (the spec's query says so); finished is what moves.
  EXPECT_EQ(TargetValue(absl::StrCat("SELECT string_agg(concat_ws('|', hypertable_schema, "
                                     "hypertable_name, total_chunks, finished_chunks, "
                                     "pending_chunks), ',') FROM (",
                                     kSpecProgressQuery, ") q")),
            "public|metrics|4|4|4");
}

TEST_F(StageCopyTest, CopyMovesEveryRowBelowUntilExactlyOnceAndLeavesDualWritesAlone) {
  CreateMetrics(5);
  ExecTarget(kDualWrites);
  // A row the application also wrote below --until, identical to the source's: it must end
  // up there once, not twice.
  const std::string same_row = SourceValue(
      "SELECT format('(%L, %s, %s, %L)', time, device, value, note) FROM public.metrics "
      "WHERE time = '2024-01-04 11:59+00'");
  ExecTarget(absl::StrCat("INSERT INTO public.metrics VALUES ", same_row));
  const std::string dual_writes_before = TargetDigest(kAtOrAfterUntil);
  const std::string versions_before = DualWriteRowVersions();
  ASSERT_EQ(dual_writes_before.substr(0, 2), "3|");

  // The guard names the row below --until that this tool did not copy; the user consents.
  ProcessResult guarded = Ctl(Stage());
  EXPECT_EQ(guarded.exit_code, 1) << guarded.out << guarded.err;
  EXPECT_TRUE(absl::StrContains(guarded.err, "already holds 1 rows that copy would replace"))
      << guarded.err;
  std::vector<std::string> consent = Stage();
  consent.push_back("--replace-target-rows");
  ProcessResult staged = Ctl(consent);
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = Ctl(Copy());
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_TRUE(absl::StrContains(copied.out, "Copied 4 of 4 chunks (5040 rows,")) << copied.out;

  EXPECT_EQ(SourceDigest(kBelowUntil).substr(0, 5), "5040|");
  EXPECT_EQ(TargetDigest(kBelowUntil), SourceDigest(kBelowUntil));
  EXPECT_EQ(TargetDigest(kAtOrAfterUntil), dual_writes_before);
  EXPECT_EQ(DualWriteRowVersions(), versions_before);
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NULL"), "0");
  EXPECT_EQ(TargetValue("SELECT sum(rows_copied) FROM __backfill.task"), "5040");
}

TEST_F(StageCopyTest, CopyReplacesStaleTargetRowsInTheStagedRange) {
  CreateMetrics(5);
  ExecTarget("INSERT INTO public.metrics VALUES ('2024-01-02 00:00:30+00', 7, 0, 'stale')");
  EXPECT_EQ(Ctl(Stage()).exit_code, 1);  // the guard, until the user consents
  std::vector<std::string> consent = Stage();
  consent.push_back("--replace-target-rows");
  ASSERT_EQ(Ctl(consent).exit_code, 0);
  ASSERT_EQ(Ctl(Copy()).exit_code, 0);
  EXPECT_EQ(TargetDigest(kBelowUntil), SourceDigest(kBelowUntil));
  EXPECT_EQ(TargetValue("SELECT count(*) FROM public.metrics WHERE note = 'stale'"), "0");
}

TEST_F(StageCopyTest, RerunningCopyOrCleanStageCopyNeverDuplicates) {
  CreateMetrics(5);
  ExecTarget(kDualWrites);
  const std::string dual_writes = TargetDigest(kAtOrAfterUntil);
  ASSERT_EQ(Ctl(Stage()).exit_code, 0);
  ASSERT_EQ(Ctl(Copy()).exit_code, 0);

  ProcessResult again = Ctl(Copy());
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_TRUE(absl::StrContains(again.out, "Copying 0 pending chunks of 4 staged")) << again.out;
  EXPECT_EQ(TargetDigest(kBelowUntil), SourceDigest(kBelowUntil));

  ASSERT_EQ(Ctl({"clean", "--target", TargetDsn()}).exit_code, 0);
  // After clean the tool no longer knows it copied these rows: staging them again needs
  // consent.
  EXPECT_EQ(Ctl(Stage()).exit_code, 1);
  std::vector<std::string> consent = Stage();
  consent.push_back("--replace-target-rows");
  ProcessResult restaged = Ctl(consent);
  ASSERT_EQ(restaged.exit_code, 0) << restaged.out << restaged.err;
  EXPECT_TRUE(absl::StrContains(restaged.out, "(0 target chunks created)")) << restaged.out;
  ASSERT_EQ(Ctl(Copy(3)).exit_code, 0);
  EXPECT_EQ(TargetDigest(kBelowUntil), SourceDigest(kBelowUntil));
  EXPECT_EQ(TargetDigest(kAtOrAfterUntil), dual_writes);
}

TEST_F(StageCopyTest, StagingTwiceSkipsChunksAlreadyStaged) {
  CreateMetrics(5);
  ASSERT_EQ(Ctl(Stage()).exit_code, 0);
  ProcessResult again = Ctl(Stage());
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_TRUE(
      absl::StrContains(again.out, "staged 0 chunks of public.metrics; 4 were already staged"))
      << again.out;
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task"), "4");
}

TEST_F(StageCopyTest, VerifyPassesOnACorrectCopyAndCatchesAMissingRow) {
  CreateMetrics(5);
  ASSERT_EQ(Ctl(Stage()).exit_code, 0);
  ASSERT_EQ(Ctl(Copy()).exit_code, 0);
  ProcessResult ok = Ctl(Verify());
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_TRUE(absl::StrContains(ok.out, "Verified 4 chunks: 0 differ.")) << ok.out;

  const std::string chunk = SourceValue(
      "SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = 'metrics' "
      "AND range_start = '2024-01-02 00:00+00'");
  ExecTarget("DELETE FROM public.metrics WHERE time = '2024-01-02 10:00+00'");
  ProcessResult bad = Ctl(Verify());
  EXPECT_EQ(bad.exit_code, 3) << bad.out << bad.err;
  EXPECT_TRUE(absl::StrContains(
      bad.out, absl::StrCat("MISMATCH public.metrics chunk _timescaledb_internal.", chunk)))
      << bad.out;
  EXPECT_TRUE(absl::StrContains(bad.out, "  rows: source 1440, target 1439\n")) << bad.out;
  EXPECT_TRUE(absl::StrContains(bad.out, "Verified 4 chunks: 1 differ.")) << bad.out;
}

TEST_F(StageCopyTest, CleanDropsTheSchemaAndIsSafeToRepeat) {
  CreateMetrics(2);
  ASSERT_EQ(Ctl(Stage()).exit_code, 0);
  ProcessResult cleaned = Ctl({"clean", "--target", TargetDsn()});
  EXPECT_EQ(cleaned.exit_code, 0) << cleaned.err;
  EXPECT_TRUE(absl::StrContains(cleaned.out, "Removed the __backfill administrative schema"));
  EXPECT_EQ(TargetValue("SELECT count(*) FROM pg_namespace WHERE nspname = '__backfill'"), "0");
  ProcessResult again = Ctl({"clean", "--target", TargetDsn()});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(absl::StrContains(again.out, "Nothing to clean")) << again.out;
}

TEST_F(StageCopyTest, ChunkDroppedOnTheSourceAfterStagingIsReportedAndSkipped) {
  CreateMetrics(5);
  ASSERT_EQ(Ctl(Stage()).exit_code, 0);
  ExecSource(
      "SELECT drop_chunks('public.metrics', older_than => timestamptz '2024-01-02 00:00+00')");
  ProcessResult copied = Ctl(Copy());
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_TRUE(absl::StrContains(copied.out, "it no longer exists on the source")) << copied.out;
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NULL"), "0");
  EXPECT_EQ(TargetDigest(kBelowUntil), SourceDigest(kBelowUntil));
}

TEST_F(StageCopyTest, ConnectionStringsComeFromThePgEnvironmentToo) {
  CreateMetrics(2);
  // Only the database name in the strings; host, port and user from PG* variables.
  std::map<std::string, std::string> env = {
      {"PGHOST", "127.0.0.1"}, {"PGPORT", absl::StrCat(source_->port())}, {"PGUSER", "postgres"}};
  const std::string source = absl::StrCat("dbname=", db_);
  ProcessResult r =
      Ctl({"stage", "--source", source, "--target", TargetDsn(), "--until", "2024-01-02"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Ctl({"copy", "--source", source, "--target", TargetDsn()}, env);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(TargetValue("SELECT count(*) FROM public.metrics"), "1440");
}

}  // namespace
}  // namespace backfill::testing
