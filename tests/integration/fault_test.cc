// Faults: workers killed with SIGKILL at random points, a stopped worker whose lease is
// granted again, and the target database restarted mid-copy. After each, the target must hold
// every source row below --until exactly once.
#include <signal.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "proto/credentials.h"
#include "tests/integration/fixture.h"
#include "worker/grpc_coordinator_client.h"

namespace backfill::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kBelow[] = "SELECT * FROM public.f WHERE time < '2024-01-20 00:00+00'";

class FaultTest : public BackfillTest {
 protected:
  void SetUp() override {
    BackfillTest::SetUp();
    if (IsSkipped()) return;
    address_ = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  }
  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    BackfillTest::TearDown();
  }

  // public.f: `chunks` daily chunks of one row per device per `step`.
  void CreateData(int days, const std::string& step, int devices) {
    const std::string ddl =
        "CREATE TABLE public.f (time timestamptz NOT NULL, device int NOT NULL, v float8);"
        "SELECT create_hypertable('public.f', 'time', chunk_time_interval => interval '1 day');";
    ExecSource(ddl);
    ExecTarget(ddl);
    ExecSource(
        absl::StrCat("INSERT INTO public.f SELECT t, d, random() FROM generate_series(timestamptz "
                     "'2024-01-01 00:00+00', timestamptz '2024-01-01 00:00+00' + interval '",
                     days, " days' - interval '1 second', interval '", step,
                     "') t, generate_series(1, ", devices, ") d"));
  }
  void StartCoordinator() {
    coordinator_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{BinPath("backfill-coordinator"), "--listen", address_,
                                 "--lease-timeout-ms", "2000", "--heartbeat-ms", "300"},
        absl::StrCat(source_->dir(), "/coordinator-", db_, ".log"));
    ASSERT_TRUE(WaitFor([&] {
      return absl::StrContains(ReadFile(coordinator_->log_path()), "listening on port");
    })) << ReadFile(coordinator_->log_path());
  }
  BackgroundProcess* StartWorker(const std::string& name) {
    workers_.push_back(std::make_unique<BackgroundProcess>(
        std::vector<std::string>{BinPath("backfill-worker"), "--coordinator", address_, "--name",
                                 name},
        absl::StrCat(source_->dir(), "/", name, "-", db_, ".log")));
    return workers_.back().get();
  }
  std::unique_ptr<BackgroundProcess> StartCopy() {
    return std::make_unique<BackgroundProcess>(
        std::vector<std::string>{BinPath("backfillctl"), "copy", "--coordinator", address_,
                                 "--source", SourceDsn(), "--target", TargetDsn()},
        absl::StrCat(source_->dir(), "/copy-", db_, ".log"));
  }
  // `replace`: the target holds rows below --until on purpose (stale copies to replace).
  void Stage(const std::string& until, bool replace = false) {
    std::vector<std::string> args = {"stage",     "--source", SourceDsn(), "--target",
                                     TargetDsn(), "--until",  until};
    if (replace) args.emplace_back("--replace-target-rows");
    ProcessResult r = Ctl(args);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  int64_t TasksWorked() {
    int64_t n = 0;
    (void)absl::SimpleAtoi(TargetValue("SELECT count(worked) FROM __backfill.task"), &n);
    return n;
  }

  std::string address_;
  std::unique_ptr<BackgroundProcess> coordinator_;
  std::vector<std::unique_ptr<BackgroundProcess>> workers_;
};

