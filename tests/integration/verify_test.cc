// verify: passes on a correct copy; catches, each on its own, a missing row, an extra row, a
// changed value and a value turned NULL, in plain and in compressed chunks, naming the chunk
// and the column; the row hash catches what aggregates cannot.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

class VerifyTest : public BackfillTest {
 protected:
  // public.vt over 3 days; day 2 compressed on the source (and so copied compressed).
  void CopyFixture() {
    const std::string ddl = R"(
      CREATE TABLE public.vt (time timestamptz NOT NULL, device text NOT NULL, val float8,
                              label text, n int);
      SELECT create_hypertable('public.vt', 'time', chunk_time_interval => interval '1 day');
      ALTER TABLE public.vt SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');)";
    ExecSource(ddl);
    ExecTarget(ddl);
    ExecSource(R"(
      INSERT INTO public.vt SELECT t, 'dev-' || d, i * 0.5, 'lbl-' || (i % 5), i
        FROM generate_series(timestamptz '2024-01-01 00:00+00', '2024-01-03 23:50+00',
                             interval '10 minutes') WITH ORDINALITY AS g(t, i),
             generate_series(1, 2) d;
      SELECT compress_chunk(c) FROM show_chunks('public.vt') c
        WHERE c IN (SELECT format('%I.%I', chunk_schema, chunk_name)::regclass
                    FROM timescaledb_information.chunks
                    WHERE hypertable_name = 'vt' AND range_start = '2024-01-02 00:00+00');)");
    ProcessResult staged =
        Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-04"});
    ASSERT_EQ(staged.exit_code, 0) << staged.err;
    ProcessResult copied = Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn()});
    ASSERT_EQ(copied.exit_code, 0) << copied.err;
  }
  std::string SourceChunk(const std::string& day) {
    return SourceValue(absl::StrCat(
        "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'vt' AND range_start = '",
        day, " 00:00+00'"));
  }
  ProcessResult Verify(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"verify", "--source", SourceDsn(), "--target", TargetDsn()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ctl(args);
  }
};

TEST_F(VerifyTest, PassesOnACorrectCopyComparingCompressedBatchesWithoutDecompressing) {
  CopyFixture();
  ProcessResult r = Verify({"--json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "\"method\":\"compressed batches\"")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\"method\":\"aggregates\"")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\"mismatches\":\"0\"")) << r.out;
  r = Verify({"--row-hash"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, absl::StrCat("Verified 3 chunks: 0 differ. ",
                                TargetValue("SELECT sum(rows_copied) FROM __backfill.task"),
                                " rows compared.\n"));
}

struct Tamper {
  std::string name;
  std::string sql;         // run on the target; %T is the tampered row's time
  std::string difference;  // the report line that must appear
};

class VerifyCatchesTest : public VerifyTest,
                          public ::testing::WithParamInterface<std::tuple<bool, Tamper>> {};

TEST_P(VerifyCatchesTest, ReportsTheChunkAndTheColumn) {
  const bool compressed = std::get<0>(GetParam());
  const Tamper& tamper = std::get<1>(GetParam());
  CopyFixture();
  const std::string day = compressed ? "2024-01-02" : "2024-01-01";
  const std::string time = absl::StrCat("'", day, " 10:00+00'");
  std::string sql = tamper.sql;
  for (size_t at = sql.find("%T"); at != std::string::npos; at = sql.find("%T")) {
    sql.replace(at, 2, time);
  }
  ExecTarget(sql);
  ProcessResult r = Verify();
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_TRUE(
      absl::StrContains(r.out, absl::StrCat("MISMATCH public.vt chunk ", SourceChunk(day), " -> ")))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, tamper.difference)) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "Verified 3 chunks: 1 differ.")) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    PlainAndCompressed, VerifyCatchesTest,
    ::testing::Combine(
        ::testing::Bool(),
        ::testing::Values(
            Tamper{"missing_row", "DELETE FROM public.vt WHERE time = %T AND device = 'dev-1'",
                   "  rows: source 288, target 287\n"},
            Tamper{"extra_row",
                   "INSERT INTO public.vt VALUES (%T::timestamptz + interval '1 second', "
                   "'dev-1', 1, 'lbl-1', 1)",
                   "  rows: source 288, target 289\n"},
            Tamper{"changed_value",
                   "UPDATE public.vt SET n = n + 1 WHERE time = %T AND device = 'dev-1'",
                   "  sum(n): source "},
            Tamper{"value_turned_null",
                   "UPDATE public.vt SET label = NULL WHERE time = %T AND device = 'dev-1'",
                   "count(label): source 288, target 287\n"})),
    [](const ::testing::TestParamInfo<std::tuple<bool, Tamper>>& info) {
      return absl::StrCat(std::get<0>(info.param) ? "compressed_" : "plain_",
                          std::get<1>(info.param).name);
    });

TEST_F(VerifyTest, RowHashCatchesSwappedValuesThatKeepEveryAggregate) {
  CopyFixture();
  // Swap n between two rows: count, min, max and sum of every column stay the same.
  ExecTarget(R"(
    UPDATE public.vt SET n = CASE WHEN time = '2024-01-01 10:00+00' THEN 62 ELSE 61 END
    WHERE device = 'dev-1' AND time IN ('2024-01-01 10:00+00', '2024-01-01 10:10+00'))");
  ASSERT_EQ(TargetValue("SELECT string_agg(n::text, ',' ORDER BY time) FROM public.vt WHERE "
                        "device = 'dev-1' AND time IN ('2024-01-01 10:00+00', '2024-01-01 "
                        "10:10+00')"),
            "62,61");
  ASSERT_EQ(SourceValue("SELECT string_agg(n::text, ',' ORDER BY time) FROM public.vt WHERE "
                        "device = 'dev-1' AND time IN ('2024-01-01 10:00+00', '2024-01-01 "
                        "10:10+00')"),
            "61,62");
  ProcessResult plain = Verify();
  EXPECT_EQ(plain.exit_code, 0) << plain.out;
  ProcessResult hashed = Verify({"--row-hash"});
  EXPECT_EQ(hashed.exit_code, 3) << hashed.out;
  EXPECT_TRUE(absl::StrContains(hashed.out, "  row hash: source ")) << hashed.out;
}

TEST_F(VerifyTest, HandlesAnyNumberOfColumns) {
  std::string columns;
  std::string values;
  for (int i = 1; i <= 120; ++i) {
    absl::StrAppend(&columns, ", c", i, " int");
    absl::StrAppend(&values, ", i + ", i);
  }
  const std::string ddl =
      absl::StrCat("CREATE TABLE public.wide (time timestamptz NOT NULL", columns,
                   "); SELECT create_hypertable('public.wide', 'time');");
  ExecSource(ddl);
  ExecTarget(ddl);
  ExecSource(absl::StrCat("INSERT INTO public.wide SELECT t", values,
                          " FROM generate_series(timestamptz '2024-01-01 00:00+00', "
                          "'2024-01-02 00:00+00', interval '1 hour') WITH ORDINALITY AS g(t, i)"));
  ASSERT_EQ(
      Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-02-01"})
          .exit_code,
      0);
  ASSERT_EQ(Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn()}).exit_code, 0);
  EXPECT_EQ(Verify({"--row-hash"}).exit_code, 0);
  ExecTarget("UPDATE public.wide SET c117 = c117 + 1 WHERE time = '2024-01-01 05:00+00'");
  ProcessResult r = Verify();
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "  sum(c117): source ")) << r.out;
}

}  // namespace
}  // namespace backfill::testing
