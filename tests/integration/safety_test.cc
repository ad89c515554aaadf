// The paths real migrations take: a target prepared from the source by the README's recipe
// (schema and TimescaleDB catalog restored between pre- and post-restore), dual writes the
// tool must never replace unasked, a mistyped --until, one side upgraded after staging, schema
// drift, and each chunk ending in its source chunk's compression state.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

constexpr char kUntil[] = "2024-01-04T12:00:00Z";
constexpr char kBelow[] = "SELECT * FROM public.cm WHERE time < '2024-01-04 12:00+00'";
constexpr char kAtOrAfter[] = "SELECT * FROM public.cm WHERE time >= '2024-01-04 12:00+00'";
// "DD:{STATUS,...}" per chunk of public.cm, by day.
const std::string kStates = ChunkStatesQuery("cm");

class PreparedTargetTest : public BackfillTest {
 protected:
  // public.cm with 1-day chunks from 2024-01-01 to 2024-01-05, one row per minute and device;
  // days 1 to 3 compressed (a bloom filter on label), day 3 then written to (partial), and a
  // continuous aggregate refreshed up to day 3.
  void CreateSource() {
    CreateCm();
    ExecSource(R"(
      CREATE INDEX ON public.cm (label);
      CREATE MATERIALIZED VIEW public.cm_hourly WITH (timescaledb.continuous) AS
        SELECT time_bucket('1 hour', time) AS bucket, device, count(*) AS n FROM public.cm
        GROUP BY 1, 2 WITH NO DATA;)");
    ExecSource(
        "CALL refresh_continuous_aggregate('public.cm_hourly', NULL, '2024-01-04 00:00+00')");
    Compress("2024-01-01");
    Compress("2024-01-02");
    Compress("2024-01-03");
    ExecSource("INSERT INTO public.cm VALUES ('2024-01-03 10:00:30+00', 'dev-9', 1, 'heap', 1)");
  }
  // public.cm in the source: 1-day chunks from 2024-01-01 to 2024-01-05, one row per minute
  // and device, compression enabled, nothing compressed yet.
  void CreateCm() {
    ExecSource(R"(
      CREATE TABLE public.cm (time timestamptz NOT NULL, device text NOT NULL, val float8,
                              label text, n int);
      SELECT create_hypertable('public.cm', 'time', chunk_time_interval => interval '1 day');
      ALTER TABLE public.cm SET (timescaledb.compress, timescaledb.compress_segmentby = 'device',
                                 timescaledb.compress_orderby = 'time DESC');
      INSERT INTO public.cm SELECT t, 'dev-' || d, i * 0.25, 'lbl-' || (i % 7), i
        FROM generate_series(timestamptz '2024-01-01 00:00+00', '2024-01-05 23:59+00',
                             interval '1 minute') WITH ORDINALITY AS g(t, i),
             generate_series(1, 3) d;)");
  }
  // compress_chunk (or `function`) on the source's chunk of public.cm holding `day`.
  void Compress(const std::string& day, const std::string& function = "compress_chunk") {
    ExecSource(absl::StrCat("SELECT ", function,
                            "(c) FROM show_chunks('public.cm', newer_than => timestamptz '", day,
                            " 00:00+00' - interval '1 second', older_than => timestamptz '", day,
                            " 00:00+00' + interval '1 day') c"));
  }
  void Decompress(const std::string& day) { Compress(day, "decompress_chunk"); }
  // The application's dual writes, only in the target: at and after --until.
  void DualWrites() {
    ExecTarget(
        "INSERT INTO public.cm VALUES ('2024-01-04 12:00+00', 'dual', 1, 'd', 1), "
        "('2024-01-04 20:00+00', 'dual', 2, 'd', 2), ('2024-01-05 08:00+00', 'dual', 3, 'd', 3)");
  }
  bool Staged() { return TargetValue("SELECT to_regclass('__backfill.task') IS NOT NULL") == "t"; }
  // The chunk of public.cm holding `day`, as the target names it.
  std::string TargetChunk(const std::string& day) {
    return TargetValue(absl::StrCat(
        "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'cm' AND range_start = '",
        day, " 00:00+00'"));
  }
};