TEST_F(FaultTest, WorkersKilledAtRandomPointsNeverLoseOrDuplicateARow) {
  CreateData(20, "20 seconds", 12);  // 20 chunks of 51840 rows
  StartCoordinator();
  const unsigned seed = std::random_device{}();
  std::cerr << "[ INFO     ] random seed " << seed << std::endl;
  std::mt19937 random(seed);
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round, ", seed ", seed));
    ASSERT_EQ(Ctl({"clean", "--target", TargetDsn()}).exit_code, 0);
    ExecTarget("TRUNCATE public.f");
    Stage("2024-01-20T00:00:00");
    workers_.clear();
    StartWorker(absl::StrCat("r", round, "a"));
    StartWorker(absl::StrCat("r", round, "b"));
    std::unique_ptr<BackgroundProcess> copy = StartCopy();
    std::vector<std::string> killed_tasks;
    for (int kill = 0; kill < 4; ++kill) {
      // A kill lands mid-chunk: the victim is a worker whose COPY into the target is running
      // (its session reported by its heartbeat), killed at a random moment of that COPY.
      // (A killed worker's session can look active a while longer: running workers only.)
      std::string task;
      BackgroundProcess* victim = nullptr;
      ASSERT_TRUE(WaitFor([&] {
        const std::string copying = TargetValue(
            "SELECT coalesce(string_agg(t.task_id || ' ' || split_part(t.lease_holder, '#', 1), "
            "',' ORDER BY random()), '') FROM __backfill.task t JOIN pg_stat_activity a ON "
            "a.pid = t.lease_backend_pid WHERE t.worked IS NULL AND a.state = 'active' AND "
            "a.query LIKE 'COPY %FROM STDIN%'");
        for (absl::string_view pair : absl::StrSplit(copying, ',', absl::SkipEmpty())) {
          const std::string name(pair.substr(pair.find(' ') + 1));
          for (const std::unique_ptr<BackgroundProcess>& w : workers_) {
            if (absl::StrContains(w->log_path(), absl::StrCat("/", name, "-")) && w->IsRunning()) {
              task = absl::StrCat(pair.substr(0, pair.find(' ')), " ", name);
              victim = w.get();
              return true;
            }
          }
        }
        return false;
      })) << ReadFile(copy->log_path());
      // Within 20 ms: a whole chunk loaded in bulk (COPY into the bare heap, the index builds,
      // the commit) takes little more than 100 ms here, and a later kill would often land
      // after the commit, testing nothing.
      std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<>(0, 20)(random)));
      victim->Kill();
      killed_tasks.push_back(task);
      StartWorker(absl::StrCat("r", round, "-", kill));
    }
    std::optional<int> code = copy->WaitFor(180000);
    ASSERT_TRUE(code.has_value()) << ReadFile(copy->log_path());
    ASSERT_EQ(*code, 0) << ReadFile(copy->log_path());
    EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
    EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NULL"), "0");
    // Every chunk whose copy was killed was granted again and copied by that later grant,
    // unless its commit had just gone through when the kill landed; most were interrupted.
    ASSERT_FALSE(killed_tasks.empty());
    int regranted = 0;
    for (const std::string& killed : killed_tasks) {
      const std::string task = killed.substr(0, killed.find(' '));
      const std::string name = killed.substr(killed.find(' ') + 1);
      const std::string state = TargetValue(absl::StrCat(
          "SELECT CASE WHEN worked IS NULL THEN 'pending' WHEN lease_epoch > 1 THEN 'regranted' "
          "WHEN split_part(done_by, '#', 1) = '",
          name,
          "' THEN 'committed before the kill' ELSE 'unexplained' END FROM "
          "__backfill.task WHERE task_id = ",
          task));
      EXPECT_TRUE(state == "regranted" || state == "committed before the kill")
          << "task " << task << ": " << state;
      if (state == "regranted") ++regranted;
    }
    EXPECT_GE(regranted, 1);
    std::cerr << "[ INFO     ] round " << round << ": " << killed_tasks.size()
              << " workers killed mid-COPY; tasks granted more than once: "
              << TargetValue("SELECT count(*) FROM __backfill.task WHERE lease_epoch > 1")
              << std::endl;
  }
}

