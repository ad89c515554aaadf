// The distributed shape end to end: a real backfill-coordinator process and two
// backfill-worker processes, driven by backfillctl --coordinator.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proto/credentials.h"
#include "tests/integration/fixture.h"
#include "worker/grpc_coordinator_client.h"

namespace backfill::testing {
namespace {

class ClusterTest : public BackfillTest {
 protected:
  // Waits until `log` contains `text`; false after `seconds`.
  static bool WaitForLog(const std::string& log, const std::string& text, int seconds) {
    for (int i = 0; i < seconds * 20; ++i) {
      if (absl::StrContains(ReadFile(log), text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
};

TEST_F(ClusterTest, CoordinatorAndTwoWorkerProcessesCopyEveryRowBelowUntilExactlyOnce) {
  CreateMetrics(20);
  // Dual writes at and after --until, in the cut chunk and in later ones.
  ExecTarget(
      "INSERT INTO public.metrics VALUES ('2024-01-15 06:00+00', 100, 1, 'dual a'), "
      "('2024-01-15 23:59+00', 101, 2, 'dual b'), ('2024-01-19 00:00+00', 102, 3, 'dual c')");
  const std::string below = "SELECT * FROM public.metrics WHERE time < '2024-01-15 06:00+00'";
  const std::string at_or_after =
      "SELECT * FROM public.metrics WHERE time >= '2024-01-15 06:00+00'";
  const std::string versions =
      "SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY time) FROM public.metrics "
      "WHERE time >= '2024-01-15 06:00+00'";
  const std::string dual_before = TargetDigest(at_or_after);
  const std::string versions_before = TargetValue(versions);

  const int port = FreeLoopbackPort();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  const std::string dir = source_->dir();
  BackgroundProcess coordinator({BinPath("backfill-coordinator"), "--listen", address,
                                 "--lease-timeout-ms", "5000", "--heartbeat-ms", "500"},
                                dir + "/coordinator-" + db_ + ".log");
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "listening on port", 30))
      << ReadFile(coordinator.log_path());
  BackgroundProcess worker1({BinPath("backfill-worker"), "--coordinator", address, "--name", "w1"},
                            dir + "/worker1-" + db_ + ".log");
  BackgroundProcess worker2({BinPath("backfill-worker"), "--coordinator", address, "--name", "w2"},
                            dir + "/worker2-" + db_ + ".log");

  // --coordinator after the command name, like every flag.
  ProcessResult staged = Ctl({"stage", "--coordinator", address, "--source", SourceDsn(),
                              "--target", TargetDsn(), "--until", "2024-01-15T06:00:00"},
                             {}, "backfillctl");
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  EXPECT_TRUE(
      absl::StrContains(staged.out, "staged 15 chunks of public.metrics (1 cut at --until)"))
      << staged.out;

  ProcessResult copied =
      Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn(), "--coordinator", address}, {},
          "backfillctl");
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err << ReadFile(worker1.log_path())
                                 << ReadFile(worker2.log_path());
  EXPECT_TRUE(absl::StrContains(copied.out, "Copied 15 of 15 chunks")) << copied.out;

  EXPECT_EQ(SourceDigest(below).substr(0, 6), "20520|");  // 14.25 days of minutes
  EXPECT_EQ(TargetDigest(below), SourceDigest(below));
  EXPECT_EQ(TargetDigest(at_or_after), dual_before);
  EXPECT_EQ(TargetValue(versions), versions_before);
  // Every chunk was copied by one of the two worker processes (a done task names who did it).
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NOT NULL AND "
                        "(done_by LIKE 'w1#%' OR done_by LIKE 'w2#%') AND lease_holder IS NULL"),
            "15");

  ProcessResult verified =
      Ctl({"verify", "--coordinator", address, "--source", SourceDsn(), "--target", TargetDsn()},
          {}, "backfillctl");
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_TRUE(absl::StrContains(verified.out, "Verified 15 chunks: 0 differ.")) << verified.out;
  // Verification too was leased to the worker processes, chunk by chunk.
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE verified IS NOT NULL AND "
                        "verify_matches AND (done_by LIKE 'w1#%' OR done_by LIKE 'w2#%')"),
            "15");
  ProcessResult cleaned =
      Ctl({"clean", "--coordinator", address, "--target", TargetDsn()}, {}, "backfillctl");
  EXPECT_EQ(cleaned.exit_code, 0) << cleaned.err;

  // SIGTERM: workers and coordinator stop cleanly.
  ASSERT_TRUE(worker1.Signal(SIGTERM));
  ASSERT_TRUE(worker2.Signal(SIGTERM));
  EXPECT_EQ(worker1.Wait(), 0) << ReadFile(worker1.log_path());
  EXPECT_EQ(worker2.Wait(), 0) << ReadFile(worker2.log_path());
  ASSERT_TRUE(coordinator.Signal(SIGTERM));
  EXPECT_EQ(coordinator.Wait(), 0) << ReadFile(coordinator.log_path());
  EXPECT_TRUE(absl::StrContains(ReadFile(coordinator.log_path()), "registered"));
}

