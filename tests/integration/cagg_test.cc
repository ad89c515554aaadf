// Continuous aggregates: staging a hierarchy with every filter and cascade, copying their
// materializations, refresh-caggs, and what the copy carries so that both sides' aggregates
// converge the same way.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

// --- the continuous-aggregate hierarchy ----------------------------------------------------

class StageCaggTest : public BackfillTest {
 protected:
  // raw_data -> hourly_agg -> daily_agg -> monthly_agg (the spec's example), materialized on
  // the source, empty on the target; plus an unrelated hypertable.
  void CreateHierarchy() {
    const std::string ddl = R"(
      CREATE TABLE public.raw_data (time timestamptz NOT NULL, device int, value float8);
      SELECT create_hypertable('public.raw_data', 'time', chunk_time_interval => interval '1 day');
      CREATE TABLE public.other (time timestamptz NOT NULL, v int);
      SELECT create_hypertable('public.other', 'time');
      CREATE MATERIALIZED VIEW public.hourly_agg WITH (timescaledb.continuous) AS
        SELECT time_bucket('1 hour', time) AS bucket, device, sum(value) AS total, count(*) AS n
        FROM public.raw_data GROUP BY 1, 2 WITH NO DATA;
      CREATE MATERIALIZED VIEW public.daily_agg WITH (timescaledb.continuous) AS
        SELECT time_bucket('1 day', bucket) AS bucket, device, sum(total) AS total, sum(n) AS n
        FROM public.hourly_agg GROUP BY 1, 2 WITH NO DATA;
      CREATE MATERIALIZED VIEW public.monthly_agg WITH (timescaledb.continuous) AS
        SELECT time_bucket('1 month', bucket) AS bucket, device, sum(total) AS total, sum(n) AS n
        FROM public.daily_agg GROUP BY 1, 2 WITH NO DATA;)";
    ExecSource(ddl);
    ExecTarget(ddl);
    ExecSource(
        "INSERT INTO public.raw_data SELECT t, i % 4, i FROM generate_series(timestamptz "
        "'2024-01-01 00:00+00', '2024-02-10 23:50+00', interval '10 minutes') WITH ORDINALITY "
        "AS g(t, i);"
        "INSERT INTO public.other VALUES ('2024-01-01 00:00+00', 1)");
    for (const char* view : {"hourly_agg", "daily_agg", "monthly_agg"}) {
      ExecSource(absl::StrCat("CALL refresh_continuous_aggregate('public.", view,
                              "', NULL, '2024-03-01 00:00+00')"));
    }
  }
};

struct CascadeCase {
  std::string filter;
  bool up, down;
  std::vector<std::string> expected;  // in the order stage reports them: parents first
};

TEST_F(StageCaggTest, EveryFilterAndCascadeCombinationStagesExactlyTheSpecSet) {
  CreateHierarchy();
  const std::vector<CascadeCase> cases = {
      {"^public\\.raw_data$", false, false, {"public.raw_data"}},
      {"^public\\.daily_agg$", false, false, {"public.daily_agg"}},
      {"^public\\.raw_data$",
       true,
       false,
       {"public.raw_data", "public.hourly_agg", "public.daily_agg", "public.monthly_agg"}},
      {"^public\\.daily_agg$",
       false,
       true,
       {"public.raw_data", "public.hourly_agg", "public.daily_agg"}},
      {"^public\\.daily_agg$", true, false, {"public.daily_agg", "public.monthly_agg"}},
      {"^public\\.daily_agg$",
       true,
       true,
       {"public.raw_data", "public.hourly_agg", "public.daily_agg", "public.monthly_agg"}},
      {"^public\\.monthly_agg$",
       false,
       true,
       {"public.raw_data", "public.hourly_agg", "public.daily_agg", "public.monthly_agg"}},
      {"^public\\.hourly_agg$",
       true,
       true,
       {"public.raw_data", "public.hourly_agg", "public.daily_agg", "public.monthly_agg"}},
      {"^public\\.raw_data$", false, true, {"public.raw_data"}},
      {"^public\\.monthly_agg$", true, false, {"public.monthly_agg"}},
      {"_agg$", false, false, {"public.hourly_agg", "public.daily_agg", "public.monthly_agg"}},
  };
  for (const CascadeCase& c : cases) {
    std::vector<std::string> extra = {"--filter", c.filter};
    if (c.up) extra.push_back("--cascade-up");
    if (c.down) extra.push_back("--cascade-down");
    SCOPED_TRACE(absl::StrJoin(extra, " "));
    ProcessResult r = Stage("2030-01-01", extra);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(StagedNames(r.out), c.expected) << r.out;
    ASSERT_EQ(Ctl({"clean", "--target", TargetDsn()}).exit_code, 0);
  }
  // Without a filter: everything, the unrelated hypertable included.
  ProcessResult all = Stage("2030-01-01");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::vector<std::string> names = StagedNames(all.out);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
            (std::set<std::string>{"public.raw_data", "public.other", "public.hourly_agg",
                                   "public.daily_agg", "public.monthly_agg"}))
      << all.out;
}

