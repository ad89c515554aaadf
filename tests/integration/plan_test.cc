// Planning and preflight: stage --dry-run, the checks that run before stage writes and before
// copy leases (scheduled policies, privileges, connection room), largest chunks first, and
// workers that reconnect after a number of chunks.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

class PlanTest : public BackfillTest {
 protected:
  std::vector<std::string> Databases() const {
    return {"--source", SourceDsn(), "--target", TargetDsn()};
  }
  ProcessResult Stage(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"stage", "--until", "2024-01-03T12:00:00"};
    for (const std::string& a : Databases()) args.push_back(a);
    args.insert(args.end(), extra.begin(), extra.end());
    return Ctl(args);
  }
  ProcessResult Copy(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"copy"};
    for (const std::string& a : Databases()) args.push_back(a);
    args.insert(args.end(), extra.begin(), extra.end());
    return Ctl(args);
  }
};

TEST_F(PlanTest, DryRunShowsChunksSizesAndAnEstimateAndWritesNothing) {
  CreateMetrics(4);
  const std::string compress =
      "ALTER TABLE public.metrics SET (timescaledb.compress, timescaledb.compress_segmentby = "
      "'device')";
  ExecSource(compress);
  ExecTarget(compress);
  ExecSource(
      "SELECT compress_chunk(c) FROM show_chunks('public.metrics', older_than => timestamptz "
      "'2024-01-02 00:00+00') c");
  ProcessResult r = Stage({"--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "public.metrics: 3 chunks to stage\n")) << r.out;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  int compressed = 0, cut = 0;
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, "  stage ") && absl::StrContains(line, ": compressed, ") &&
        absl::StrContains(line, " uncompressed)")) {
      ++compressed;
    }
    if (absl::StartsWith(line, "  stage ") && absl::EndsWith(line, ", cut at --until")) ++cut;
  }
  EXPECT_EQ(compressed, 1) << r.out;
  EXPECT_EQ(cut, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "Total to copy: 3 chunks, ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "Estimated copy time with one worker: ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "the source's read rate on a sample chunk")) << r.out;
  EXPECT_TRUE(absl::EndsWith(r.out, "Dry run: nothing was written to either database.\n"));
  // Nothing was written: no task table, no target chunk.
  EXPECT_EQ(TargetValue("SELECT to_regclass('__backfill.task') IS NULL"), "t");
  EXPECT_EQ(TargetValue("SELECT count(*) FROM show_chunks('public.metrics')"), "0");

  ProcessResult given = Stage({"--dry-run", "--throughput", "10"});
  ASSERT_EQ(given.exit_code, 0) << given.err;
  EXPECT_TRUE(absl::StrContains(given.out, " at 10.0 MiB/s (given with --throughput)"))
      << given.out;
  // The real thing stages what the dry run showed.
  ProcessResult staged = Stage();
  ASSERT_EQ(staged.exit_code, 0) << staged.err;
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task"), "3");
}

TEST_F(PlanTest, ScheduledPoliciesAreReportedWithTheSqlThatPausesThem) {
  CreateMetrics(4);
  ExecTarget(
      "CREATE MATERIALIZED VIEW public.metrics_hourly WITH (timescaledb.continuous) AS "
      "SELECT time_bucket('1 hour', time) AS bucket, count(*) FROM public.metrics GROUP BY 1 "
      "WITH NO DATA;"
      "SELECT add_continuous_aggregate_policy('public.metrics_hourly', start_offset => NULL, "
      "end_offset => interval '1 hour', schedule_interval => interval '12 hours');"
      "SELECT add_retention_policy('public.metrics', drop_after => interval '20 years');");
  const std::string refresh = TargetValue(
      "SELECT id FROM _timescaledb_config.bgw_job WHERE proc_name = "
      "'policy_refresh_continuous_aggregate'");
  const std::string retention = TargetValue(
      "SELECT id FROM _timescaledb_config.bgw_job WHERE proc_name = 'policy_retention'");
  ProcessResult refused = Stage();
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(refused.err, "error: cannot stage: 2 problems\n")) << refused.err;
  for (const auto& [id, what] :
       {std::pair{refresh,
                  "policy_refresh_continuous_aggregate on continuous aggregate "
                  "public.metrics_hourly"},
        std::pair{retention, "policy_retention on hypertable public.metrics"}}) {
    EXPECT_TRUE(absl::StrContains(
        refused.err, absl::StrCat("  job ", id, " (", what,
                                  ") is scheduled in the target; pause it with: SELECT "
                                  "alter_job(",
                                  id, ", scheduled => false);\n")))
        << refused.err;
  }
  EXPECT_TRUE(absl::StrContains(refused.err, "or pass --allow-active-jobs\n")) << refused.err;
  EXPECT_EQ(TargetValue("SELECT to_regclass('__backfill.task') IS NULL"), "t");

  ASSERT_EQ(Stage({"--allow-active-jobs"}).exit_code, 0);
  ProcessResult copy_refused = Copy();
  EXPECT_EQ(copy_refused.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(copy_refused.err, "error: cannot start: 2 problems\n"))
      << copy_refused.err;
  EXPECT_EQ(TargetValue("SELECT count(worked) FROM __backfill.task"), "0");
  // Paused as the message says: both go ahead.
  ExecTarget(absl::StrCat("SELECT alter_job(", refresh, ", scheduled => false); SELECT alter_job(",
                          retention, ", scheduled => false);"));
  ProcessResult copied = Copy();
  EXPECT_EQ(copied.exit_code, 0) << copied.err;
}

