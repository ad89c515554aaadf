// copy at full fidelity: plain, compressed, partially compressed and cut chunks, with and
// without dual writes, re-runs, chunks compressed on either side after staging, dropped
// columns, text-only types and the invalidation log. Each test checks the exact rows and the
// compression state of each target chunk.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

constexpr char kUntil[] = "2024-01-04T12:00:00";
constexpr char kBelow[] = "SELECT * FROM public.cm WHERE time < '2024-01-04 12:00+00'";
constexpr char kAtOrAfter[] = "SELECT * FROM public.cm WHERE time >= '2024-01-04 12:00+00'";
// Per day below --until: "01:{}" etc., from the chunk status bits.
const std::string kStates = ChunkStatesQuery("cm", "2024-01-05 00:00+00");

class CompressedCopyTest : public BackfillTest {
 protected:
  // Source: day 1 plain, day 2 compressed, day 3 compressed then written to (partial), day 4
  // compressed and cut by --until, day 5 plain and not staged. A column was dropped before
  // compression and one added, so attribute numbers differ from the target's (which is
  // created as pg_dump would, without dropped columns). The index on label gives compressed
  // chunks a bloom filter column, a type without binary I/O.
  void CreateSource() {
    ExecSource(R"(
      CREATE TABLE public.cm (time timestamptz NOT NULL, device text NOT NULL, val float8,
                              junk int, label text, n int);
      SELECT create_hypertable('public.cm', 'time', chunk_time_interval => interval '1 day');
      ALTER TABLE public.cm DROP COLUMN junk;
      ALTER TABLE public.cm ADD COLUMN extra numeric(10, 2);
      CREATE INDEX ON public.cm (label);
      ALTER TABLE public.cm SET (timescaledb.compress, timescaledb.compress_segmentby = 'device',
                                 timescaledb.compress_orderby = 'time DESC');
      INSERT INTO public.cm SELECT t, 'dev-' || d, i * 0.25, 'lbl-' || (i % 7), i, i / 3.0
        FROM generate_series(timestamptz '2024-01-01 00:00+00', '2024-01-05 23:59+00',
                             interval '1 minute') WITH ORDINALITY AS g(t, i),
             generate_series(1, 3) d;)");
    CompressDay("2024-01-02");
    CompressDay("2024-01-03");
    CompressDay("2024-01-04");
    ExecSource(
        "INSERT INTO public.cm VALUES ('2024-01-03 10:00:30+00', 'dev-9', 1, 'heap', 1, 1), "
        "('2024-01-03 11:00:30+00', 'dev-9', 2, 'heap', 2, 2)");
    ASSERT_EQ(SourceValue(kStates),
              "01:{},02:{COMPRESSED},03:{COMPRESSED,PARTIAL},04:{COMPRESSED}");
    ASSERT_NE(SourceValue(absl::StrCat(
                  "SELECT count(*) FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid "
                  "WHERE ty.typname = 'bloom1' AND a.attrelid = '",
                  CompressedChunk(true, "2024-01-02"), "'::regclass")),
              "0");
  }
  void CreateTarget() {
    ExecTarget(R"(
      CREATE TABLE public.cm (time timestamptz NOT NULL, device text NOT NULL, val float8,
                              label text, n int, extra numeric(10, 2));
      SELECT create_hypertable('public.cm', 'time', chunk_time_interval => interval '1 day');
      CREATE INDEX ON public.cm (label);
      ALTER TABLE public.cm SET (timescaledb.compress, timescaledb.compress_segmentby = 'device',
                                 timescaledb.compress_orderby = 'time DESC');)");
  }
  void CompressDay(const std::string& day) {
    ExecSource(
        absl::StrCat("SELECT compress_chunk(c) FROM show_chunks('public.cm', "
                     "newer_than => timestamptz '",
                     day, " 00:00+00' - interval '1 second', older_than => timestamptz '", day,
                     " 00:00+00' + interval '1 day') c"));
  }
  std::string CompressedChunk(bool source, const std::string& day) {
    const std::string q = absl::StrCat(
        "SELECT format('%I.%I', cc.schema_name, cc.table_name) FROM _timescaledb_catalog.chunk c "
        "JOIN _timescaledb_catalog.chunk cc ON cc.id = c.compressed_chunk_id "
        "JOIN timescaledb_information.chunks i ON i.chunk_schema = c.schema_name AND "
        "i.chunk_name = c.table_name WHERE i.hypertable_name = 'cm' AND i.range_start = '",
        day, " 00:00+00'");
    return source ? SourceValue(q) : TargetValue(q);
  }
  // Batches and the rows they hold, in a compressed chunk: "batches/rows".
  std::string Batches(bool source, const std::string& day) {
    const std::string q = absl::StrCat("SELECT count(*) || '/' || sum(_ts_meta_count) FROM ONLY ",
                                       CompressedChunk(source, day));
    return source ? SourceValue(q) : TargetValue(q);
  }
  ProcessResult Stage() { return BackfillTest::Stage(kUntil); }
  void ExpectExactCopy() {
    EXPECT_EQ(SourceDigest(kBelow).substr(0, 6), "15122|");
    EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
    // The whole-chunk compressed day went across batch for batch.
    EXPECT_EQ(Batches(false, "2024-01-02"), Batches(true, "2024-01-02"));
    EXPECT_EQ(Batches(false, "2024-01-03"), Batches(true, "2024-01-03"));
  }
};