TEST_F(StageCaggTest, StagedContinuousAggregatesCopyTheirMaterializedData) {
  // An extra hypertable first, so the target's materializations get other internal names
  // (_materialized_hypertable_N) than the source's.
  ExecTarget(
      "CREATE TABLE public.pad (time timestamptz NOT NULL);"
      "SELECT create_hypertable('public.pad', 'time');");
  CreateHierarchy();
  ASSERT_NE(
      SourceValue("SELECT string_agg(h.table_name, ',' ORDER BY ca.user_view_name) FROM "
                  "_timescaledb_catalog.continuous_agg ca JOIN _timescaledb_catalog.hypertable "
                  "h ON h.id = ca.mat_hypertable_id"),
      TargetValue("SELECT string_agg(h.table_name, ',' ORDER BY ca.user_view_name) FROM "
                  "_timescaledb_catalog.continuous_agg ca JOIN _timescaledb_catalog.hypertable "
                  "h ON h.id = ca.mat_hypertable_id"));
  ProcessResult r = Stage("2024-02-01", {"--filter", "^public\\.monthly_agg$", "--cascade-down"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_EQ(Copy().exit_code, 0);
  for (const char* view : {"hourly_agg", "daily_agg", "monthly_agg"}) {
    SCOPED_TRACE(view);
    const std::string q =
        absl::StrCat("SELECT * FROM public.", view, " WHERE bucket < '2024-02-01 00:00+00'");
    EXPECT_EQ(TargetDigest(q), SourceDigest(q));
    EXPECT_NE(SourceDigest(q).substr(0, 2), "0|");
  }
  const std::string raw = "SELECT * FROM public.raw_data WHERE time < '2024-02-01 00:00+00'";
  EXPECT_EQ(TargetDigest(raw), SourceDigest(raw));
}

// --- refresh-caggs ----------------------------------------------------------------------

class RefreshCaggsTest : public StageCaggTest {
 protected:
  ProcessResult Refresh(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"refresh-caggs", "--source", SourceDsn(), "--target",
                                     TargetDsn()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ctl(args);
  }
  // Every view returns the same rows on both sides, and some rows.
  void ExpectViewsEqual() {
    for (const char* view : {"hourly_agg", "daily_agg", "monthly_agg"}) {
      SCOPED_TRACE(view);
      const std::string q = absl::StrCat("SELECT * FROM public.", view);
      EXPECT_EQ(TargetDigest(q), SourceDigest(q));
      EXPECT_NE(TargetDigest(q).substr(0, 2), "0|");
    }
  }
  // The aggregates a refresh-caggs run reported, refreshed or up to date, in its order.
  static std::vector<std::string> ReportedCaggs(const std::string& out) {
    std::vector<std::string> names;
    for (absl::string_view line : absl::StrSplit(out, '\n')) {
      if (absl::ConsumePrefix(&line, "refreshed continuous aggregate ") ||
          absl::ConsumePrefix(&line, "continuous aggregate ")) {
        names.emplace_back(line.substr(0, line.find(' ')));
      }
    }
    return names;
  }
};

TEST_F(RefreshCaggsTest, AfterStageCopyAndRefreshTheTargetAggregatesEqualTheSources) {
  CreateHierarchy();
  ASSERT_EQ(Stage("2030-01-01", {"--filter", "^public\\.raw_data$"}).exit_code, 0);
  ASSERT_EQ(Copy().exit_code, 0);
  ProcessResult r = Refresh();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Parents first, each from the target's watermark (never refreshed: the start) to the
  // source's.
  EXPECT_TRUE(absl::StrContains(
      r.out,
      "refreshed continuous aggregate public.hourly_agg over [start, 2024-02-11 00:00:00+00)\n"
      "refreshed continuous aggregate public.daily_agg over [start, 2024-02-11 00:00:00+00)\n"
      "refreshed continuous aggregate public.monthly_agg over [start, 2024-03-01 00:00:00+00)\n"
      "Refreshed 3 of 3 continuous aggregates."))
      << r.out;
  ExpectViewsEqual();
  // Again: nothing left to do, and that is not an error.
  ProcessResult again = Refresh();
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(absl::StrContains(again.out, "Refreshed 0 of 3 continuous aggregates.")) << again.out;
}

TEST_F(RefreshCaggsTest, EveryFilterAndCascadeCombinationRefreshesExactlyItsSet) {
  CreateHierarchy();
  const std::vector<CascadeCase> cases = {
      {"", false, false, {"public.hourly_agg", "public.daily_agg", "public.monthly_agg"}},
      {"^public\\.daily_agg$", false, false, {"public.daily_agg"}},
      {"^public\\.daily_agg$", false, true, {"public.hourly_agg", "public.daily_agg"}},
      {"^public\\.daily_agg$", true, false, {"public.daily_agg", "public.monthly_agg"}},
      {"^public\\.daily_agg$",
       true,
       true,
       {"public.hourly_agg", "public.daily_agg", "public.monthly_agg"}},
      {"^public\\.hourly_agg$",
       true,
       false,
       {"public.hourly_agg", "public.daily_agg", "public.monthly_agg"}},
      {"^public\\.monthly_agg$",
       false,
       true,
       {"public.hourly_agg", "public.daily_agg", "public.monthly_agg"}},
      {"^public\\.raw_data$", true, true, {}},
  };
  for (const CascadeCase& c : cases) {
    std::vector<std::string> extra;
    if (!c.filter.empty()) extra = {"--filter", c.filter};
    if (c.up) extra.push_back("--cascade-up");
    if (c.down) extra.push_back("--cascade-down");
    SCOPED_TRACE(absl::StrJoin(extra, " "));
    ProcessResult r = Refresh(extra);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(ReportedCaggs(r.out), c.expected) << r.out;
    if (c.expected.empty()) {
      EXPECT_EQ(r.out, "No continuous aggregates to refresh.\n");
    }
  }
}

// The copy carries the materialization and, where the target allows (a superuser on a
// version that keeps the copy's own writes out of the invalidation log), what the source still
// has to recompute; refresh-caggs then leaves the copied range alone.
class CarriedCaggTest : public RefreshCaggsTest {
 protected:
  static constexpr char kUntil[] = "2024-02-01T00:00:00Z";
  // Whether the target's log says hourly_agg must recompute the bucket holding `time`.
  std::string TargetMarksInvalid(const std::string& time) {
    return TargetValue(absl::StrCat(
        "SELECT count(*) > 0 FROM _timescaledb_catalog.continuous_aggs_materialization_"
        "invalidation_log l JOIN _timescaledb_catalog.continuous_agg ca ON ca.mat_hypertable_id "
        "= l.materialization_id WHERE ca.user_view_name = 'hourly_agg' AND "
        "_timescaledb_functions.time_to_internal(timestamptz '",
        time, "') BETWEEN l.lowest_modified_value AND l.greatest_modified_value"));
  }
  bool CarrySupported() {
    const std::string version =
        TargetValue("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'");
    return !(version >= "2.23" && version < "2.28");
  }
  // Source rows changed after its last refresh: one change already moved to hourly_agg's own
  // log (by a refresh of an unrelated window), one still in the hypertable's log.
  void ChangeSourceAfterItsRefresh() {
    ExecSource(
        "UPDATE public.raw_data SET value = value + 1000 WHERE time >= "
        "'2024-01-10 05:00+00' AND time < '2024-01-10 05:30+00'");
    ExecSource(
        "CALL refresh_continuous_aggregate('public.hourly_agg', '2024-02-05 00:00+00', "
        "'2024-02-06 00:00+00')");
    ExecSource(
        "UPDATE public.raw_data SET value = value + 1000 WHERE time >= "
        "'2024-01-20 07:00+00' AND time < '2024-01-20 07:30+00'");
  }
  // The application's dual writes: the target holds the source's rows from --until on.
  void DualWrites() {
    ExecTarget(
        "INSERT INTO public.raw_data SELECT t, i % 4, i FROM generate_series(timestamptz "
        "'2024-01-01 00:00+00', '2024-02-10 23:50+00', interval '10 minutes') WITH ORDINALITY "
        "AS g(t, i) WHERE t >= '2024-02-01 00:00+00'");
  }
  // The target's hourly_agg materialization rows below `bucket`, by place and transaction:
  // a recompute rewrites them.
  std::string HourlyRowsBelow(const std::string& bucket) {
    const std::string relation = TargetValue(
        "SELECT format('%I.%I', materialization_hypertable_schema, "
        "materialization_hypertable_name) FROM timescaledb_information.continuous_aggregates "
        "WHERE view_name = 'hourly_agg'");
    return TargetDigest(
        absl::StrCat("SELECT ctid, xmin FROM ", relation, " WHERE bucket < '", bucket, "'"));
  }
  void ExpectWatermarksEqual() {
    const std::string watermarks =
        "SELECT string_agg(ca.user_view_name || '=' || w.watermark, ',' ORDER BY "
        "ca.user_view_name) FROM _timescaledb_catalog.continuous_agg ca JOIN "
        "_timescaledb_catalog.continuous_aggs_watermark w ON w.mat_hypertable_id = "
        "ca.mat_hypertable_id";
    EXPECT_EQ(TargetValue(watermarks), SourceValue(watermarks));
  }
};

TEST_F(CarriedCaggTest, RefreshKeepsTheCopiedRangeAndBothSidesConvergeTheSameWay) {
  CreateHierarchy();
  ChangeSourceAfterItsRefresh();
  DualWrites();
  ASSERT_EQ(Stage(kUntil).exit_code, 0);
  ProcessResult copied = Copy();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  if (CarrySupported()) {
    // Both pending changes were carried; a bucket the source has done is not to be redone.
    EXPECT_EQ(TargetMarksInvalid("2024-01-10 05:10+00"), "t");
    EXPECT_EQ(TargetMarksInvalid("2024-01-20 07:10+00"), "t");
    EXPECT_EQ(TargetMarksInvalid("2024-01-15 12:00+00"), "f");
    EXPECT_EQ(TargetMarksInvalid("2024-02-05 12:00+00"), "t");  // past the copy
  } else {
    std::cerr << "[ INFO     ] this TimescaleDB logs copied rows: invalidations not carried"
              << std::endl;
    EXPECT_EQ(TargetMarksInvalid("2024-01-15 12:00+00"), "t");
  }
  const std::string before = HourlyRowsBelow("2024-02-01 00:00+00");

  ProcessResult r = Refresh();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.out,
      "refreshed continuous aggregate public.hourly_agg over [2024-02-01 00:00:00+00, "
      "2024-02-11 00:00:00+00); the copied materialization before 2024-02-01 00:00:00+00 is "
      "kept\n"))
      << r.out;
  EXPECT_EQ(HourlyRowsBelow("2024-02-01 00:00+00"), before);
  EXPECT_NE(before.substr(0, 2), "0|");
  // Equal now, the pending changes still pending on both sides ...
  ExpectViewsEqual();
  ExpectWatermarksEqual();
  const std::string changed =
      "SELECT total FROM public.hourly_agg WHERE bucket = '2024-01-20 07:00+00' AND device = 1";
  const std::string stale = SourceValue(changed);
  EXPECT_EQ(TargetValue(changed), stale);
  // ... and the next refresh on either side gives the same rows, the changes included.
  for (const char* view : {"hourly_agg", "daily_agg", "monthly_agg"}) {
    const std::string call = absl::StrCat("CALL refresh_continuous_aggregate('public.", view,
                                          "', NULL, '2024-03-01 00:00+00')");
    ExecSource(call);
    ExecTarget(call);
  }
  ExpectViewsEqual();
  EXPECT_NE(SourceValue(changed), stale);
  EXPECT_EQ(TargetValue(changed), SourceValue(changed));
}

TEST_F(CarriedCaggTest, ACopyThatReachedTheSourceWatermarkRecomputesOnlyItsLastBuckets) {
  CreateHierarchy();  // nothing pending in the source this time
  ASSERT_EQ(Stage("2030-01-01T00:00:00Z").exit_code, 0);
  ASSERT_EQ(Copy().exit_code, 0);
  const std::string before = HourlyRowsBelow("2024-02-10 22:00+00");
  ProcessResult r = Refresh();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out,
                                "refreshed continuous aggregate public.hourly_agg over "
                                "[2024-02-10 22:00:00+00, 2024-02-11 00:00:00+00); the copied "
                                "materialization before "))
      << r.out;
  EXPECT_EQ(HourlyRowsBelow("2024-02-10 22:00+00"), before);
  ExpectViewsEqual();
  ExpectWatermarksEqual();
  // Again: the target's watermark is the source's, nothing is left to do.
  ProcessResult again = Refresh();
  EXPECT_TRUE(absl::StrContains(again.out, "Refreshed 0 of 3 continuous aggregates.")) << again.out;
}

}  // namespace
}  // namespace backfill::testing
