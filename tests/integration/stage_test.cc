// stage, complete: every time type, space partitioning, filters and the cascade over the
// continuous-aggregate hierarchy, quoted names, repeated staging, and the error messages.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

class StageTest : public BackfillTest {
 protected:
  void Clean() { ASSERT_EQ(Ctl({"clean", "--target", TargetDsn()}).exit_code, 0); }
  // "tasks/cut" in __backfill.task.
  std::string TaskCounts() {
    return TargetValue("SELECT count(*) || '/' || count(until_internal) FROM __backfill.task");
  }
};

// --- every time type ---------------------------------------------------------------------

struct TimeCase {
  std::string type;
  std::string interval;  // chunk_time_interval
  std::string data;      // SELECT of the time values to insert
  std::string inside, boundary, before, after;
  std::string inside_tasks, boundary_tasks, after_tasks;  // "tasks/cut"
  bool integer_now = false;
};

class StageTimeTypeTest : public StageTest, public ::testing::WithParamInterface<TimeCase> {};

TEST_P(StageTimeTypeTest, UntilInsideOnABoundaryBeforeAndAfterAllData) {
  const TimeCase& c = GetParam();
  const std::string ddl = absl::StrCat(
      "CREATE TABLE public.t (ts ", c.type, " NOT NULL, v int);",
      "SELECT create_hypertable('public.t', 'ts', chunk_time_interval => ", c.interval, ");",
      c.integer_now ? "CREATE FUNCTION public.now_t() RETURNS bigint LANGUAGE sql STABLE AS "
                      "$$ SELECT coalesce(max(ts), 0) FROM public.t $$;"
                      "SELECT set_integer_now_func('public.t', 'public.now_t');"
                    : "");
  ExecSource(ddl);
  ExecTarget(ddl);
  ExecSource(
      absl::StrCat("INSERT INTO public.t SELECT x, row_number() OVER () FROM (", c.data, ") d(x)"));
  struct Position {
    std::string until, tasks;
  };
  for (const Position& p :
       {Position{c.inside, c.inside_tasks}, Position{c.boundary, c.boundary_tasks},
        Position{c.before, "0/0"}, Position{c.after, c.after_tasks}}) {
    SCOPED_TRACE(absl::StrCat(c.type, " --until ", p.until));
    ProcessResult staged = Stage(p.until);
    ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
    EXPECT_EQ(TaskCounts(), p.tasks);
    ProcessResult copied = Copy();
    ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
    const std::string below =
        absl::StrCat("SELECT * FROM public.t WHERE ts < '", p.until, "'::", c.type);
    EXPECT_EQ(TargetDigest(below), SourceDigest(below));
    EXPECT_EQ(TargetValue(absl::StrCat("SELECT count(*) FROM public.t WHERE ts >= '", p.until,
                                       "'::", c.type)),
              "0");
    Clean();
    ExecTarget("TRUNCATE public.t");
  }
}