TEST_F(PreparedTargetTest, TheReadmeRecipeGivesEveryChunkEmptyWithItsStatusAndCopyFillsThem) {
  CreateSource();
  PrepareTargetByReadmeRecipe();
  const std::string chunks =
      "SELECT string_agg(chunk_name || ':' || is_compressed, ',' ORDER BY chunk_name) "
      "FROM timescaledb_information.chunks";
  EXPECT_EQ(TargetValue(chunks), SourceValue(chunks));
  EXPECT_EQ(TargetValue(kStates), SourceValue(kStates));
  EXPECT_EQ(TargetValue(kStates),
            "01:{COMPRESSED},02:{COMPRESSED},03:{COMPRESSED,PARTIAL},04:{},05:{}");
  EXPECT_EQ(TargetValue("SELECT count(*) FROM public.cm"), "0");
  EXPECT_EQ(TargetValue("SELECT count(*) FROM timescaledb_information.continuous_aggregates"), "1");
  DualWrites();
  const std::string dual_before = TargetDigest(kAtOrAfter);
  ProcessResult staged = Stage(kUntil);
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = Copy();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_EQ(SourceDigest(kBelow).substr(0, 6), "15121|");
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  EXPECT_EQ(TargetDigest(kAtOrAfter), dual_before);
  EXPECT_EQ(TargetValue(kStates), SourceValue(kStates));
  ProcessResult verified = Ctl({"verify", "--source", SourceDsn(), "--target", TargetDsn()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  // The continuous aggregate goes by its view's name everywhere, never its materialization's.
  ProcessResult status = Ctl({"status", "--target", TargetDsn()});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_TRUE(absl::StrContains(status.out, "public.cm_hourly")) << status.out;
  for (const ProcessResult* r : {&staged, &copied, &verified, &status}) {
    EXPECT_FALSE(absl::StrContains(r->out + r->err, "_materialized_hypertable"))
        << r->out << r->err;
  }
}

// --- item 1: --until ----------------------------------------------------------------------

class UntilGuardTest : public PreparedTargetTest {};

TEST_F(UntilGuardTest, RelativeAndSpecialValuesAreRefusedWithExitCode2AndNothingWritten) {
  CreateSource();
  PrepareTargetByReadmeRecipe();
  for (const std::string value : {"now", "today", "yesterday", "tomorrow", "infinity", "-infinity",
                                  "epoch", "Today 10:00", "NOW()"}) {
    SCOPED_TRACE(value);
    ProcessResult r = Stage(value);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_TRUE(absl::StartsWith(
        r.err, absl::StrCat("error: --until '", value, "' is a relative or special value (")))
        << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, "hint: give the absolute time where dual writes began"))
        << r.err;
  }
  EXPECT_FALSE(Staged());
}

TEST_F(UntilGuardTest, StagePrintsTheResolvedCutoffInUtc) {
  CreateSource();
  PrepareTargetByReadmeRecipe();
  // An offset is resolved to UTC.
  ProcessResult r = Stage("2024-01-04T14:00:00+02:00", {"--filter", "^public\\.cm$"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out,
                                "staged 4 chunks of public.cm (1 cut at --until)\n"
                                "  rows before 2024-01-04 12:00:00+00 (UTC)\n"))
      << r.out;
}