TEST_F(PlanTest, MissingPrivilegesAndConnectionRoomAreReportedAllAtOnce) {
  CreateMetrics(2);
  ExecSource("CREATE ROLE bf_reader LOGIN");
  const std::string source = absl::StrCat(SourceDsn(), " user=bf_reader");
  ProcessResult r =
      Ctl({"stage", "--source", source, "--target", TargetDsn(), "--until", "2024-01-02"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: cannot stage: the source user lacks SELECT on \"public\".\"metrics\"\n"
            "hint: GRANT SELECT ON <table> TO <user> in the source, or connect as the tables' "
            "owner\n");
  ASSERT_EQ(
      Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-02"})
          .exit_code,
      0);
  // 250 workers cannot fit under max_connections = 100 on either side.
  ProcessResult crowded = Copy({"-p", "250"});
  EXPECT_EQ(crowded.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(crowded.err, "error: cannot start: 2 problems\n")) << crowded.err;
  EXPECT_TRUE(absl::StrContains(crowded.err, "  the source accepts ")) << crowded.err;
  EXPECT_TRUE(
      absl::StrContains(crowded.err,
                        " more connections under max_connections, but --parallelism 250 (plus the "
                        "coordinator's 4) needs 254\n"))
      << crowded.err;
  EXPECT_TRUE(absl::EndsWith(crowded.err, "hint: lower --parallelism, or raise max_connections\n"))
      << crowded.err;
  EXPECT_EQ(TargetValue("SELECT count(worked) FROM __backfill.task"), "0");
}

TEST_F(PlanTest, LargestChunksAreCopiedFirst) {
  const std::string ddl =
      "CREATE TABLE public.s (time timestamptz NOT NULL, v int);"
      "SELECT create_hypertable('public.s', 'time', chunk_time_interval => interval '1 day')";
  ExecSource(ddl);
  ExecTarget(ddl);
  // Days of 100, 20000, 3000 and 50000 rows.
  ExecSource(
      "INSERT INTO public.s SELECT timestamptz '2024-01-01 00:00+00' + (d - 1) * interval '1 "
      "day' + i * interval '1 second', i FROM (VALUES (1, 100), (2, 20000), (3, 3000), (4, "
      "50000)) AS days(d, n), generate_series(1, n) i");
  ASSERT_EQ(
      Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-05"})
          .exit_code,
      0);
  ProcessResult copied = Copy({"-p", "1"});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  EXPECT_EQ(TargetValue("SELECT string_agg(rows_copied::text, ',' ORDER BY lower(worked)) FROM "
                        "__backfill.task"),
            "50000,20000,3000,100");
}

TEST_F(PlanTest, WorkersOpenFreshSessionsAfterTheGivenNumberOfChunks) {
  CreateMetrics(6);
  ASSERT_EQ(
      Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-07"})
          .exit_code,
      0);
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  const std::string log = absl::StrCat(source_->dir(), "/reconnect-", db_);
  BackgroundProcess coordinator({BinPath("backfill-coordinator"), "--listen", address},
                                log + "-coordinator.log");
  BackgroundProcess worker(
      {BinPath("backfill-worker"), "--coordinator", address, "--reconnect-every", "2"},
      log + "-worker.log");
  ProcessResult copied;
  for (int i = 0; i < 100; ++i) {
    copied =
        Ctl({"copy", "--coordinator", address, "--source", SourceDsn(), "--target", TargetDsn()},
            {}, "backfillctl");
    if (copied.exit_code == 0 || !absl::StrContains(copied.err, "cannot reach")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  const std::string worker_log = ReadFile(worker.log_path());
  int reconnects = 0;
  for (size_t at = 0; (at = worker_log.find("reconnecting after 2 tasks", at)) != std::string::npos;
       ++at) {
    ++reconnects;
  }
  EXPECT_EQ(reconnects, 3) << worker_log;
  EXPECT_EQ(TargetDigest("SELECT * FROM public.metrics"),
            SourceDigest("SELECT * FROM public.metrics"));
}

TEST_F(PlanTest, MaxRateAndTheCapOnChunksPerHypertableHold) {
  CreateMetrics(6);
  ASSERT_EQ(
      Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-07"})
          .exit_code,
      0);
  // Sample how many chunks of the hypertable are leased at once while the copy runs.
  std::atomic<bool> done{false};
  std::atomic<int> most{0};
  std::thread sampler([&] {
    while (!done) {
      int leased = 0;
      (void)absl::SimpleAtoi(
          TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NULL AND "
                      "lease_holder IS NOT NULL AND lease_expires_at > now()"),
          &leased);
      most = std::max(most.load(), leased);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  constexpr double kRate = 256 * 1024;
  const absl::Time start = absl::Now();
  ProcessResult copied =
      Copy({"-p", "2", "--max-rate", "256k", "--max-chunks-per-hypertable", "1"});
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  done = true;
  sampler.join();
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  double bytes = 0;
  ASSERT_TRUE(
      absl::SimpleAtod(TargetValue("SELECT sum(bytes_copied) FROM __backfill.task"), &bytes));
  std::cerr << "[ INFO     ] " << bytes << " bytes in " << seconds << " s under --max-rate 256k"
            << std::endl;
  EXPECT_LE(bytes / seconds, kRate * 1.05);
  EXPECT_EQ(most.load(), 1);
  EXPECT_EQ(TargetDigest("SELECT * FROM public.metrics"),
            SourceDigest("SELECT * FROM public.metrics"));
  ProcessResult bad = Copy({"--max-rate", "fast"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(bad.err, "'fast' is not a rate")) << bad.err;
}

TEST_F(PlanTest, ThrottleChangesARunningCopy) {
  CreateMetrics(6);
  ASSERT_EQ(
      Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-07"})
          .exit_code,
      0);
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  const std::string log = absl::StrCat(source_->dir(), "/throttle-", db_);
  BackgroundProcess coordinator({BinPath("backfill-coordinator"), "--listen", address,
                                 "--heartbeat-ms", "300", "--lease-timeout-ms", "3000"},
                                log + "-coordinator.log");
  for (int i = 0;
       i < 200 && !absl::StrContains(ReadFile(coordinator.log_path()), "listening on port"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  BackgroundProcess worker({BinPath("backfill-worker"), "--coordinator", address},
                           log + "-worker.log");
  // 16 KiB/s: this copy would take half a minute.
  BackgroundProcess copy({BinPath("backfillctl"), "copy", "--coordinator", address, "--source",
                          SourceDsn(), "--target", TargetDsn(), "--max-rate", "16k"},
                         log + "-copy.log");
  auto logged = [&](const std::string& what) {
    for (int i = 0; i < 600; ++i) {
      if (absl::StrContains(ReadFile(worker.log_path()), what)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  ASSERT_TRUE(logged("rate limit now 16384 bytes/s"))
      << ReadFile(worker.log_path()) << ReadFile(copy.log_path());
  ProcessResult lifted =
      Ctl({"throttle", "--target", TargetDsn(), "--max-rate", "0"}, {}, "backfillctl");
  ASSERT_EQ(lifted.exit_code, 0) << lifted.err;
  EXPECT_EQ(lifted.out,
            "Throttle: no rate limit for all workers together; no cap on chunks per "
            "hypertable.\n");
  ASSERT_TRUE(logged("rate limit now none")) << ReadFile(worker.log_path());
  std::optional<int> code = copy.WaitFor(60000);
  ASSERT_TRUE(code.has_value()) << ReadFile(copy.log_path());
  EXPECT_EQ(*code, 0) << ReadFile(copy.log_path());
  EXPECT_EQ(TargetDigest("SELECT * FROM public.metrics"),
            SourceDigest("SELECT * FROM public.metrics"));
  ProcessResult shown = Ctl({"throttle", "--target", TargetDsn(), "--max-rate", "50M",
                             "--max-chunks-per-hypertable", "4"},
                            {}, "backfillctl");
  EXPECT_EQ(shown.out,
            "Throttle: 50.0 MiB/s for all workers together; at most 4 chunks of one hypertable "
            "at a time.\n");
}

}  // namespace
}  // namespace backfill::testing