class CompressedKindsTest : public CompressedCopyTest,
                            public ::testing::WithParamInterface<bool> {};

TEST_P(CompressedKindsTest, EveryChunkKindArrivesExactlyWithItsCompressionState) {
  const bool dual_writes = GetParam();
  CreateSource();
  CreateTarget();
  if (dual_writes) {
    ExecTarget(
        "INSERT INTO public.cm VALUES ('2024-01-04 12:00+00', 'dual', 1, 'd', 1, 1), "
        "('2024-01-04 20:00+00', 'dual', 2, 'd', 2, 2), ('2024-01-05 08:00+00', 'dual', 3, 'd', "
        "3, 3)");
  }
  const std::string dual_before = TargetDigest(kAtOrAfter);
  ProcessResult staged = Stage();
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = Copy();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  ExpectExactCopy();
  EXPECT_EQ(TargetDigest(kAtOrAfter), dual_before);
  EXPECT_EQ(TargetDigest(kAtOrAfter).substr(0, 2), dual_writes ? "3|" : "0|");
  EXPECT_EQ(TargetValue(kStates), "01:{},02:{COMPRESSED},03:{COMPRESSED,PARTIAL},04:{COMPRESSED}");
  // The whole compressed chunk carries its compression statistics (the tests run as a
  // superuser, who may write them).
  const std::string sizes =
      "SELECT s.numrows_pre_compression || '/' || s.numrows_post_compression || '/' || "
      "s.uncompressed_heap_size FROM _timescaledb_catalog.compression_chunk_size s "
      "JOIN timescaledb_information.chunks i ON true JOIN _timescaledb_catalog.chunk c ON "
      "c.schema_name = i.chunk_schema AND c.table_name = i.chunk_name AND c.id = s.chunk_id "
      "WHERE i.hypertable_name = 'cm' AND i.range_start = '2024-01-02 00:00+00'";
  EXPECT_EQ(TargetValue(sizes), SourceValue(sizes));
  EXPECT_NE(SourceValue(sizes).substr(0, 2), "0/");
  ProcessResult verified = Ctl({"verify", "--source", SourceDsn(), "--target", TargetDsn()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

INSTANTIATE_TEST_SUITE_P(DualWrites, CompressedKindsTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "with_dual_writes" : "without_dual_writes";
                         });

TEST_F(CompressedCopyTest, RerunsNeverDuplicateCompressedRows) {
  CreateSource();
  CreateTarget();
  ASSERT_EQ(Stage().exit_code, 0);
  ASSERT_EQ(Copy().exit_code, 0);
  ASSERT_EQ(Copy().exit_code, 0);  // nothing pending
  ASSERT_EQ(Ctl({"clean", "--target", TargetDsn()}).exit_code, 0);
  // After clean the tool no longer knows it copied these rows: replacing them needs consent.
  ASSERT_EQ(BackfillTest::Stage(kUntil, {"--replace-target-rows"}).exit_code, 0);
  ProcessResult again = Copy();
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  ExpectExactCopy();
  EXPECT_EQ(TargetValue(kStates), "01:{},02:{COMPRESSED},03:{COMPRESSED,PARTIAL},04:{COMPRESSED}");
}

TEST_F(CompressedCopyTest, ChunksCompressedOnEitherSideAfterStagingAreHandled) {
  CreateSource();
  CreateTarget();
  ExecSource("SELECT decompress_chunk(c) FROM show_chunks('public.cm') c");
  ASSERT_EQ(Stage().exit_code, 0);
  // After staging: the source compresses days 2 and 4 again; the target compresses day 1,
  // which already holds a row the application wrote there.
  CompressDay("2024-01-02");
  CompressDay("2024-01-04");
  ExecTarget("INSERT INTO public.cm VALUES ('2024-01-01 05:00:30+00', 'stale', 0, 's', 0, 0)");
  ExecTarget(
      "SELECT compress_chunk(c) FROM show_chunks('public.cm', older_than => timestamptz "
      "'2024-01-02 00:00+00') c");
  ProcessResult copied = Copy();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  EXPECT_EQ(Batches(false, "2024-01-02"), Batches(true, "2024-01-02"));
  // Every chunk ends as the source has it at copy time: day 1, compressed only in the target,
  // ends uncompressed; day 3 was decompressed on the source.
  EXPECT_EQ(TargetValue(kStates), "01:{},02:{COMPRESSED},03:{},04:{COMPRESSED}");
  EXPECT_EQ(TargetValue(kStates), SourceValue(kStates).substr(0, TargetValue(kStates).size()));
}

TEST_F(CompressedCopyTest, OtherCompressionSettingsOnTheTargetGetTheRowsDecompressed) {
  CreateSource();
  // The target segments by label instead: batches cannot go across as they are.
  ExecTarget(R"(
      CREATE TABLE public.cm (time timestamptz NOT NULL, device text NOT NULL, val float8,
                              label text, n int, extra numeric(10, 2));
      SELECT create_hypertable('public.cm', 'time', chunk_time_interval => interval '1 day');
      ALTER TABLE public.cm SET (timescaledb.compress, timescaledb.compress_segmentby = 'label',
                                 timescaledb.compress_orderby = 'time');)");
  ASSERT_EQ(Stage().exit_code, 0);
  ProcessResult copied = Copy();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  // Every row of every compressed day, not only the uncompressed heap rows of day 3.
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  EXPECT_EQ(TargetValue(kStates), "01:{},02:{COMPRESSED},03:{COMPRESSED},04:{COMPRESSED}");
  EXPECT_NE(Batches(false, "2024-01-02"), Batches(true, "2024-01-02"));
}

TEST_F(CompressedCopyTest, CopiedRowsStayOutOfTheTargetInvalidationLog) {
  CreateSource();
  CreateTarget();
  const std::string cagg =
      "CREATE MATERIALIZED VIEW public.cm_hourly WITH (timescaledb.continuous) AS "
      "SELECT time_bucket('1 hour', time) AS bucket, device, count(*) AS n FROM public.cm "
      "GROUP BY 1, 2 WITH NO DATA;";
  ExecSource(cagg);
  ExecTarget(cagg);
  // Refreshing the empty target moves its invalidation threshold above the backfilled range,
  // so every copied row would be logged unless the copy keeps it out.
  ExecTarget("CALL refresh_continuous_aggregate('public.cm_hourly', NULL, '2024-02-01 00:00+00')");
  const std::string log =
      "SELECT count(*) FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log l "
      "JOIN _timescaledb_catalog.hypertable h ON h.id = l.hypertable_id WHERE h.table_name = 'cm'";
  ASSERT_EQ(TargetValue(log), "0");
  ASSERT_EQ(Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", kUntil,
                 "--filter", "^public\\.cm$"})
                .exit_code,
            0);
  ProcessResult copied = Copy();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  // TimescaleDB 2.23 to 2.27 offer no way to keep rows out of the log (README, "Current
  // limits"): there the rows are logged, and refresh-caggs re-materializes their range.
  const std::string version =
      TargetValue("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'");
  const bool no_switch = version >= "2.23" && version < "2.28";
  if (no_switch) {
    std::cerr << "[ INFO     ] TimescaleDB " << version
              << " logs backfilled rows as invalidations (no switch to prevent it)" << std::endl;
    EXPECT_NE(TargetValue(log), "0");
  } else {
    EXPECT_EQ(TargetValue(log), "0");
  }
}

}  // namespace
}  // namespace backfill::testing