TEST_F(UntilGuardTest, AMistypedUntilThatReachesIntoDualWritesIsRefusedNamingTheRows) {
  CreateSource();
  PrepareTargetByReadmeRecipe();
  DualWrites();
  const std::string dual_before = TargetDigest(kAtOrAfter);
  const std::string day4 = TargetChunk("2024-01-04");
  const std::string day5 = TargetChunk("2024-01-05");
  // A typo for 2024-01-04: the copy would replace three rows only the target has.
  ProcessResult r = Stage("2024-01-06", {"--filter", "^public\\.cm$"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.err, absl::StrCat("  public.cm: chunk ",
                          SourceValue(absl::StrCat("SELECT format('%I.%I', chunk_schema, "
                                                   "chunk_name) FROM timescaledb_information."
                                                   "chunks WHERE hypertable_name = 'cm' AND "
                                                   "range_start = '2024-01-04 00:00+00'")),
                          " (", day4,
                          " in the target) already holds 2 rows that copy would replace, from "
                          "2024-01-04 12:00:00+00 to 2024-01-04 20:00:00+00\n")))
      << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, absl::StrCat(" (", day5,
                                                    " in the target) already holds 1 rows that "
                                                    "copy would replace, from 2024-01-05 "
                                                    "08:00:00+00 to 2024-01-05 08:00:00+00\n")))
      << r.err;
  EXPECT_TRUE(absl::StrContains(r.err,
                                "stage again with --replace-target-rows\nhint: for "
                                "public.cm --until resolves to rows before 2024-01-06 "
                                "00:00:00+00 (UTC)\n"))
      << r.err;
  EXPECT_FALSE(Staged());

  // The right --until stages; the copy leaves the dual writes alone.
  ProcessResult right = Stage(kUntil, {"--filter", "^public\\.cm$"});
  ASSERT_EQ(right.exit_code, 0) << right.out << right.err;
  ASSERT_EQ(Copy().exit_code, 0);
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  EXPECT_EQ(TargetDigest(kAtOrAfter), dual_before);

  // Widening later checks only the newly covered range: the copied rows below --until are the
  // tool's own, the dual writes above it are not.
  const std::string tasks =
      "SELECT string_agg(coalesce(until_literal, '-'), ',' ORDER BY "
      "task_id) FROM __backfill.task";
  const std::string tasks_before = TargetValue(tasks);
  ProcessResult widen = Stage("2024-01-06", {"--filter", "^public\\.cm$"});
  EXPECT_EQ(widen.exit_code, 1) << widen.out << widen.err;
  EXPECT_TRUE(absl::StrContains(widen.err,
                                "already holds 2 rows that copy would replace, from "
                                "2024-01-04 12:00:00+00 to 2024-01-04 20:00:00+00"))
      << widen.err;
  EXPECT_EQ(TargetValue(tasks), tasks_before);

  // With consent the rows are replaced by the source's: the target then equals the source
  // below the new --until.
  ProcessResult consent =
      Stage("2024-01-06", {"--filter", "^public\\.cm$", "--replace-target-rows"});
  ASSERT_EQ(consent.exit_code, 0) << consent.out << consent.err;
  ASSERT_EQ(Copy().exit_code, 0);
  const std::string below_new = "SELECT * FROM public.cm WHERE time < '2024-01-06 00:00+00'";
  EXPECT_EQ(TargetDigest(below_new), SourceDigest(below_new));
}

TEST_F(UntilGuardTest, RestagingWhatThisToolCopiedIsNotRefused) {
  CreateSource();
  PrepareTargetByReadmeRecipe();
  ASSERT_EQ(Stage(kUntil).exit_code, 0);
  ASSERT_EQ(Copy().exit_code, 0);
  ProcessResult again = Stage(kUntil);
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_TRUE(absl::StrContains(again.out, "Staged 0 chunks to copy")) << again.out;
  // After clean the tool no longer knows what it copied: consent is needed.
  ASSERT_EQ(Ctl({"clean", "--target", TargetDsn()}).exit_code, 0);
  ProcessResult after_clean = Stage(kUntil);
  EXPECT_EQ(after_clean.exit_code, 1) << after_clean.out << after_clean.err;
  EXPECT_TRUE(absl::StrContains(after_clean.err, "--replace-target-rows")) << after_clean.err;
  ProcessResult consent = Stage(kUntil, {"--replace-target-rows"});
  EXPECT_EQ(consent.exit_code, 0) << consent.out << consent.err;
}