TEST_F(FaultTest, AStoppedWorkerWhoseLeaseWasGrantedAgainNeverCommits) {
  CreateData(1, "10 seconds", 20);
  // A unique index: the stopped worker's deleted and inserted rows would block the next
  // holder forever if its transaction were left open.
  ExecTarget("CREATE UNIQUE INDEX ON public.f (time, device)");
  // Stale copies of some rows already in the target, which the copy deletes first.
  ExecTarget(
      "INSERT INTO public.f SELECT t, d, 0 FROM generate_series(timestamptz "
      "'2024-01-01 00:00+00', '2024-01-01 00:10+00', interval '10 seconds') t, "
      "generate_series(1, 20) d");
  Stage("2024-01-02", /*replace=*/true);
  StartCoordinator();
  const std::string chunk = TargetValue(
      "SELECT format('%I.%I', target_chunk_schema, target_chunk_name) FROM __backfill.task");
  // Hold the first worker inside its copy transaction: its DELETE waits for this lock.
  std::thread lock_holder([&] {
    (void)target_->Exec(db_, absl::StrCat("BEGIN; LOCK TABLE ", chunk,
                                          " IN SHARE MODE; SELECT pg_sleep(4); COMMIT"));
  });
  ASSERT_TRUE(WaitFor([&] {
    return TargetValue(absl::StrCat("SELECT count(*) FROM pg_locks WHERE granted AND mode = "
                                    "'ShareLock' AND relation = '",
                                    chunk, "'::regclass")) == "1";
  }));
  BackgroundProcess* zombie = StartWorker("zombie");
  std::unique_ptr<BackgroundProcess> copy = StartCopy();
  ASSERT_TRUE(WaitFor([&] {
    return TargetValue(
               "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
               "'backfill-worker' AND query LIKE 'DELETE FROM%' AND wait_event_type = "
               "'Lock'") == "1";
  })) << ReadFile(zombie->log_path());
  ASSERT_TRUE(zombie->Signal(SIGSTOP));
  lock_holder.join();  // the lock is gone; the zombie's DELETE went through, uncommitted
  StartWorker("rescuer");
  std::optional<int> code = copy->WaitFor(90000);
  ASSERT_TRUE(zombie->Signal(SIGCONT));
  ASSERT_TRUE(code.has_value()) << ReadFile(copy->log_path()) << ReadFile(coordinator_->log_path());
  ASSERT_EQ(*code, 0) << ReadFile(copy->log_path());
  EXPECT_TRUE(absl::StrContains(ReadFile(coordinator_->log_path()),
                                "ended the target session of the expired lease"))
      << ReadFile(coordinator_->log_path());
  EXPECT_EQ(TargetValue("SELECT lease_epoch || ' ' || done_by FROM __backfill.task").substr(0, 10),
            "2 rescuer#");
  const std::string all = "SELECT * FROM public.f";
  EXPECT_EQ(TargetDigest(all), SourceDigest(all));
  // The zombie, woken, finds its session gone and commits nothing.
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(ReadFile(zombie->log_path()), "failed") ||
           absl::StrContains(ReadFile(zombie->log_path()), "re-granted");
  })) << ReadFile(zombie->log_path());
  EXPECT_EQ(TargetDigest(all), SourceDigest(all));
}

TEST_F(FaultTest, TheCoordinatorKilledAndRestartedMidCopyLosesNothing) {
  CreateData(20, "20 seconds", 12);
  Stage("2024-01-20T00:00:00");
  StartCoordinator();
  StartWorker("c1");
  StartWorker("c2");
  std::unique_ptr<BackgroundProcess> copy = StartCopy();
  ASSERT_TRUE(WaitFor([&] { return TasksWorked() >= 2; }));
  coordinator_->Kill();
  // backfillctl notices before the coordinator is back.
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(ReadFile(copy->log_path()), "lost the coordinator");
  })) << ReadFile(copy->log_path());
  StartCoordinator();  // same address; everything it needs is in __backfill
  std::optional<int> code = copy->WaitFor(180000);
  ASSERT_TRUE(code.has_value()) << ReadFile(copy->log_path());
  ASSERT_EQ(*code, 0) << ReadFile(copy->log_path()) << ReadFile(coordinator_->log_path());
  EXPECT_TRUE(absl::StrContains(ReadFile(copy->log_path()), "lost the coordinator"))
      << ReadFile(copy->log_path());
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NULL"), "0");
}