TEST_F(ClusterTest, CtlReportsAnUnreachableCoordinatorClearly) {
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  ProcessResult r = Ctl({"clean", "--target", TargetDsn(), "--coordinator", address});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(
      absl::StartsWith(r.err, absl::StrCat("error: cannot reach the coordinator at ", address)))
      << r.err;
}

TEST_F(ClusterTest, EveryCallNeedsTheBearerTokenAndRefusalsNeverLogIt) {
  CreateMetrics(2);
  const std::string token = "tok-Abc123-never-logged";
  const std::string token_file = absl::StrCat(source_->dir(), "/token-", db_);
  { std::ofstream(token_file) << token << "\n"; }
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  const std::string dir = source_->dir();
  BackgroundProcess coordinator({BinPath("backfill-coordinator"), "--listen", address},
                                dir + "/coordinator-token-" + db_ + ".log",
                                {{"BACKFILL_TOKEN", token}});
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "listening on port", 30));
  BackgroundProcess anonymous({BinPath("backfill-worker"), "--coordinator", address},
                              dir + "/anonymous-" + db_ + ".log");
  BackgroundProcess wrong({BinPath("backfill-worker"), "--coordinator", address},
                          dir + "/wrong-" + db_ + ".log", {{"BACKFILL_TOKEN", "guess-w0rd"}});
  BackgroundProcess good(
      {BinPath("backfill-worker"), "--coordinator", address, "--token-file", token_file},
      dir + "/good-" + db_ + ".log");
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "no bearer token", 30));
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "wrong bearer token", 30));
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "registered", 30));

  ProcessResult refused =
      Ctl({"clean", "--coordinator", address, "--target", TargetDsn()}, {}, "backfillctl");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(refused.err,
            "error: the coordinator refused the request: missing or wrong bearer token (give "
            "every program the same --token-file or BACKFILL_TOKEN)\n");
  ProcessResult staged =
      Ctl({"stage", "--coordinator", address, "--token-file", token_file, "--source", SourceDsn(),
           "--target", TargetDsn(), "--until", "2030-01-01"},
          {}, "backfillctl");
  ASSERT_EQ(staged.exit_code, 0) << staged.err;
  ProcessResult copied =
      Ctl({"copy", "--coordinator", address, "--source", SourceDsn(), "--target", TargetDsn()},
          {{"BACKFILL_TOKEN", token}}, "backfillctl");
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  EXPECT_EQ(TargetDigest("SELECT * FROM public.metrics"),
            SourceDigest("SELECT * FROM public.metrics"));
  for (BackgroundProcess* p : {&anonymous, &wrong, &good}) p->Signal(SIGTERM);
  coordinator.Signal(SIGTERM);
  coordinator.Wait();
  const std::string log = ReadFile(coordinator.log_path());
  EXPECT_FALSE(absl::StrContains(log, token)) << log;
  EXPECT_FALSE(absl::StrContains(log, "guess-w0rd")) << log;
}