TEST_F(UntilGuardTest, RowsCopiedBeforeAWideningAreStillTheToolsOwn) {
  CreateMetrics(4);
  ASSERT_EQ(Stage("2024-01-02T06:00:00Z").exit_code, 0);
  ASSERT_EQ(Copy().exit_code, 0);
  // Widened twice before the next copy: the rows below 06:00 are still the tool's own.
  ProcessResult first = Stage("2024-01-02T12:00:00Z");
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  ProcessResult second = Stage("2024-01-02T18:00:00Z");
  EXPECT_EQ(second.exit_code, 0) << second.out << second.err;
  ASSERT_EQ(Copy().exit_code, 0);
  const std::string below = "SELECT * FROM public.metrics WHERE time < '2024-01-02 18:00+00'";
  EXPECT_EQ(TargetDigest(below), SourceDigest(below));
}

TEST_F(UntilGuardTest, CountingStopsAfterTenChunksWithRows) {
  CreateMetrics(12);
  ASSERT_EQ(Stage("2024-01-13").exit_code, 0);
  ASSERT_EQ(Copy().exit_code, 0);
  ASSERT_EQ(Ctl({"clean", "--target", TargetDsn()}).exit_code, 0);
  ProcessResult r = Stage("2024-01-13");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::vector<std::string> lines = absl::StrSplit(r.err, '\n');
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& line) {
                            return absl::StrContains(line, " rows that copy would replace");
                          }),
            10)
      << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.err, "  public.metrics: more chunks hold such rows (counting stopped at 10)\n"))
      << r.err;
}

TEST_F(UntilGuardTest, AMalformedConnectionStringIsABadArgument) {
  ProcessResult r = Ctl({"stage", "--source", "host=127.0.0.1 bogus_key=1", "--target", TargetDsn(),
                         "--until", kUntil});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(absl::StartsWith(r.err, "error: invalid source connection string: ")) << r.err;
  ProcessResult c = Ctl({"copy", "--source", SourceDsn(), "--target", "dbname=x port"});
  EXPECT_EQ(c.exit_code, 2) << c.out << c.err;
  EXPECT_TRUE(absl::StartsWith(c.err, "error: invalid target connection string: ")) << c.err;
}

// --- item 6: schema drift -----------------------------------------------------------------

TEST_F(UntilGuardTest, ColumnsOnlyTheTargetHasAreNamedAtStage) {
  CreateMetrics(2);
  ExecTarget(
      "ALTER TABLE public.metrics ADD COLUMN region text;"
      "ALTER TABLE public.metrics ADD COLUMN site int NOT NULL DEFAULT 7;"
      "ALTER TABLE public.metrics ADD COLUMN must int NOT NULL");
  ProcessResult refused = Stage("2024-01-02");
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_EQ(refused.err,
            "error: cannot stage public.metrics: column \"must\" (integer) is only in the target "
            "and is NOT NULL without a default: copied rows cannot fill it (give it a default in "
            "the target, or add it to the source)\n");
  EXPECT_FALSE(Staged());
  ExecTarget("ALTER TABLE public.metrics DROP COLUMN must");
  ProcessResult staged = Stage("2024-01-02");
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  EXPECT_TRUE(absl::StrContains(
      staged.out,
      "  note: column \"region\" (text) is only in the target: copied rows get its default, "
      "NULL\n  note: column \"site\" (integer) is only in the target: copied rows get its "
      "default\n"))
      << staged.out;
  ASSERT_EQ(Copy().exit_code, 0);
  EXPECT_EQ(TargetValue("SELECT count(*) || '/' || count(region) || '/' || sum(site) FROM "
                        "public.metrics"),
            "1440/0/10080");
}

// --- item 5: repair after verify ----------------------------------------------------------