TEST_F(FaultTest, TheTargetRestartingMidCopyRollsBackAndRetriesItsChunks) {
  CreateData(20, "20 seconds", 12);
  Stage("2024-01-20T00:00:00");
  StartCoordinator();
  StartWorker("t1");
  StartWorker("t2");
  std::unique_ptr<BackgroundProcess> copy = StartCopy();
  ASSERT_TRUE(WaitFor([&] { return TasksWorked() >= 2; }));
  // The restart lands while chunks are being written: those copies roll back and are retried.
  std::string in_flight;
  ASSERT_TRUE(WaitFor([&] {
    in_flight = TargetValue(
        "SELECT coalesce(string_agg(t.task_id::text, ','), '') FROM __backfill.task t JOIN "
        "pg_stat_activity a ON a.pid = t.lease_backend_pid WHERE t.worked IS NULL AND a.state = "
        "'active' AND a.query LIKE 'COPY %FROM STDIN%'");
    return !in_flight.empty();
  }));
  ASSERT_TRUE(target_->Restart().ok());
  std::optional<int> code = copy->WaitFor(240000);
  ASSERT_TRUE(code.has_value()) << ReadFile(copy->log_path());
  ASSERT_EQ(*code, 0) << ReadFile(copy->log_path()) << ReadFile(coordinator_->log_path());
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  // Each chunk caught mid-COPY is done: granted again and copied by that later grant, unless
  // its COPY ended and committed in the moment before the restart took effect.
  EXPECT_EQ(TargetValue(absl::StrCat("SELECT bool_and(worked IS NOT NULL) FROM __backfill.task "
                                     "WHERE task_id IN (",
                                     in_flight, ")")),
            "t")
      << in_flight;
  std::cerr << "[ INFO     ] chunks caught mid-COPY by the restart: " << in_flight
            << "; of them granted again: "
            << TargetValue(absl::StrCat("SELECT count(*) FROM __backfill.task WHERE lease_epoch > "
                                        "1 AND task_id IN (",
                                        in_flight, ")"))
            << std::endl;
}

TEST_F(FaultTest, ALostTargetSessionMidCopyIsRetriedWhileTheSourceIsStillStreaming) {
  // One chunk big enough that its COPY is caught in flight.
  CreateData(1, "1 second", 20);
  Stage("2024-01-02");
  StartCoordinator();
  BackgroundProcess* worker = StartWorker("w");
  std::unique_ptr<BackgroundProcess> copy = StartCopy();
  std::string terminated;
  ASSERT_TRUE(WaitFor([&] {
    terminated = TargetValue(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'backfill-worker' AND query LIKE 'COPY %FROM STDIN%' "
        "AND state = 'active'");
    return terminated == "1";
  })) << ReadFile(worker->log_path());
  std::optional<int> code = copy->WaitFor(120000);
  ASSERT_TRUE(code.has_value()) << ReadFile(worker->log_path());
  ASSERT_EQ(*code, 0) << ReadFile(copy->log_path());
  EXPECT_TRUE(absl::StrContains(ReadFile(worker->log_path()), "failed"))
      << ReadFile(worker->log_path());
  const std::string all = "SELECT * FROM public.f";
  EXPECT_EQ(TargetDigest(all), SourceDigest(all));
  EXPECT_EQ(TargetValue("SELECT attempts FROM __backfill.task"), "1");
}

// --- Ctrl-C ---------------------------------------------------------------------------------

class InterruptTest : public FaultTest {
 protected:
  // Rows in the target equal the rows the finished tasks copied: nothing half-copied was
  // committed.
  void ExpectOnlyFinishedChunksCommitted() {
    EXPECT_EQ(TargetValue("SELECT count(*) FROM public.f"),
              TargetValue("SELECT coalesce(sum(rows_copied), 0) FROM __backfill.task WHERE "
                          "worked IS NOT NULL"));
  }
  void ExpectResumes() {
    ProcessResult again = Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn()});
    ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
    EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  }
  std::unique_ptr<BackgroundProcess> StartEmbeddedCopy() {
    return std::make_unique<BackgroundProcess>(
        std::vector<std::string>{BinPath("timescaledb-backfill"), "copy", "--source", SourceDsn(),
                                 "--target", TargetDsn(), "--parallelism", "2"},
        absl::StrCat(source_->dir(), "/copy-", db_, ".log"));
  }
};

