// Operations: progress output of copy (lines, JSON, a bar on a terminal), `status` from the
// target alone, and the Prometheus endpoints of the coordinator and a worker during a copy.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

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
#include "absl/strings/strip.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kRowsBelow[] = "SELECT count(*) FROM public.metrics WHERE time < '2024-01-07'";

// One JSON document parsed into a Struct; fails the test when it is not valid JSON.
google::protobuf::Struct ParseJson(const std::string& text) {
  google::protobuf::Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &parsed).ok()) << text;
  return parsed;
}

double Number(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? -1 : it->second.number_value();
}

std::string Text(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? "" : it->second.string_value();
}

// The value of the sample `series` (name with labels, as exposed) in a Prometheus scrape.
double MetricValue(const std::string& scrape, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (!absl::ConsumePrefix(&line, series) || !absl::ConsumePrefix(&line, " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line, &value)) return value;
  }
  return -1;
}

class OperationsTest : public BackfillTest {
 protected:
  void SetUp() override {
    BackfillTest::SetUp();
    if (IsSkipped()) return;
    CreateMetrics(6);  // 6 daily chunks
    address_ = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  }
  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    BackfillTest::TearDown();
  }
  void Stage() {
    ProcessResult r =
        Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-07"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  std::string Log(const std::string& name) const {
    return absl::StrCat(source_->dir(), "/", name, "-", db_, ".log");
  }
  void StartCoordinator(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {BinPath("backfill-coordinator"),
                                     "--listen",
                                     address_,
                                     "--lease-timeout-ms",
                                     "3000",
                                     "--heartbeat-ms",
                                     "300"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    coordinator_ = std::make_unique<BackgroundProcess>(argv, Log("coordinator"));
    ASSERT_TRUE(WaitFor([&] {
      return absl::StrContains(ReadFile(coordinator_->log_path()), "listening on port");
    })) << ReadFile(coordinator_->log_path());
  }
  void StartWorker(const std::string& name, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {BinPath("backfill-worker"), "--coordinator", address_,
                                     "--name", name};
    argv.insert(argv.end(), extra.begin(), extra.end());
    workers_.push_back(std::make_unique<BackgroundProcess>(argv, Log(name)));
  }
  std::unique_ptr<BackgroundProcess> StartCopy() {
    return std::make_unique<BackgroundProcess>(
        std::vector<std::string>{BinPath("backfillctl"), "copy", "--coordinator", address_,
                                 "--source", SourceDsn(), "--target", TargetDsn()},
        Log("copy"));
  }
  // Holds SHARE on the target chunk of the last task for `seconds`: its copy waits.
  std::thread HoldLastChunk(int seconds) {
    const std::string chunk = TargetValue(
        "SELECT format('%I.%I', target_chunk_schema, target_chunk_name) FROM __backfill.task "
        "ORDER BY task_id DESC LIMIT 1");
    return std::thread([this, chunk, seconds] {
      (void)target_->Exec(
          db_, absl::StrCat("BEGIN; LOCK TABLE ", chunk, " IN SHARE MODE; SELECT pg_sleep(",
                            seconds, "); COMMIT"));
    });
  }

  std::string address_;
  std::unique_ptr<BackgroundProcess> coordinator_;
  std::vector<std::unique_ptr<BackgroundProcess>> workers_;
};

TEST_F(OperationsTest, WithoutATerminalCopyPrintsChunkLinesAndProgressLines) {
  Stage();
  ProcessResult r =
      Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn(), "--progress-interval", "0.1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "Copying 6 pending chunks of 6 staged")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "[6/6] copied chunk ")) << r.out;
  // The last progress line counts everything; rows are shown human-sized.
  EXPECT_TRUE(absl::StrContains(r.err, "progress: 6/6 chunks copied, 8.6k rows, ")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "ETA 0s")) << r.err;
  EXPECT_FALSE(absl::StrContains(r.err, "\r")) << "no bar without a terminal";
  std::cerr << "[ INFO     ] copy without a terminal:\n" << r.out << r.err;

  ProcessResult verify = Ctl(
      {"verify", "--source", SourceDsn(), "--target", TargetDsn(), "--progress-interval", "0.1"});
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_TRUE(absl::StrContains(verify.err, "progress: ")) << verify.err;
  EXPECT_TRUE(absl::StrContains(verify.out, "Verified 6 chunks: 0 differ.")) << verify.out;

  ProcessResult quiet = Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn(), "-q"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.out << quiet.err;
  EXPECT_EQ(quiet.err, "");
  EXPECT_FALSE(absl::StrContains(quiet.out, "Copying")) << quiet.out;
}