TEST_F(PreparedTargetTest, CopyRepairRecopiesExactlyTheChunksVerifyFoundDifferent) {
  CreateSource();
  PrepareTargetByReadmeRecipe();
  ASSERT_EQ(Stage(kUntil, {"--filter", "^public\\.cm$"}).exit_code, 0);
  ProcessResult no_verify =
      Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn(), "--repair"});
  EXPECT_EQ(no_verify.exit_code, 1) << no_verify.out << no_verify.err;
  EXPECT_TRUE(absl::StartsWith(no_verify.err,
                               "error: nothing to repair: no copied chunk has been verified\n"))
      << no_verify.err;
  ASSERT_EQ(Copy().exit_code, 0);
  // Two target chunks damaged (a compressed one and the cut one), and one source chunk
  // changed since the copy.
  ExecTarget(
      "UPDATE public.cm SET val = -1 WHERE time = '2024-01-01 05:00+00' AND device = 'dev-1';"
      "DELETE FROM public.cm WHERE time >= '2024-01-04 03:00+00' AND time < '2024-01-04 "
      "03:05+00'");
  ExecSource("INSERT INTO public.cm VALUES ('2024-01-02 07:00:30+00', 'dev-8', 8, 'late', 8)");
  const std::string worked =
      "SELECT string_agg(chunk_name || '=' || worked::text, '|' ORDER BY task_id) FROM "
      "__backfill.task";
  const std::string worked_before = TargetValue(worked);
  ProcessResult differ = Ctl({"verify", "--source", SourceDsn(), "--target", TargetDsn()});
  ASSERT_EQ(differ.exit_code, 3) << differ.out << differ.err;

  ProcessResult repaired =
      Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn(), "--repair"});
  ASSERT_EQ(repaired.exit_code, 0) << repaired.out << repaired.err;
  std::vector<std::string> reopened;
  for (const std::string day : {"2024-01-01", "2024-01-02", "2024-01-04"}) {
    reopened.push_back(SourceValue(absl::StrCat(
        "SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = 'cm' "
        "AND range_start = '",
        day, " 00:00+00'")));
  }
  EXPECT_TRUE(absl::StrContains(repaired.out,
                                "Re-opened 3 chunks the last verify found "
                                "different\n"))
      << repaired.out;
  for (const std::string& chunk : reopened) {
    EXPECT_TRUE(absl::StrContains(repaired.out, absl::StrCat("  _timescaledb_internal.", chunk)))
        << chunk << "\n"
        << repaired.out;
  }
  ProcessResult verified = Ctl({"verify", "--source", SourceDsn(), "--target", TargetDsn()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  EXPECT_EQ(TargetValue(kStates), SourceValue(kStates));
  // Every other chunk was left as it was: its task's worked range is unchanged.
  const std::vector<std::string> before = absl::StrSplit(worked_before, '|');
  const std::vector<std::string> after = absl::StrSplit(TargetValue(worked), '|');
  ASSERT_EQ(before.size(), after.size());
  int changed = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    const std::string chunk = before[i].substr(0, before[i].find('='));
    const bool repaired_chunk =
        std::find(reopened.begin(), reopened.end(), chunk) != reopened.end();
    if (repaired_chunk) {
      EXPECT_NE(before[i], after[i]) << chunk;
      ++changed;
    } else {
      EXPECT_EQ(before[i], after[i]) << chunk;
    }
  }
  EXPECT_EQ(changed, 3);
}

// --- items 3 and 4: the target chunk ends in the source chunk's state ----------------------