TEST_F(InterruptTest, OneCtrlCInEmbeddedModeFinishesChunksInFlightAndStops) {
  CreateData(20, "20 seconds", 12);
  Stage("2024-01-20T00:00:00");
  std::unique_ptr<BackgroundProcess> copy = StartEmbeddedCopy();
  ASSERT_TRUE(WaitFor([&] { return TasksWorked() >= 2; }));
  ASSERT_TRUE(copy->Signal(SIGINT));
  std::optional<int> code = copy->WaitFor(60000);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 130) << ReadFile(copy->log_path());
  const std::string log = ReadFile(copy->log_path());
  EXPECT_TRUE(absl::StrContains(log, "Shutting down, waiting for in-progress copies")) << log;
  EXPECT_TRUE(absl::StrContains(log, "copy interrupted")) << log;
  const std::string left = TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NULL");
  EXPECT_NE(left, "0");
  // Every chunk that committed, those finished during the shutdown included, has its line,
  // and the summary counts them and what is left.
  EXPECT_TRUE(absl::StrContains(
      log, absl::StrCat("Interrupted: copied ",
                        TargetValue("SELECT count(worked) FROM "
                                    "__backfill.task"),
                        " chunks in this run (",
                        TargetValue("SELECT sum(rows_copied) FROM __backfill.task"), " rows, ")))
      << log;
  EXPECT_TRUE(absl::StrContains(
      log, absl::StrCat("; ", left, " of ", TargetValue("SELECT count(*) FROM __backfill.task"),
                        " chunks left to copy.\n")))
      << log;
  const std::string copied_chunks = TargetValue(
      "SELECT string_agg(format('%I.%I', chunk_schema, chunk_name), ',') FROM __backfill.task "
      "WHERE worked IS NOT NULL");
  for (absl::string_view chunk : absl::StrSplit(copied_chunks, ',')) {
    EXPECT_TRUE(absl::StrContains(log, absl::StrCat("] copied chunk ", chunk, " ("))) << chunk;
  }
  ExpectOnlyFinishedChunksCommitted();
  ExpectResumes();
}

TEST_F(InterruptTest, TwoCtrlCsInEmbeddedModeAbortAtOnceAndRollBack) {
  CreateData(20, "20 seconds", 12);
  Stage("2024-01-20T00:00:00");
  // Copies in flight stay in flight: every target chunk is locked, before the copy starts,
  // until after the signals.
  const std::string chunks = TargetValue(
      "SELECT string_agg(format('%I.%I', target_chunk_schema, target_chunk_name), ', ') FROM "
      "__backfill.task");
  const std::string count = TargetValue("SELECT count(*) FROM __backfill.task");
  std::thread locker([&] {
    (void)target_->Exec(db_, absl::StrCat("BEGIN; LOCK TABLE ", chunks,
                                          " IN SHARE MODE; SELECT pg_sleep(6); COMMIT"));
  });
  ASSERT_TRUE(WaitFor([&] {
    return TargetValue(
               "SELECT count(*) FROM pg_locks WHERE mode = 'ShareLock' AND granted AND "
               "locktype = 'relation' AND database = (SELECT oid FROM pg_database "
               "WHERE datname = current_database())") == count;
  }));
  std::unique_ptr<BackgroundProcess> copy = StartEmbeddedCopy();
  ASSERT_TRUE(WaitFor([&] {
    return TargetValue(
               "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
               "'timescaledb-backfill%' AND wait_event_type = 'Lock'") != "0";
  }));
  ASSERT_TRUE(copy->Signal(SIGINT));
  ASSERT_TRUE(WaitFor(
      [&] { return absl::StrContains(ReadFile(copy->log_path()), "Shutting down, waiting for"); }));
  ASSERT_TRUE(copy->Signal(SIGINT));
  std::optional<int> code = copy->WaitFor(10000);
  ASSERT_TRUE(code.has_value());
  const std::string log = ReadFile(copy->log_path());
  EXPECT_EQ(*code, 130) << log;
  EXPECT_TRUE(absl::StrContains(log, "Terminating immediately")) << log;
  // Both workers were waiting on a lock: both chunks are named as rolled back, and the
  // target agrees, at once (the abort ended their transactions before the process exited).
  const std::string held = "Aborted: rolled back the copies of 2 chunks in progress:\n";
  ASSERT_TRUE(absl::StrContains(log, held)) << log;
  std::vector<std::string> named;
  for (absl::string_view line : absl::StrSplit(log.substr(log.find(held) + held.size()), '\n')) {
    if (!absl::ConsumePrefix(&line, "  ")) break;
    named.emplace_back(line);
  }
  ASSERT_EQ(named.size(), 2u) << log;
  for (const std::string& chunk : named) {
    EXPECT_EQ(TargetValue(absl::StrCat("SELECT worked IS NULL FROM __backfill.task WHERE "
                                       "format('%I.%I', chunk_schema, chunk_name) = '",
                                       chunk, "'")),
              "t")
        << chunk;
  }
  EXPECT_EQ(TargetValue("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                        "'timescaledb-backfill%' AND state <> 'idle'"),
            "0");
  // The aborted chunks' leases were given back, without a failure or an attempt counted:
  // status right after shows nobody holding a chunk, nothing failing, no ETA.
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE lease_holder IS NOT NULL "
                        "OR last_error IS NOT NULL OR attempts > 1"),
            "0");
  ProcessResult status = Ctl({"status", "--target", TargetDsn()});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_FALSE(absl::StrContains(status.out, "Workers holding chunks")) << status.out;
  EXPECT_FALSE(absl::StrContains(status.out, "ETA")) << status.out;
  locker.join();
  ExpectOnlyFinishedChunksCommitted();
  ExpectResumes();
}