TEST_F(OperationsTest, ATaskTableFromAnEarlierReleaseGainsItsCountsAndCopies) {
  Stage();
  // As the previous release left it: no schema version, no maintained counts, no indexes for
  // them.
  ExecTarget(
      "DROP TABLE __backfill.schema_version, __backfill.task_count;"
      "DROP FUNCTION __backfill.count_tasks() CASCADE;"
      "DROP INDEX IF EXISTS __backfill.task_pending_attempts_idx,"
      " __backfill.task_unverified_attempts_idx, __backfill.task_leased_idx,"
      " __backfill.task_held_idx, __backfill.task_verify_held_idx, __backfill.task_session_idx,"
      " __backfill.task_free_size_idx, __backfill.task_verify_free_idx;"
      "UPDATE __backfill.task SET worked = tstzrange(now(), now(), '[]'), rows_copied = 0 "
      "WHERE task_id = (SELECT min(task_id) FROM __backfill.task)");
  ProcessResult r = Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "Copying 5 pending chunks of 6 staged\n")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "Copied 6 of 6 chunks")) << r.out;
  EXPECT_EQ(TargetValue("SELECT sum(total) || '/' || sum(done) FROM __backfill.task_count"), "6/6");
  // TearDown compares every count with the task table.
}

TEST_F(OperationsTest, CopyJsonPrintsOneValidObjectPerLine) {
  Stage();
  ProcessResult r = Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn(), "--json",
                         "--progress-interval", "0.1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 8u) << r.out;
  int chunks = 0, progress = 0;
  double rows = 0;
  for (const std::string& line : lines) {
    google::protobuf::Struct event = ParseJson(line);
    const std::string kind = Text(event, "event");
    if (kind == "chunk") {
      ++chunks;
      EXPECT_EQ(Text(event, "outcome"), "copied") << line;
      rows += Number(event, "rows");
    }
    if (kind == "progress") ++progress;
  }
  EXPECT_EQ(chunks, 6);
  EXPECT_GE(progress, 1);
  EXPECT_EQ(rows, 8640);
  google::protobuf::Struct first = ParseJson(lines.front());
  EXPECT_EQ(Text(first, "event"), "start");
  EXPECT_EQ(Number(first, "chunks_pending"), 6);
  google::protobuf::Struct last = ParseJson(lines.back());
  EXPECT_EQ(Text(last, "event"), "finished");
  EXPECT_EQ(Number(last, "chunks_done"), 6);
  EXPECT_EQ(Number(last, "rows"), 8640);
  EXPECT_EQ(Text(ParseJson(lines[lines.size() - 2]), "event"), "progress");
}