class ChunkStateTest : public PreparedTargetTest {
 protected:
  // public.cm over five days and public.u, an empty hypertable compressed by ts, both in the
  // source before the target is prepared from it: days 2, 3 and 5 compressed, 1 and 4 not.
  void CreateSourceAtDumpTime() {
    CreateCm();
    ExecSource(R"(
      CREATE TABLE public.u (ts timestamptz NOT NULL, device text NOT NULL, v int);
      SELECT create_hypertable('public.u', 'ts', chunk_time_interval => interval '1 day');
      ALTER TABLE public.u SET (timescaledb.compress, timescaledb.compress_segmentby = 'device',
                                timescaledb.compress_orderby = 'ts');)");
    Compress("2024-01-02");
    Compress("2024-01-03");
    Compress("2024-01-05");
  }
  // After the dump, every transition: uncompressed -> compressed (day 1), compressed ->
  // uncompressed (day 2), compressed -> partial (day 3), uncompressed -> partial (day 4); and
  // public.u gets an unordered chunk from two direct-compress COPY streams, even minutes then
  // odd ones.
  void ChangeSourceAfterDump() {
    Compress("2024-01-01");
    Decompress("2024-01-02");
    Compress("2024-01-04");
    ExecSource(
        "INSERT INTO public.cm VALUES ('2024-01-03 10:00:30+00', 'dev-9', 1, 'heap', 1), "
        "('2024-01-04 11:00:30+00', 'dev-9', 2, 'heap', 2)");
    for (int parity : {0, 1}) {
      ExecSource(absl::StrCat(
          "SET timescaledb.enable_direct_compress_copy = on;"
          "COPY public.u FROM PROGRAM 'seq ",
          parity,
          " 2 999 | awk ''{printf \"2024-01-01 %02d:%02d:00+00,a,%d\\n\", $1 / 60, $1 % 60, "
          "$1}''' WITH (FORMAT csv)"));
    }
  }
  static constexpr char kUStates[] =
      "SELECT string_agg(_timescaledb_functions.chunk_status_text(format('%I.%I', chunk_schema, "
      "chunk_name)::regclass)::text, ',') FROM timescaledb_information.chunks WHERE "
      "hypertable_name = 'u'";
  static constexpr char kOrdered[] =
      "SELECT string_agg(v::text, ',') FROM (SELECT v FROM public.u WHERE device = 'a' "
      "ORDER BY ts LIMIT 8) x";
  static constexpr char kCompressedCount[] =
      "SELECT count(*) FILTER (WHERE is_compressed) || '/' || count(*) FROM "
      "timescaledb_information.chunks WHERE hypertable_name = 'cm'";
  void ExpectMirrored() {
    const std::string all = "SELECT * FROM public.cm";
    EXPECT_EQ(TargetDigest(all), SourceDigest(all));
    EXPECT_EQ(TargetDigest("SELECT * FROM public.u"), SourceDigest("SELECT * FROM public.u"));
    EXPECT_EQ(SourceValue(kStates),
              "01:{COMPRESSED},02:{},03:{COMPRESSED,PARTIAL},04:{COMPRESSED,PARTIAL},"
              "05:{COMPRESSED}");
    EXPECT_EQ(TargetValue(kStates), SourceValue(kStates));
    EXPECT_EQ(TargetValue(kCompressedCount), SourceValue(kCompressedCount));
    EXPECT_EQ(SourceValue(kOrdered), "0,1,2,3,4,5,6,7");
    EXPECT_EQ(TargetValue(kOrdered), SourceValue(kOrdered));
  }
  // Batches in public.u's compressed chunk.
  std::string UBatches(bool source) {
    const std::string q =
        "SELECT format('%I.%I', z.schema_name, z.table_name) FROM _timescaledb_catalog.chunk c "
        "JOIN _timescaledb_catalog.chunk z ON z.id = c.compressed_chunk_id "
        "JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id WHERE h.table_name = 'u'";
    const std::string table = source ? SourceValue(q) : TargetValue(q);
    const std::string count = absl::StrCat("SELECT count(*) FROM ONLY ", table);
    return source ? SourceValue(count) : TargetValue(count);
  }
};