TEST_F(ClusterTest, MutualTlsBetweenEveryProgramAndRefusalsWithoutIt) {
  CreateMetrics(2);
  const std::string certs = absl::StrCat(source_->dir(), "/certs-", db_);
  std::filesystem::create_directories(certs);
  MakeCertificates(certs);
  if (HasFatalFailure()) return;
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  BackgroundProcess coordinator(
      {BinPath("backfill-coordinator"), "--listen", address, "--tls-cert", certs + "/server.pem",
       "--tls-key", certs + "/server.key", "--tls-client-ca", certs + "/ca.pem"},
      certs + "/coordinator.log");
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "listening on port", 30))
      << ReadFile(coordinator.log_path());
  const std::vector<std::string> client_tls = {"--tls-ca",   certs + "/ca.pem",
                                               "--tls-cert", certs + "/client.pem",
                                               "--tls-key",  certs + "/client.key"};
  std::vector<std::string> worker_argv = {BinPath("backfill-worker"), "--coordinator", address};
  worker_argv.insert(worker_argv.end(), client_tls.begin(), client_tls.end());
  BackgroundProcess worker(worker_argv, certs + "/worker.log");

  auto stage = [&](const std::vector<std::string>& tls) {
    std::vector<std::string> args = {"stage",     "--coordinator", address,
                                     "--source",  SourceDsn(),     "--target",
                                     TargetDsn(), "--until",       "2030-01-01"};
    args.insert(args.end(), tls.begin(), tls.end());
    return Ctl(args, {}, "backfillctl");
  };
  // Plaintext, a CA that did not sign the server, and no client certificate: all refused.
  for (const std::vector<std::string>& tls :
       {std::vector<std::string>{},
        std::vector<std::string>{"--tls-ca", certs + "/other-ca.pem", "--tls-cert",
                                 certs + "/client.pem", "--tls-key", certs + "/client.key"},
        std::vector<std::string>{"--tls-ca", certs + "/ca.pem"}}) {
    ProcessResult r = stage(tls);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_TRUE(absl::StartsWith(r.err, "error: cannot reach the coordinator at")) << r.err;
  }
  EXPECT_EQ(TargetValue("SELECT count(*) FROM pg_namespace WHERE nspname = '__backfill'"), "0");

  ProcessResult staged = stage(client_tls);
  ASSERT_EQ(staged.exit_code, 0) << staged.err;
  std::vector<std::string> copy_args = {"copy",      "--coordinator", address,    "--source",
                                        SourceDsn(), "--target",      TargetDsn()};
  copy_args.insert(copy_args.end(), client_tls.begin(), client_tls.end());
  ProcessResult copied = Ctl(copy_args, {}, "backfillctl");
  ASSERT_EQ(copied.exit_code, 0) << copied.err << ReadFile(worker.log_path());
  EXPECT_EQ(TargetDigest("SELECT * FROM public.metrics"),
            SourceDigest("SELECT * FROM public.metrics"));
  ProcessResult bad_file = Ctl({"clean", "--coordinator", address, "--target", TargetDsn(),
                                "--tls-ca", certs + "/missing.pem"},
                               {}, "backfillctl");
  EXPECT_EQ(bad_file.exit_code, 1);
  EXPECT_EQ(bad_file.err,
            absl::StrCat("error: cannot read the TLS CA file ", certs, "/missing.pem\n"));
}