TEST_F(OperationsTest, OnATerminalCopyDrawsAProgressBar) {
  Stage();
  // script(1) gives the command a pseudo-terminal.
  const std::string command = absl::StrCat(BinPath("backfillctl"), " copy --source '", SourceDsn(),
                                           "' --target '", TargetDsn(), "'");
  ProcessResult r = RunProcess({"script", "-qefc", command, "/dev/null"}, {{"COLUMNS", "100"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "\r\033[K[")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, " chunks copied  ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "ETA ")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "] copied chunk ")) << "chunk lines only with -v";
  EXPECT_TRUE(absl::StrContains(r.out, "Copied 6 of 6 chunks")) << r.out;
  // The last bar drawn, as the terminal shows it.
  const size_t bar = r.out.rfind("\r\033[K[");
  std::cerr << "[ INFO     ] last bar: "
            << r.out.substr(bar + 4, r.out.find('\r', bar + 4) - bar - 4) << std::endl;
  EXPECT_EQ(TargetValue(kRowsBelow), "8640");
}

TEST_F(OperationsTest, StatusShowsChunksWorkersFailuresAndThroughputFromTheTargetAlone) {
  ProcessResult none = Ctl({"status", "--target", TargetDsn()});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_EQ(none.err,
            "error: nothing staged: the target has no __backfill schema\nhint: run stage first\n");
  Stage();
  ProcessResult staged = Ctl({"status", "--target", TargetDsn(), "--json"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  google::protobuf::Struct before = ParseJson(staged.out);
  const google::protobuf::Struct& totals = before.fields().at("totals").struct_value();
  EXPECT_EQ(Number(totals, "total_chunks"), 6);
  EXPECT_EQ(Number(totals, "pending_chunks"), 6);
  EXPECT_EQ(Number(totals, "finished_chunks"), 0);

  // The 2024-01-03 rows break a target constraint: that chunk fails for good.
  ExecTarget(
      "ALTER TABLE public.metrics ADD CONSTRAINT not_jan3 CHECK (time < '2024-01-03' OR time "
      ">= '2024-01-04')");
  StartCoordinator();
  StartWorker("statusworker");
  std::thread lock = HoldLastChunk(8);
  std::unique_ptr<BackgroundProcess> copy = StartCopy();
  google::protobuf::Struct during;
  ASSERT_TRUE(WaitFor(
      [&] {
        ProcessResult r = Ctl({"status", "--target", TargetDsn(), "--json"});
        if (r.exit_code != 0) return false;
        during = ParseJson(r.out);
        // Four chunks in, one failed, and the locked last one held.
        return during.fields().at("leases").list_value().values_size() == 1 &&
               during.fields().at("failing").list_value().values_size() == 1 &&
               Number(during.fields().at("totals").struct_value(), "finished_chunks") == 4;
      },
      30));
  const google::protobuf::Struct& lease =
      during.fields().at("leases").list_value().values(0).struct_value();
  EXPECT_TRUE(absl::StartsWith(Text(lease, "worker"), "statusworker#")) << Text(lease, "worker");
  EXPECT_EQ(Text(lease, "work"), "copy");
  const google::protobuf::Struct& failing =
      during.fields().at("failing").list_value().values(0).struct_value();
  EXPECT_TRUE(absl::StrContains(Text(failing, "error"), "not_jan3")) << Text(failing, "error");
  const google::protobuf::Struct& now = during.fields().at("totals").struct_value();
  EXPECT_EQ(Number(now, "finished_chunks"), 4);
  EXPECT_EQ(Number(now, "in_progress"), 1);
  EXPECT_EQ(Number(now, "rows_copied"), 4 * 1440);
  EXPECT_GT(Number(during.fields().at("throughput").struct_value(), "chunks_per_second"), 0);
  EXPECT_GT(Number(during, "eta_seconds"), -1) << "an ETA, not null";

  ProcessResult text = Ctl({"status", "--target", TargetDsn()});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  std::cerr << "[ INFO     ] backfillctl status, mid-copy:\n" << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, "public.metrics")) << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, "Throughput (last ")) << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, "Workers holding chunks:\n  statusworker#")) << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, "Failing chunks (retried by the next copy):\n  "))
      << text.out;

  lock.join();
  std::optional<int> code = copy->WaitFor(60000);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 4) << ReadFile(copy->log_path());
  google::protobuf::Struct after =
      ParseJson(Ctl({"status", "--target", TargetDsn(), "--json"}).out);
  EXPECT_EQ(Number(after.fields().at("totals").struct_value(), "finished_chunks"), 5);
  EXPECT_EQ(Number(after.fields().at("totals").struct_value(), "failing"), 1);
  EXPECT_EQ(after.fields().at("leases").list_value().values_size(), 0);
}