TEST_F(ChunkStateTest, EveryTransitionSinceTheDumpEndsInTheSourceState) {
  CreateSourceAtDumpTime();
  PrepareTargetByReadmeRecipe();
  ASSERT_EQ(TargetValue(kStates), "01:{},02:{COMPRESSED},03:{COMPRESSED},04:{},05:{COMPRESSED}");
  ChangeSourceAfterDump();
  ASSERT_EQ(SourceValue(kUStates), "{COMPRESSED,UNORDERED}");
  ProcessResult staged = Stage("2024-01-06");
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = Copy();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  ExpectMirrored();
  // As a superuser the unordered chunk's batches went across as they are, with its bit.
  EXPECT_EQ(TargetValue(kUStates), "{COMPRESSED,UNORDERED}");
  EXPECT_EQ(UBatches(false), UBatches(true));
  ProcessResult verified = Ctl({"verify", "--source", SourceDsn(), "--target", TargetDsn()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

TEST_F(ChunkStateTest, ANonSuperuserGetsAnUnorderedChunkCompressedInOrder) {
  CreateSourceAtDumpTime();
  PrepareTargetByReadmeRecipe();
  ChangeSourceAfterDump();
  // Stage and copy connect as the tables' owner, without superuser rights (as on Timescale
  // Cloud).
  ExecTarget(
      "CREATE ROLE backfill_owner LOGIN;"
      "ALTER TABLE public.cm OWNER TO backfill_owner;"
      "ALTER TABLE public.u OWNER TO backfill_owner;"
      "GRANT CREATE ON DATABASE " +
      db_ + " TO backfill_owner");
  std::string target = TargetDsn();
  const size_t at = target.find("postgres@");
  ASSERT_NE(at, std::string::npos) << target;
  target.replace(at, 9, "backfill_owner@");
  ProcessResult staged =
      Ctl({"stage", "--source", SourceDsn(), "--target", target, "--until", "2024-01-06"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = Ctl({"copy", "--source", SourceDsn(), "--target", target, "-p", "2"});
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  ExpectMirrored();
  // Without the right to set the UNORDERED bit the target compressed the rows itself, in
  // order: ordered reads are right without the bit.
  EXPECT_EQ(TargetValue(kUStates), "{COMPRESSED}");
}

// --- item 2: versions ---------------------------------------------------------------------

class VersionSkewTest : public PreparedTargetTest {};

TEST_F(VersionSkewTest, CopyVerifyAndRefreshAreRefusedAfterOneSideIsUpgraded) {
  const std::string versions = SourceValue(
      "SELECT string_agg(version, ',' ORDER BY string_to_array(version, '.')::int[]) FROM "
      "pg_available_extension_versions WHERE name = 'timescaledb' AND version ~ '^[0-9.]+$' "
      "AND string_to_array(version, '.')::int[] >= '{2,22}'");
  std::vector<std::string> installed = absl::StrSplit(versions, ',');
  if (installed.size() < 2) {
    std::cerr << "*** SKIPPING VersionSkewTest: one TimescaleDB version installed (" << versions
              << "); an upgrade needs two ***" << std::endl;
    GTEST_SKIP();
  }
  const std::string older = installed.front();
  const std::string newer = installed.back();
  const std::string db = db_ + "_skew";
  ASSERT_TRUE(source_->CreateDatabase(db, older).ok());
  ASSERT_TRUE(target_->CreateDatabase(db, older).ok());
  const std::string source = source_->Dsn(db), target = target_->Uri(db);
  const std::string ddl = R"(
      CREATE TABLE public.cm (time timestamptz NOT NULL, device text NOT NULL, val float8);
      SELECT create_hypertable('public.cm', 'time', chunk_time_interval => interval '1 day');
      ALTER TABLE public.cm SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');
      CREATE MATERIALIZED VIEW public.cm_daily WITH (timescaledb.continuous) AS
        SELECT time_bucket('1 day', time) AS bucket, count(*) AS n FROM public.cm
        GROUP BY 1 WITH NO DATA;)";
  ASSERT_TRUE(source_->Exec(db, ddl).ok());
  ASSERT_TRUE(target_->Exec(db, ddl).ok());
  ASSERT_TRUE(
      source_
          ->Exec(db,
                 "INSERT INTO public.cm SELECT t, 'd' || (extract(minute FROM t)::int % 3), "
                 "1 FROM generate_series(timestamptz '2024-01-01 00:00+00', "
                 "'2024-01-02 23:59+00', interval '1 minute') t;"
                 "SELECT compress_chunk(c) FROM show_chunks('public.cm') c")
          .ok());
  ASSERT_TRUE(
      source_->Exec(db, "CALL refresh_continuous_aggregate('public.cm_daily', NULL, NULL)").ok());
  ProcessResult staged = Ctl({"stage", "--source", source, "--target", target, "--until",
                              "2024-01-03", "--filter", "^public\\.cm$"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;

  // The target is upgraded after staging.
  ASSERT_TRUE(
      target_->Exec(db, absl::StrCat("ALTER EXTENSION timescaledb UPDATE TO '", newer, "'")).ok());
  const std::string expected =
      absl::StrCat("error: the source runs TimescaleDB ", older, " and the target runs ", newer,
                   "\nhint: update the older one (ALTER EXTENSION timescaledb UPDATE) so both run "
                   "the same version, then run this command again\n");
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"copy", "--source", source, "--target", target},
        std::vector<std::string>{"verify", "--source", source, "--target", target},
        std::vector<std::string>{"refresh-caggs", "--source", source, "--target", target}}) {
    SCOPED_TRACE(command.front());
    ProcessResult r = Ctl(command);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_EQ(r.err, expected);
  }
  EXPECT_EQ(*target_->QueryValue(db, "SELECT count(*) FROM public.cm"), "0");
  EXPECT_EQ(*target_->QueryValue(db,
                                 "SELECT count(*) FROM __backfill.task WHERE worked IS NOT "
                                 "NULL OR lease_epoch > 0"),
            "0");
  EXPECT_EQ(*target_->QueryValue(db, "SELECT count(*) FROM public.cm_daily"), "0");

  // Once both run the newer version, the coordinator lets the copy go ahead.
  ASSERT_TRUE(
      source_->Exec(db, absl::StrCat("ALTER EXTENSION timescaledb UPDATE TO '", newer, "'")).ok());

  // A worker whose own sessions reach a database at another version (here its --target
  // override, as if that side were downgraded while the copy ran) checks before touching
  // anything: the task fails with the same message and nothing is written anywhere.
  const std::string other = db_ + "_skew_old";
  ASSERT_TRUE(target_->CreateDatabase(other, older).ok());
  ASSERT_TRUE(target_->Exec(other, ddl).ok());
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  BackgroundProcess coordinator({BinPath("backfill-coordinator"), "--listen", address},
                                absl::StrCat(source_->dir(), "/coordinator-", db, ".log"));
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(ReadFile(coordinator.log_path()), "listening on port");
  })) << ReadFile(coordinator.log_path());
  BackgroundProcess worker({BinPath("backfill-worker"), "--coordinator", address, "--name",
                            "skewed", "--target", target_->Uri(other)},
                           absl::StrCat(source_->dir(), "/worker-skewed-", db, ".log"));
  ProcessResult refused =
      Ctl({"copy", "--coordinator", address, "--source", source, "--target", target}, {},
          "backfillctl");
  EXPECT_EQ(refused.exit_code, 4) << refused.out << refused.err << ReadFile(worker.log_path());
  EXPECT_TRUE(absl::StrContains(refused.err, absl::StrCat("the source runs TimescaleDB ", newer,
                                                          " and the target runs ", older)))
      << refused.err;
  worker.Kill();
  EXPECT_EQ(*target_->QueryValue(db, "SELECT count(*) FROM public.cm"), "0");
  EXPECT_EQ(*target_->QueryValue(other, "SELECT count(*) FROM public.cm"), "0");
  EXPECT_EQ(*target_->QueryValue(db,
                                 "SELECT count(*) FROM __backfill.task WHERE worked IS NOT "
                                 "NULL"),
            "0");

  ProcessResult copied = Ctl({"copy", "--source", source, "--target", target});
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  const std::string digest =
      "SELECT count(*) || '|' || md5(string_agg(format('%s|%s|%s', time, device, val), ',' "
      "ORDER BY time, device)) FROM public.cm";
  EXPECT_EQ(*target_->QueryValue(db, digest), *source_->QueryValue(db, digest));
}

}  // namespace
}  // namespace backfill::testing