TEST_F(InterruptTest, CtrlCInClusterModeStopsNewLeasesAndWorkersFinishTheirChunks) {
  CreateData(20, "20 seconds", 12);
  Stage("2024-01-20T00:00:00");
  StartCoordinator();
  StartWorker("i1");
  StartWorker("i2");
  std::unique_ptr<BackgroundProcess> copy = StartCopy();
  ASSERT_TRUE(WaitFor([&] { return TasksWorked() >= 2; }));
  ASSERT_TRUE(copy->Signal(SIGINT));
  std::optional<int> code = copy->WaitFor(60000);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 130) << ReadFile(copy->log_path());
  // The workers finish what they hold, then get no new leases: a worker the test plays asks
  // the coordinator for one, and is told to wait however often it asks.
  GrpcCoordinatorClient probe(address_, "", *ClientCredentials(TlsFiles{}));
  v1::RegisterWorkerRequest hello;
  hello.set_worker_name("probe");
  absl::StatusOr<v1::RegisterWorkerResponse> registered = probe.RegisterWorker(hello);
  ASSERT_TRUE(registered.ok()) << registered.status();
  v1::LeaseTaskRequest ask;
  ask.set_worker_id(registered->worker_id());
  auto probe_waits = [&] {
    absl::StatusOr<v1::LeaseTaskResponse> lease = probe.LeaseTask(ask);
    EXPECT_TRUE(lease.ok()) << lease.status();
    EXPECT_NE(lease->kind(), v1::LeaseTaskResponse::TASK) << lease->task().source_chunk_name();
    return lease.ok() && lease->kind() != v1::LeaseTaskResponse::TASK;
  };
  // The coordinator notices the copy went away on its next progress tick, after the client
  // has left: a chunk granted in between is given back untouched.
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<v1::LeaseTaskResponse> lease = probe.LeaseTask(ask);
    if (!lease.ok() || lease->kind() != v1::LeaseTaskResponse::TASK) return lease.ok();
    v1::ReportTaskRequest back;
    back.set_worker_id(registered->worker_id());
    back.set_task_id(lease->task().task_id());
    back.set_lease_epoch(lease->task().lease_epoch());
    back.set_outcome(v1::ReportTaskRequest::ABORTED);
    EXPECT_TRUE(probe.ReportTask(back).ok());
    return false;
  }));
  ASSERT_TRUE(WaitFor([&] {
    return TargetValue(
               "SELECT count(*) FROM __backfill.task WHERE worked IS NULL AND "
               "lease_holder IS NOT NULL") == "0";
  }));
  const std::string worked = TargetValue("SELECT count(worked) FROM __backfill.task");
  ASSERT_TRUE(probe_waits());
  // The workers, stopped, have nothing more to commit: what was worked when they went idle is
  // all there is, and the copy had not finished.
  for (const std::unique_ptr<BackgroundProcess>& worker : workers_) {
    ASSERT_TRUE(worker->Signal(SIGTERM));
    ASSERT_TRUE(worker->WaitFor(60000).has_value()) << ReadFile(worker->log_path());
  }
  ASSERT_TRUE(probe_waits());
  EXPECT_EQ(TargetValue("SELECT count(worked) FROM __backfill.task"), worked);
  EXPECT_NE(TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NULL"), "0");
  ExpectOnlyFinishedChunksCommitted();
  ExpectResumes();
}

}  // namespace
}  // namespace backfill::testing