TEST_F(OperationsTest, MetricsEndpointsShowTheCountersMovingDuringACopy) {
  Stage();
  const int coordinator_port = FreeLoopbackPort();
  const int worker_port = FreeLoopbackPort();
  StartCoordinator({"--metrics-listen", absl::StrCat("127.0.0.1:", coordinator_port)});
  StartWorker("metricsworker", {"--metrics-listen", absl::StrCat("127.0.0.1:", worker_port)});
  EXPECT_TRUE(WaitFor([&] { return !HttpGet(worker_port, "/metrics").empty(); }, 30));
  std::thread lock = HoldLastChunk(5);
  std::unique_ptr<BackgroundProcess> copy = StartCopy();
  // Mid-copy: five chunks are in, the sixth is held by the lock. Counters move with reports,
  // the task gauges with the coordinator's next progress read: wait until both show it.
  std::string scrape, worker_mid;
  ASSERT_TRUE(WaitFor(
      [&] {
        scrape = HttpGet(coordinator_port, "/metrics");
        worker_mid = HttpGet(worker_port, "/metrics");
        return MetricValue(scrape, "backfill_chunks_copied_total") == 5 &&
               MetricValue(scrape, "backfill_tasks{state=\"done\"}") == 5 &&
               MetricValue(scrape, "backfill_tasks{state=\"leased\"}") == 1 &&
               MetricValue(worker_mid, "backfill_worker_tasks_in_progress") == 1;
      },
      30))
      << scrape << worker_mid;
  EXPECT_EQ(MetricValue(scrape, "backfill_rows_copied_total"), 5 * 1440) << scrape;
  EXPECT_EQ(MetricValue(scrape, "backfill_tasks{state=\"pending\"}"), 0) << scrape;
  EXPECT_EQ(MetricValue(scrape, "backfill_connected_workers"), 1) << scrape;
  EXPECT_EQ(MetricValue(scrape, "backfill_chunk_copy_seconds_count"), 5) << scrape;
  EXPECT_EQ(MetricValue(worker_mid, "backfill_worker_rows_copied_total"), 5 * 1440) << worker_mid;

  lock.join();
  std::optional<int> code = copy->WaitFor(60000);
  ASSERT_TRUE(code.has_value());
  ASSERT_EQ(*code, 0) << ReadFile(copy->log_path());
  scrape = HttpGet(coordinator_port, "/metrics");
  EXPECT_EQ(MetricValue(scrape, "backfill_rows_copied_total"), 8640) << scrape;
  EXPECT_EQ(MetricValue(scrape, "backfill_chunks_copied_total"), 6) << scrape;
  EXPECT_EQ(MetricValue(scrape, "backfill_lease_grants_total"), 6) << scrape;
  EXPECT_EQ(MetricValue(scrape, "backfill_lease_expiries_total"), 0) << scrape;
  EXPECT_GE(MetricValue(scrape, "backfill_lease_statement_seconds_count"), 6) << scrape;
  EXPECT_EQ(MetricValue(scrape, "backfill_tasks{state=\"pending\"}"), 0) << scrape;
  EXPECT_GT(MetricValue(scrape, "backfill_bytes_copied_total"), 0) << scrape;
  const std::string worker = HttpGet(worker_port, "/metrics");
  EXPECT_EQ(MetricValue(worker, "backfill_worker_rows_copied_total"), 8640) << worker;
  EXPECT_EQ(MetricValue(worker, "backfill_worker_chunks_total{outcome=\"copied\"}"), 6) << worker;
  EXPECT_EQ(MetricValue(worker, "backfill_worker_chunk_copy_seconds_count"), 6) << worker;
  EXPECT_EQ(MetricValue(worker, "backfill_worker_tasks_in_progress"), 0) << worker;
}

TEST_F(OperationsTest, AMetricsAddressThatCannotBeBoundIsAClearError) {
  const int port = FreeLoopbackPort();
  BackgroundProcess first({BinPath("backfill-coordinator"), "--listen", address_,
                           "--metrics-listen", absl::StrCat("127.0.0.1:", port)},
                          Log("first"));
  ASSERT_TRUE(WaitFor([&] { return !HttpGet(port, "/metrics").empty(); }, 30));
  ProcessResult second = RunProcess({BinPath("backfill-worker"), "--coordinator", address_,
                                     "--metrics-listen", absl::StrCat("127.0.0.1:", port)});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_TRUE(
      absl::StrContains(second.err, absl::StrCat("cannot serve metrics on 127.0.0.1:", port)))
      << second.err;
}

}  // namespace
}  // namespace backfill::testing