// stage --from: a window [from, until) copies exactly the rows inside it; a --from inside a
// chunk cuts that chunk, one on a chunk boundary stages exactly the chunks from there on.
TEST_P(StageTimeTypeTest, AFromUntilWindowCopiesExactlyTheRowsInside) {
  const TimeCase& c = GetParam();
  const std::string ddl = absl::StrCat(
      "CREATE TABLE public.t (ts ", c.type, " NOT NULL, v int);",
      "SELECT create_hypertable('public.t', 'ts', chunk_time_interval => ", c.interval, ");");
  ExecSource(ddl);
  ExecTarget(ddl);
  ExecSource(
      absl::StrCat("INSERT INTO public.t SELECT x, row_number() OVER () FROM (", c.data, ") d(x)"));
  struct Window {
    std::string from;
    std::string cut_from;  // tasks that --from cuts
  };
  for (const Window& w : {Window{c.inside, "1"}, Window{c.boundary, "0"}}) {
    SCOPED_TRACE(absl::StrCat(c.type, " --from ", w.from, " --until ", c.after));
    ProcessResult staged = Stage(c.after, {"--from", w.from});
    ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
    EXPECT_EQ(TargetValue("SELECT count(from_internal) FROM __backfill.task"), w.cut_from);
    // Every chunk holds rows: the chunks with a row in the window are those staged.
    const std::string chunks_from = SourceValue(absl::StrCat(
        "SELECT count(DISTINCT tableoid) FROM public.t WHERE ts >= '", w.from, "'::", c.type));
    EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task"), chunks_from);
    ProcessResult copied = Copy();
    ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
    const std::string inside =
        absl::StrCat("SELECT * FROM public.t WHERE ts >= '", w.from, "'::", c.type);
    EXPECT_EQ(TargetDigest(inside), SourceDigest(inside));
    EXPECT_NE(SourceDigest(inside).substr(0, 2), "0|");
    EXPECT_EQ(TargetValue(absl::StrCat("SELECT count(*) FROM public.t WHERE ts < '", w.from,
                                       "'::", c.type)),
              "0");
    ProcessResult verified = Ctl({"verify", "--source", SourceDsn(), "--target", TargetDsn()});
    EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
    Clean();
    ExecTarget("TRUNCATE public.t");
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, StageTimeTypeTest,
    ::testing::Values(
        TimeCase{"timestamptz", "interval '1 day'",
                 "SELECT generate_series(timestamptz '2024-01-01 00:00+00', "
                 "'2024-01-04 18:00+00', interval '6 hours')",
                 "2024-01-02T12:00:00", "2024-01-03", "2023-12-01", "2025-01-01", "2/1", "2/0",
                 "4/0"},
        TimeCase{"timestamp", "interval '1 day'",
                 "SELECT generate_series(timestamp '2024-01-01 00:00', '2024-01-04 18:00', "
                 "interval '6 hours')",
                 "2024-01-02T12:00:00", "2024-01-03", "2023-12-01", "2025-01-01", "2/1", "2/0",
                 "4/0"},
        // 2-day chunks aligned on the epoch: [2023-12-31, 2024-01-02), [2024-01-02, ...)
        TimeCase{"date", "interval '2 days'",
                 "SELECT generate_series(date '2024-01-01', date '2024-01-08', interval '1 day')"
                 "::date",
                 "2024-01-03", "2024-01-04", "2023-06-01", "2025-01-01", "2/1", "2/0", "5/0"},
        TimeCase{"smallint", "10", "SELECT generate_series(0, 39)::smallint", "25", "20", "-5",
                 "1000", "3/1", "2/0", "4/0"},
        TimeCase{"integer", "10", "SELECT generate_series(0, 39)", "25", "20", "-5", "1000", "3/1",
                 "2/0", "4/0"},
        TimeCase{"bigint", "10", "SELECT generate_series(0, 39)::bigint", "25", "20", "-5", "1000",
                 "3/1", "2/0", "4/0"},
        TimeCase{"bigint", "10", "SELECT generate_series(0, 39)::bigint", "25", "20", "-5", "1000",
                 "3/1", "2/0", "4/0", /*integer_now=*/true}),
    [](const ::testing::TestParamInfo<TimeCase>& info) {
      return absl::StrCat(info.param.type, info.param.integer_now ? "_with_integer_now" : "");
    });

// The original tool's window test: the source has May and June, the target May (its own
// rows); staging June leaves May in the target untouched. 5-day chunks: 2023-06-01 falls
// inside [2023-05-28, 2023-06-02), which --from cuts.
TEST_F(StageTest, AWindowLeavesTheTargetsRowsOutsideItUntouched) {
  const std::string ddl =
      "CREATE TABLE public.w (time timestamptz NOT NULL, v int);"
      "SELECT create_hypertable('public.w', 'time', chunk_time_interval => interval '5 days');";
  ExecSource(ddl);
  ExecTarget(ddl);
  ExecSource(
      "INSERT INTO public.w SELECT t, 1 FROM generate_series(timestamptz '2023-05-01 00:00+00', "
      "'2023-07-01 00:00+00', interval '1 hour') t");
  ExecTarget(
      "INSERT INTO public.w SELECT t, -1 FROM generate_series(timestamptz '2023-05-01 00:00+00', "
      "'2023-05-31 23:00+00', interval '1 hour') t");
  const std::string may = "SELECT * FROM public.w WHERE time < '2023-06-01 00:00+00'";
  const std::string june =
      "SELECT * FROM public.w WHERE time >= '2023-06-01 00:00+00' AND time < "
      "'2023-06-30 23:30:01+00'";
  const std::string may_before = TargetDigest(may);
  ProcessResult staged = Stage("2023-06-30T23:30:01Z", {"--from", "2023-06-01"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  EXPECT_TRUE(absl::StrContains(staged.out,
                                "staged 7 chunks of public.w (1 cut at --from, 1 cut at --until)\n"
                                "  rows from 2023-06-01 00:00:00+00 (UTC)\n"
                                "  rows before 2023-06-30 23:30:01+00 (UTC)\n"))
      << staged.out;
  ProcessResult copied = Copy();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_EQ(TargetDigest(june), SourceDigest(june));
  EXPECT_EQ(SourceDigest(june).substr(0, 4), "720|");
  EXPECT_EQ(TargetDigest(may), may_before);
  EXPECT_EQ(TargetValue("SELECT count(*) FROM public.w WHERE time >= '2023-06-30 23:30:01+00'"),
            "0");
  ProcessResult verified = Ctl({"verify", "--source", SourceDsn(), "--target", TargetDsn()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;

  // Narrowing the window is refused; widening it over the target's own May rows is guarded.
  ProcessResult narrower = Stage("2023-06-30T23:30:01Z", {"--from", "2023-06-10"});
  EXPECT_EQ(narrower.exit_code, 1) << narrower.out << narrower.err;
  EXPECT_TRUE(absl::StrContains(narrower.err,
                                "is already staged from its start; --from "
                                "'2023-06-10 00:00:00+00' would narrow it"))
      << narrower.err;
  ProcessResult wider = Stage("2023-06-30T23:30:01Z", {"--from", "2023-05-20"});
  EXPECT_EQ(wider.exit_code, 1) << wider.out << wider.err;
  EXPECT_TRUE(absl::StrContains(wider.err,
                                "rows that copy would replace, from 2023-05-28 "
                                "00:00:00+00 to 2023-05-31 23:00:00+00"))
      << wider.err;
  EXPECT_EQ(TargetDigest(may), may_before);
  ProcessResult bad = Stage("2023-06-01", {"--from", "2023-06-01"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_EQ(bad.err,
            "error: cannot stage public.w: --from '2023-06-01 00:00:00+00' is not before --until "
            "'2023-06-01 00:00:00+00'\n");
}

// --- nothing to stage --------------------------------------------------------------------

TEST_F(StageTest, NothingToStageExitsZeroWithOneLineAndCopyAndCleanStillBehave) {
  ProcessResult empty = Stage("2024-01-02");
  EXPECT_EQ(empty.exit_code, 0) << empty.out << empty.err;
  EXPECT_EQ(empty.out,
            "Nothing to stage: the source has no hypertables. The target's __backfill schema is "
            "ready.\n");
  EXPECT_EQ(TargetValue("SELECT to_regclass('__backfill.task') IS NOT NULL"), "t");
  ProcessResult copied = Copy();
  EXPECT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_TRUE(absl::StrContains(copied.out, "Nothing to copy: no chunk is staged.\n"))
      << copied.out;
  Clean();

  // A hypertable whose rows all lie after --until, and one missing in the target without a
  // chunk to stage: neither is an error.
  CreateMetrics(2);
  ExecSource(
      "CREATE TABLE public.only_source (time timestamptz NOT NULL, v int);"
      "SELECT create_hypertable('public.only_source', 'time');");
  ProcessResult early = Stage("2023-12-01");
  EXPECT_EQ(early.exit_code, 0) << early.out << early.err;
  EXPECT_EQ(early.out,
            "Nothing to stage: no chunk of the selected hypertables has rows before --until. The "
            "target's __backfill schema is ready.\n");
  ProcessResult filtered = Stage("2024-01-02", {"--filter", "only_source"});
  EXPECT_EQ(filtered.exit_code, 0) << filtered.out << filtered.err;
  EXPECT_TRUE(absl::StartsWith(filtered.out, "Nothing to stage: ")) << filtered.out;

  // With something staged and copied, copy says there is nothing left instead of "Copied".
  ASSERT_EQ(Stage("2024-01-02").exit_code, 0);
  ASSERT_EQ(Copy().exit_code, 0);
  ProcessResult again = Copy();
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_TRUE(
      absl::StrContains(again.out, "Nothing to copy: all 1 staged chunks are copied already.\n"))
      << again.out;
  EXPECT_FALSE(absl::StrContains(again.out, "Copied ")) << again.out;
}

// Log lines (glog: "W1202 01:02:03.456789 ...") of the embedded coordinator and workers.
bool HasLogLines(const std::string& text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.size() > 5 && (line[0] == 'I' || line[0] == 'W' || line[0] == 'E') &&
        absl::ascii_isdigit(static_cast<unsigned char>(line[1])) &&
        absl::ascii_isdigit(static_cast<unsigned char>(line[4]))) {
      return true;
    }
  }
  return false;
}

TEST_F(StageTest, WarningLogLinesAppearOnlyWithVerbose) {
  CreateMetrics(2);
  ASSERT_EQ(Stage("2024-01-03").exit_code, 0);
  // A target chunk dropped after staging: its copy fails, and the embedded worker warns.
  ExecTarget(
      "SELECT drop_chunks('public.metrics', older_than => timestamptz '2024-01-02 00:00+00')");
  ProcessResult quiet = Copy();
  EXPECT_EQ(quiet.exit_code, 4) << quiet.out << quiet.err;
  EXPECT_TRUE(absl::StrContains(quiet.err, "1 chunks failed:\n")) << quiet.err;
  EXPECT_FALSE(HasLogLines(quiet.err)) << quiet.err;
  ProcessResult verbose =
      Ctl({"copy", "-v", "--source", SourceDsn(), "--target", TargetDsn(), "-p", "1"});
  EXPECT_EQ(verbose.exit_code, 4) << verbose.out << verbose.err;
  EXPECT_TRUE(HasLogLines(verbose.err)) << verbose.err;
}

// Tiny chunks commit before their worker's first heartbeat reaches the target: that is not a
// lost lease, and no worker may say so.
TEST_F(StageTest, NoWorkerWarnsItLostTheLeaseOfAChunkItJustCommitted) {
  const std::string ddl =
      "CREATE TABLE public.tiny (time timestamptz NOT NULL, v int);"
      "SELECT create_hypertable('public.tiny', 'time', chunk_time_interval => interval '1 "
      "hour');";
  ExecSource(ddl);
  ExecTarget(ddl);
  ExecSource(
      "INSERT INTO public.tiny SELECT timestamptz '2024-01-01 00:00+00' + i * interval '1 hour', "
      "i FROM generate_series(0, 299) i");
  ASSERT_EQ(Stage("2025-01-01").exit_code, 0);
  ProcessResult copied =
      Ctl({"copy", "-v", "--source", SourceDsn(), "--target", TargetDsn(), "-p", "4"});
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_TRUE(absl::StrContains(copied.out, "Copied 300 of 300 chunks")) << copied.out;
  EXPECT_FALSE(absl::StrContains(copied.err, "was lost")) << copied.err;
  EXPECT_FALSE(absl::StrContains(copied.err, "re-granted")) << copied.err;
}

TEST_F(StageTest, UntilThatDoesNotFitTheTypeNamesHypertableColumnAndType) {
  const std::string ddl =
      "CREATE TABLE public.small (ts smallint NOT NULL, v int);"
      "SELECT create_hypertable('public.small', 'ts', chunk_time_interval => 10);";
  ExecSource(ddl);
  ExecTarget(ddl);
  ProcessResult r = Stage("40000");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: cannot stage public.small: --until '40000' is not a valid smallint for column "
            "\"ts\"\n");
  r = Stage("2024-01-01");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: cannot stage public.small: --until '2024-01-01' is not a valid smallint for "
            "column \"ts\"\n");
}

TEST_F(StageTest, MixedTimeTypesReportEveryHypertableThatCannotTakeTheValue) {
  CreateMetrics(2);
  const std::string ddl =
      "CREATE TABLE public.counter (n bigint NOT NULL, v int);"
      "SELECT create_hypertable('public.counter', 'n', chunk_time_interval => 10);"
      "CREATE TABLE public.days (d date NOT NULL, v int);"
      "SELECT create_hypertable('public.days', 'd');";
  ExecSource(ddl);
  ExecTarget(ddl);
  ProcessResult r = Stage("2024-01-02");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: cannot stage public.counter: --until '2024-01-02' is not a valid bigint for "
            "column \"n\"\n");
  // The spec's answer: one stage per time type, with --filter.
  EXPECT_EQ(Stage("2024-01-02", {"--filter", "^public\\.(metrics|days)$"}).exit_code, 0);
  EXPECT_EQ(Stage("91827364", {"--filter", "^public\\.counter$"}).exit_code, 0);
}

// --- space partitioning --------------------------------------------------------------------

TEST_F(StageTest, SpacePartitionedHypertablesGetOneTaskPerHypercube) {
  const std::string ddl =
      "CREATE TABLE public.sp (time timestamptz NOT NULL, device int NOT NULL, v float8);"
      "SELECT create_hypertable('public.sp', 'time', 'device', 3, "
      "chunk_time_interval => interval '1 day');";
  ExecSource(ddl);
  ExecTarget(ddl);
  ExecSource(
      "INSERT INTO public.sp SELECT t, d, d * 1.5 FROM generate_series(timestamptz "
      "'2024-01-01 00:00+00', '2024-01-03 23:00+00', interval '1 hour') t, "
      "generate_series(1, 12) d");
  const std::string source_chunks = SourceValue("SELECT count(*) FROM show_chunks('public.sp')");
  ASSERT_EQ(source_chunks, "9");  // 3 days x 3 hash partitions
  ProcessResult r = Stage("2024-01-03T12:00:00");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(TaskCounts(), "9/3");
  // Each task's target chunk has exactly the source chunk's slices, in every dimension.
  EXPECT_EQ(TargetValue(R"(
      SELECT count(*) FROM __backfill.task t
      WHERE t.dimensions IS DISTINCT FROM (
        SELECT jsonb_object_agg(d.column_name, jsonb_build_array(s.range_start, s.range_end))
        FROM _timescaledb_catalog.chunk c
        JOIN _timescaledb_catalog.chunk_constraint cc ON cc.chunk_id = c.id
        JOIN _timescaledb_catalog.dimension_slice s ON s.id = cc.dimension_slice_id
        JOIN _timescaledb_catalog.dimension d ON d.id = s.dimension_id
        WHERE c.schema_name = t.target_chunk_schema AND c.table_name = t.target_chunk_name))"),
            "0");
  EXPECT_EQ(TargetValue("SELECT count(DISTINCT jsonb_array_length(dimensions -> 'device')) "
                        "FROM __backfill.task"),
            "1");
  ASSERT_EQ(Copy().exit_code, 0);
  const std::string below = "SELECT * FROM public.sp WHERE time < '2024-01-03 12:00+00'";
  EXPECT_EQ(TargetDigest(below), SourceDigest(below));
}

// --- names that need quoting ------------------------------------------------------------------

TEST_F(StageTest, NamesThatNeedQuotingWorkInFiltersStageAndCopy) {
  const std::string ddl = R"(
    CREATE SCHEMA "My Schema";
    CREATE TABLE "My Schema"."Weird ""Table""" ("Time Stamp" timestamptz NOT NULL,
                                                "Value; DROP" int, "select" text);
    SELECT create_hypertable('"My Schema"."Weird ""Table"""', 'Time Stamp',
                             chunk_time_interval => interval '1 day');)";
  ExecSource(ddl);
  ExecTarget(ddl);
  ExecSource(
      R"(INSERT INTO "My Schema"."Weird ""Table""" SELECT t, 1, 'it''s' FROM generate_series(
         timestamptz '2024-01-01 00:00+00', '2024-01-03 23:00+00', interval '1 hour') t)");
  ProcessResult r = Stage("2024-01-02T12:00:00", {"--filter", "^\"My Schema\"\\.\"Weird "});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.out, "staged 2 chunks of \"My Schema\".\"Weird \"\"Table\"\"\" (1 cut at --until)"))
      << r.out;
  ASSERT_EQ(Copy().exit_code, 0);
  const std::string q =
      R"(SELECT * FROM "My Schema"."Weird ""Table""" WHERE "Time Stamp" < '2024-01-02 12:00+00')";
  EXPECT_EQ(TargetDigest(q), SourceDigest(q));
  EXPECT_EQ(TargetValue(R"(SELECT count(*) FROM "My Schema"."Weird ""Table""")"), "36");
}

// --- repeated staging -----------------------------------------------------------------------

TEST_F(StageTest, RunsWithDifferentFiltersAndUntilValuesAccumulate) {
  CreateMetrics(4);
  const std::string ddl =
      "CREATE TABLE public.counter (n bigint NOT NULL, v int);"
      "SELECT create_hypertable('public.counter', 'n', chunk_time_interval => 100);";
  ExecSource(ddl);
  ExecTarget(ddl);
  ExecSource("INSERT INTO public.counter SELECT g, g FROM generate_series(1, 999) g");
  ASSERT_EQ(Stage("2024-01-02T06:00:00", {"--filter", "^public\\.metrics$"}).exit_code, 0);
  ASSERT_EQ(Stage("450", {"--filter", "^public\\.counter$"}).exit_code, 0);
  // (ORDER BY the name: inside an aggregate, "ORDER BY 1" orders by the constant 1.)
  EXPECT_EQ(TargetValue("SELECT string_agg(hypertable_name || ':' || n, ',' "
                        "ORDER BY hypertable_name) FROM "
                        "(SELECT hypertable_name, count(*) n FROM __backfill.task GROUP BY 1) q"),
            "counter:5,metrics:2");
  ASSERT_EQ(Copy().exit_code, 0);
  for (const std::string& q :
       {std::string("SELECT * FROM public.metrics WHERE time < '2024-01-02 06:00+00'"),
        std::string("SELECT * FROM public.counter WHERE n < 450")}) {
    EXPECT_EQ(TargetDigest(q), SourceDigest(q)) << q;
  }
  EXPECT_EQ(TargetValue("SELECT count(*) FROM public.counter"), "449");
}

TEST_F(StageTest, StagingAgainWithALaterUntilWidensTheCutChunkAndCopiesTheRest) {
  CreateMetrics(4);
  ExecTarget("INSERT INTO public.metrics VALUES ('2024-01-02 20:00+00', 100, 1, 'dual')");
  ASSERT_EQ(Stage("2024-01-02T06:00:00").exit_code, 0);
  ASSERT_EQ(Copy().exit_code, 0);
  ProcessResult widened = Stage("2024-01-02T18:00:00");
  ASSERT_EQ(widened.exit_code, 0) << widened.out << widened.err;
  EXPECT_TRUE(absl::StrContains(widened.out,
                                "staged 0 chunks of public.metrics (1 cut at --until); 1 widened "
                                "to the new range (re-opened: copy copies them again); 1 were "
                                "already staged\n"))
      << widened.out;
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NULL"), "1");
  ASSERT_EQ(Copy().exit_code, 0);
  const std::string below = "SELECT * FROM public.metrics WHERE time < '2024-01-02 18:00+00'";
  EXPECT_EQ(TargetDigest(below), SourceDigest(below));
  EXPECT_EQ(TargetValue("SELECT count(*) FROM public.metrics WHERE time >= '2024-01-02 18:00+00'"),
            "1");

  // Widening to the chunk's end would replace the dual write at 20:00: refused until the user
  // consents. Then the chunk is whole, and the later chunks are added.
  ProcessResult guarded = Stage("2024-01-04");
  EXPECT_EQ(guarded.exit_code, 1) << guarded.out << guarded.err;
  EXPECT_TRUE(absl::StrContains(guarded.err,
                                "already holds 1 rows that copy would replace, from 2024-01-02 "
                                "20:00:00+00 to 2024-01-02 20:00:00+00"))
      << guarded.err;
  ProcessResult whole = Stage("2024-01-04", {"--replace-target-rows"});
  ASSERT_EQ(whole.exit_code, 0) << whole.out << whole.err;
  EXPECT_TRUE(absl::StrContains(whole.out, "staged 1 chunks of public.metrics; 1 widened"))
      << whole.out;
  EXPECT_EQ(TaskCounts(), "3/0");
  ASSERT_EQ(Copy().exit_code, 0);
  const std::string all = "SELECT * FROM public.metrics WHERE time < '2024-01-04 00:00+00'";
  EXPECT_EQ(TargetDigest(all), SourceDigest(all));
}

TEST_F(StageTest, AStagedRangeIsNeverNarrowed) {
  CreateMetrics(4);
  ASSERT_EQ(Stage("2024-01-02T06:00:00").exit_code, 0);
  const std::string before =
      TargetValue("SELECT string_agg(until_literal, ',') FROM __backfill.task");
  ProcessResult r = Stage("2024-01-02T03:00:00");
  EXPECT_EQ(r.exit_code, 1);
  const std::string chunk = SourceValue(
      "SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = 'metrics' "
      "AND range_start = '2024-01-02 00:00+00'");
  EXPECT_EQ(r.err,
            absl::StrCat("error: cannot stage public.metrics: chunk _timescaledb_internal.", chunk,
                         " is already staged up to '2024-01-02 06:00:00+00'; --until "
                         "'2024-01-02 03:00:00+00' would narrow it (run clean to start "
                         "over with a narrower range)\n"));
  EXPECT_EQ(TargetValue("SELECT string_agg(until_literal, ',') FROM __backfill.task"), before);

  // A window that leaves a staged chunk out altogether narrows as much, on either side.
  const std::string day3 = SourceValue(
      "SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = 'metrics' "
      "AND range_start = '2024-01-03 00:00+00'");
  ASSERT_EQ(Stage("2024-01-03T12:00:00").exit_code, 0);
  ProcessResult earlier = Stage("2024-01-02T12:00:00");
  EXPECT_EQ(earlier.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(
      earlier.err, absl::StrCat("chunk _timescaledb_internal.", day3,
                                " is already staged; --until '2024-01-02 12:00:00+00' would "
                                "leave it out (run clean to start over with a narrower range)")))
      << earlier.err;
  const std::string day1 = SourceValue(
      "SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = 'metrics' "
      "AND range_start = '2024-01-01 00:00+00'");
  ProcessResult later = Stage("2024-01-03T12:00:00", {"--from", "2024-01-02"});
  EXPECT_EQ(later.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(
      later.err, absl::StrCat("chunk _timescaledb_internal.", day1,
                              " is already staged; --from '2024-01-02 00:00:00+00' would "
                              "leave it out")))
      << later.err;
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task"), "3");
}

// --- errors -------------------------------------------------------------------------------

TEST_F(StageTest, IncompatibleColumnsAreAllReportedAtOnce) {
  CreateMetrics(1);
  ExecTarget(
      "ALTER TABLE public.metrics ALTER COLUMN value TYPE numeric;"
      "ALTER TABLE public.metrics DROP COLUMN note");
  ProcessResult r = Stage("2024-01-02");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: cannot stage: 2 problems\n"
            "  public.metrics: column \"value\" is double precision in the source but numeric in "
            "the target\n"
            "  public.metrics: column \"note\" (text) is missing in the target\n");
}

TEST_F(StageTest, DifferentTimescaleVersionsAreRefusedNamingBoth) {
  const std::string db = db_ + "_versions";
  ASSERT_TRUE(source_->CreateDatabase(db, "2.22.1").ok());
  ASSERT_TRUE(target_->CreateDatabase(db, "2.28.3").ok());
  ProcessResult r = Ctl({"stage", "--source", source_->Dsn(db), "--target", target_->Uri(db),
                         "--until", "2024-01-01"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: the source runs TimescaleDB 2.22.1 and the target runs 2.28.3\n"
            "hint: update the older one (ALTER EXTENSION timescaledb UPDATE) so both run the same "
            "version, then run this command again\n");
}

}  // namespace
}  // namespace backfill::testing