TEST_F(ClusterTest, HostileOrConfusedRpcsGetClearErrorsAndChangeNothing) {
  CreateMetrics(3);
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  const std::string dir = source_->dir();
  BackgroundProcess coordinator({BinPath("backfill-coordinator"), "--listen", address},
                                dir + "/coordinator-hostile-" + db_ + ".log");
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "listening on port", 30));
  BackgroundProcess worker({BinPath("backfill-worker"), "--coordinator", address, "--name", "w"},
                           dir + "/worker-hostile-" + db_ + ".log");
  ASSERT_EQ(Ctl({"stage", "--coordinator", address, "--source", SourceDsn(), "--target",
                 TargetDsn(), "--until", "2030-01-01"})
                .exit_code,
            0);
  ASSERT_EQ(
      Ctl({"copy", "--coordinator", address, "--source", SourceDsn(), "--target", TargetDsn()})
          .exit_code,
      0);
  const std::string state_query =
      "SELECT string_agg(concat_ws('|', task_id, lease_epoch, lease_holder, done_by, attempts, "
      "last_error, worked IS NOT NULL), ',' ORDER BY task_id) FROM __backfill.task";
  const std::string before = TargetValue(state_query);
  const std::string holder = TargetValue("SELECT done_by FROM __backfill.task LIMIT 1");
  const std::string task = TargetValue("SELECT task_id FROM __backfill.task LIMIT 1");
  const std::string epoch =
      TargetValue(absl::StrCat("SELECT lease_epoch FROM __backfill.task WHERE task_id = ", task));
  int64_t task_id = 0, lease_epoch = 0;
  ASSERT_TRUE(absl::SimpleAtoi(task, &task_id));
  ASSERT_TRUE(absl::SimpleAtoi(epoch, &lease_epoch));

  GrpcCoordinatorClient client(address, "", *ClientCredentials(TlsFiles{}));
  auto report = [&](const std::string& worker, int64_t id, int64_t at,
                    v1::ReportTaskRequest::Outcome outcome, const std::string& error = "") {
    v1::ReportTaskRequest r;
    r.set_worker_id(worker);
    r.set_task_id(id);
    r.set_lease_epoch(at);
    r.set_outcome(outcome);
    r.set_error(error);
    return client.ReportTask(r);
  };
  // Another worker reporting this task, the holder at a stale epoch, an unknown task.
  absl::Status s = report("intruder", task_id, lease_epoch, v1::ReportTaskRequest::FAILED, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), absl::StrCat("task ", task_id,
                                      " is not leased to worker intruder at "
                                      "epoch ",
                                      lease_epoch, "; nothing changed"));
  EXPECT_EQ(report(holder, task_id, lease_epoch + 7, v1::ReportTaskRequest::FAILED, "x").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(report(holder, task_id, lease_epoch - 1, v1::ReportTaskRequest::COPIED).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(report(holder, 424242, 1, v1::ReportTaskRequest::COPIED).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(report("", task_id, lease_epoch, v1::ReportTaskRequest::COPIED).code(),
            absl::StatusCode::kInvalidArgument);
  // A message over the size limit is refused before it reaches the coordinator's logic.
  EXPECT_EQ(
      report(holder, task_id, lease_epoch, v1::ReportTaskRequest::FAILED, std::string(5 << 20, 'x'))
          .code(),
      absl::StatusCode::kResourceExhausted);
  // A stale heartbeat learns it holds nothing; a lease request without a worker is refused.
  v1::HeartbeatRequest beat;
  beat.set_worker_id(holder);
  beat.set_task_id(task_id);
  beat.set_lease_epoch(lease_epoch + 1);
  absl::StatusOr<v1::HeartbeatResponse> hb = client.Heartbeat(beat);
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_FALSE(hb->lease_valid());
  EXPECT_EQ(client.LeaseTask(v1::LeaseTaskRequest()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TargetValue(state_query), before);
  EXPECT_EQ(TargetDigest("SELECT * FROM public.metrics"),
            SourceDigest("SELECT * FROM public.metrics"));
}

TEST_F(ClusterTest, TheCoordinatorRefusesAnOpenAddressWithoutAToken) {
  ProcessResult r = RunProcess(
      {BinPath("backfill-coordinator"), "--listen", absl::StrCat("0.0.0.0:", FreeLoopbackPort())},
      {{"BACKFILL_TOKEN", ""}}, 10);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StartsWith(r.err, "backfill-coordinator: refusing to listen on 0.0.0.0:"))
      << r.err;
}

TEST_F(ClusterTest, PasswordsAppearInNoLogNoOutputAndNoProcessList) {
  CreateMetrics(6);
  const std::string password = "Pw-Sekrit-42";
  // The test clusters trust loopback, so any password is accepted (and unused).
  const std::string source = absl::StrCat(SourceDsn(), " password=", password);
  const std::string target =
      absl::StrCat("postgresql://postgres:", password, "@127.0.0.1:", target_->port(), "/", db_);
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  const std::string dir = source_->dir();
  BackgroundProcess coordinator({BinPath("backfill-coordinator"), "--listen", address, "-v", "-v"},
                                dir + "/coordinator-pw-" + db_ + ".log");
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "listening on port", 30));
  ProcessResult staged = Ctl({"stage", "-v", "--coordinator", address, "--source", source,
                              "--target", target, "--until", "2024-01-05"});
  ASSERT_EQ(staged.exit_code, 0) << staged.err;
  // No worker yet: the copy waits, so its process list entry can be read at leisure.
  BackgroundProcess copy({BinPath("backfillctl"), "copy", "-v", "--coordinator", address,
                          "--source", source, "--target", target},
                         dir + "/copy-pw-" + db_ + ".log");
  ASSERT_TRUE(WaitForLog(copy.log_path(), "Copying", 30)) << ReadFile(copy.log_path());
  // Once a program has parsed its flags, its process list entry has no password. (Between
  // exec and parsing, a few milliseconds, argv is what the caller passed: PG* variables or a
  // password file keep it off argv entirely.)
  auto expect_scrubbed = [&](pid_t pid) {
    const std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    EXPECT_NE(cmdline.find("--source"), std::string::npos) << "pid " << pid;
    EXPECT_EQ(cmdline.find(password), std::string::npos) << "pid " << pid;
  };
  expect_scrubbed(copy.pid());
  BackgroundProcess worker({BinPath("backfill-worker"), "--coordinator", address, "--source",
                            source, "--target", target, "-v", "-v"},
                           dir + "/worker-pw-" + db_ + ".log");
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "registered", 30));
  expect_scrubbed(worker.pid());
  ASSERT_EQ(copy.Wait(), 0) << ReadFile(copy.log_path());
  // A failure that names the database must not show it either.
  ProcessResult failed =
      Ctl({"verify", "--source", absl::StrCat("host=127.0.0.1 port=1 password=", password),
           "--target", target});
  EXPECT_EQ(failed.exit_code, 1);
  worker.Signal(SIGTERM);
  worker.Wait();
  coordinator.Signal(SIGTERM);
  coordinator.Wait();
  for (const std::string& text :
       {ReadFile(coordinator.log_path()), ReadFile(worker.log_path()), ReadFile(copy.log_path()),
        staged.out + staged.err, failed.out + failed.err}) {
    EXPECT_EQ(text.find(password), std::string::npos) << text;
  }
  EXPECT_TRUE(absl::StrContains(ReadFile(copy.log_path()), "Copied 4 of 4 chunks"));
}

}  // namespace
}  // namespace backfill::testing
