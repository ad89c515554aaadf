// Workers split in two: a source-side worker next to the source (backfill-worker
// --source-side) holds each task's source session and streams its COPY data compressed to the
// target-side worker, which holds the target transaction as always. Here on loopback, as
// processes; tests/integration/wan_test.cc runs them across a slow link between namespaces.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/pg.h"
#include "proto/credentials.h"
#include "tests/integration/fixture.h"
#include "worker/source_side_server.h"
#include "worker/source_side_session.h"

namespace backfill::testing {
namespace {

constexpr char kBelow[] = "SELECT * FROM public.metrics WHERE time < '2024-01-09 12:00+00'";
constexpr char kToken[] = "source-side-test-token";

class SourceSideTest : public BackfillTest {
 protected:
  // public.metrics on the source, 10 daily chunks, the first four compressed (the third with
  // rows inserted after, so partial); the target restored from it by the README recipe,
  // then a dual-written row after --until.
  void CreateSource() {
    ExecSource(
        "CREATE TABLE public.metrics (time timestamptz NOT NULL, device int, "
        "value double precision, note text);"
        "SELECT create_hypertable('public.metrics', 'time', "
        "chunk_time_interval => interval '1 day');"
        "ALTER TABLE public.metrics SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'device');"
        "INSERT INTO public.metrics SELECT t, i % 10, i * 0.5, 'row ' || (i % 100) "
        "FROM generate_series(timestamptz '2024-01-01 00:00+00', '2024-01-10 23:59:55+00', "
        "interval '5 seconds') WITH ORDINALITY AS g(t, i);"
        "SELECT compress_chunk(c) FROM show_chunks('public.metrics', "
        "older_than => timestamptz '2024-01-05') c;"
        "INSERT INTO public.metrics VALUES ('2024-01-03 12:00:01+00', 99, 1, 'late')");
    PrepareTargetByReadmeRecipe();
    ExecTarget("INSERT INTO public.metrics VALUES ('2024-01-10 00:00+00', 100, 1, 'dual')");
  }

  std::string Log(const std::string& name) const {
    return absl::StrCat(source_->dir(), "/", name, "-", db_, ".log");
  }
  std::map<std::string, std::string> Env() const { return {{"BACKFILL_TOKEN", kToken}}; }

  // TLS arguments of each program, when a test sets them: the coordinator's, the
  // source-side worker's (a server toward the workers, a client toward the coordinator) and
  // those of the target-side workers and backfillctl.
  std::vector<std::string> coordinator_tls_, source_side_tls_, client_tls_;

  static std::vector<std::string> With(std::vector<std::string> args,
                                       const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }

  std::unique_ptr<BackgroundProcess> StartCoordinator(const std::string& address) {
    auto coordinator = std::make_unique<BackgroundProcess>(
        With({BinPath("backfill-coordinator"), "--listen", address, "--lease-timeout-ms", "3000",
              "--heartbeat-ms", "300"},
             coordinator_tls_),
        Log("coordinator"), Env());
    EXPECT_TRUE(WaitFor([&] {
      return absl::StrContains(ReadFile(coordinator->log_path()), "listening on port");
    })) << ReadFile(coordinator->log_path());
    return coordinator;
  }
  // A source-side worker reading `source` (default: the source).
  std::unique_ptr<BackgroundProcess> StartSourceSide(const std::string& coordinator,
                                                     const std::string& name,
                                                     std::string source = "") {
    if (source.empty()) source = SourceDsn();
    const std::string listen = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
    auto worker = std::make_unique<BackgroundProcess>(
        With({BinPath("backfill-worker"), "--source-side", "--listen", listen, "--coordinator",
              coordinator, "--name", name, "--source", source, "-v"},
             source_side_tls_),
        Log(name), Env());
    EXPECT_TRUE(WaitFor([&] {
      return absl::StrContains(ReadFile(worker->log_path()), "registered; target-side workers");
    })) << ReadFile(worker->log_path());
    return worker;
  }
  // A target-side worker whose own way to the source leads nowhere: every source statement
  // it runs goes through a source-side worker, or fails.
  std::unique_ptr<BackgroundProcess> StartTargetSide(const std::string& coordinator,
                                                     const std::string& name) {
    return std::make_unique<BackgroundProcess>(
        With({BinPath("backfill-worker"), "--coordinator", coordinator, "--name", name, "--source",
              "host=127.0.0.1 port=1 dbname=unreachable connect_timeout=2", "-v"},
             client_tls_),
        Log(name), Env());
  }
  // Source-side workers s1 and s2, one target-side worker, and a copy slow enough (the
  // link's bytes, compressed, at 32 KiB/s) that a chunk is mid-copy for seconds: returns once
  // the one target-side worker's latest lease, the chunk in progress, reads through s1 and
  // streams into the target.
  struct SlowCopy {
    std::string address;
    std::unique_ptr<BackgroundProcess> coordinator, s1, s2, target_side, copy;
  };
  void StartSlowCopyThroughS1(SlowCopy* run) {
    CreateSource();
    run->address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
    run->coordinator = StartCoordinator(run->address);
    run->s1 = StartSourceSide(run->address, "s1");
    run->s2 = StartSourceSide(run->address, "s2");
    run->target_side = StartTargetSide(run->address, "t1");
    ProcessResult staged = CtlAt(run->address, "stage", {"--until", "2024-01-09T12:00:00Z"});
    ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
    run->copy = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{BinPath("backfillctl"), "copy", "--coordinator", run->address,
                                 "--source", SourceDsn(), "--target", TargetDsn(), "--max-rate",
                                 "32k"},
        Log("copy"), Env());
    ASSERT_TRUE(WaitFor([&] {
      const std::string log = ReadFile(run->coordinator->log_path());
      const size_t last = log.rfind("leased chunk ");
      if (last == std::string::npos) return false;
      const std::string lease = log.substr(last, log.find('\n', last) - last);
      return absl::StrContains(lease, "reading through source-side worker s1#") &&
             TargetValue(
                 "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
                 "query LIKE 'COPY %FROM STDIN%'") != "0";
    })) << ReadFile(run->coordinator->log_path());
  }

  // A source-side worker's service in this process, reading the source.
  std::unique_ptr<SourceSideServer> ServeInProcess(const TlsFiles& tls = {}) {
    absl::StatusOr<std::unique_ptr<SourceSideServer>> server = SourceSideServer::Start(
        "127.0.0.1:0", kToken, tls, SourceSideOptions{.source = SourceDsn()});
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }
  // A session through `server` as task 1's target-side worker would open it.
  static absl::StatusOr<std::unique_ptr<SourceSideSession>> OpenThrough(
      const SourceSideServer& server, const TlsFiles& tls = {}) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = ClientCredentials(tls);
    if (!credentials.ok()) return credentials.status();
    SourceSideConnector connector(kToken, *credentials);
    v1::SourceOpen open;
    open.set_task_id(1);
    open.set_lease_epoch(1);
    open.set_worker_id("t1");
    return connector.Open(absl::StrCat("127.0.0.1:", server.port()), open, nullptr);
  }

  ProcessResult CtlAt(const std::string& coordinator, const std::string& command,
                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {command,     "--coordinator", coordinator, "--source",
                                     SourceDsn(), "--target",      TargetDsn()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ctl(With(args, client_tls_), Env(), "backfillctl");
  }
  // The COPY data that crossed the link and what it held, summed over a worker's log lines
  // ("task N: L bytes crossed the link for R bytes of COPY data").
  static std::pair<int64_t, int64_t> LinkBytes(const std::string& log) {
    int64_t link = 0, raw = 0;
    for (absl::string_view line : absl::StrSplit(log, '\n')) {
      const size_t at = line.find(" bytes crossed the link for ");
      if (at == absl::string_view::npos) continue;
      const size_t start = line.rfind(' ', at - 1) + 1;
      int64_t l = 0, r = 0;
      absl::string_view rest = line.substr(at + 28);
      if (absl::SimpleAtoi(line.substr(start, at - start), &l) &&
          absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &r)) {
        link += l;
        raw += r;
      }
    }
    return {link, raw};
  }
};

TEST_F(SourceSideTest, CopiesAndVerifiesEveryChunkThroughASourceSideWorkerExactlyOnce) {
  CreateSource();
  // One row of 3.2 MB in a plain chunk: larger than a block on the link.
  ExecSource(
      "INSERT INTO public.metrics SELECT '2024-01-08 12:00:00.5+00', 98, 2, "
      "string_agg(md5(i::text), '') FROM generate_series(1, 100000) i");
  const std::string dual = "SELECT * FROM public.metrics WHERE time >= '2024-01-09 12:00+00'";
  const std::string dual_before = TargetDigest(dual);
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  std::unique_ptr<BackgroundProcess> coordinator = StartCoordinator(address);
  std::unique_ptr<BackgroundProcess> source_side = StartSourceSide(address, "s1");
  std::unique_ptr<BackgroundProcess> target_side = StartTargetSide(address, "t1");

  ProcessResult staged = CtlAt(address, "stage", {"--until", "2024-01-09T12:00:00Z"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = CtlAt(address, "copy");
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err << ReadFile(target_side->log_path())
                                 << ReadFile(source_side->log_path());
  EXPECT_TRUE(absl::StrContains(copied.out, "Copied 9 of 9 chunks")) << copied.out;
  // Every round trip across the link costs a chunk its latency (40 ms and more between
  // regions): a plain chunk's session costs 5 (the open, which checks the version, its
  // state, its columns and invalidations, the COPY; BEGIN and ROLLBACK ride along), a
  // compressed one's at most 10.
  {
    std::vector<int> trips;
    for (absl::string_view line : absl::StrSplit(ReadFile(target_side->log_path()), '\n')) {
      const size_t at = line.find(" round trips; ");
      int n = 0;
      if (at != absl::string_view::npos &&
          absl::SimpleAtoi(
              line.substr(line.rfind(' ', at - 1) + 1, at - line.rfind(' ', at - 1) - 1), &n)) {
        trips.push_back(n);
      }
    }
    ASSERT_EQ(trips.size(), 9u) << ReadFile(target_side->log_path());
    EXPECT_EQ(std::count_if(trips.begin(), trips.end(), [](int n) { return n <= 5; }), 5)
        << absl::StrJoin(trips, " ");
    EXPECT_LE(*std::max_element(trips.begin(), trips.end()), 10) << absl::StrJoin(trips, " ");
  }
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  EXPECT_EQ(TargetDigest(dual), dual_before);
  // Compressed chunks went across as their batches, still compressed on the target.
  EXPECT_EQ(TargetValue("SELECT count(*) FROM timescaledb_information.chunks WHERE "
                        "hypertable_name = 'metrics' AND is_compressed"),
            "4");
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE copy_message LIKE "
                        "'%(compressed batches as they are)%'"),
            "4");
  EXPECT_EQ(TargetValue("SELECT length(note) FROM public.metrics WHERE device = 98"), "3200000");
  // Every lease read through the source-side worker, and its COPY data crossed compressed.
  const std::string coordinator_log = ReadFile(coordinator->log_path());
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE done_by LIKE 't1#%'"), "9");
  EXPECT_TRUE(absl::StrContains(coordinator_log, "reading through source-side worker s1#"))
      << coordinator_log;
  EXPECT_FALSE(absl::StrContains(coordinator_log, "was lost")) << coordinator_log;
  const auto [link, raw] = LinkBytes(ReadFile(target_side->log_path()));
  EXPECT_GT(raw, 0) << ReadFile(target_side->log_path());
  EXPECT_LT(link * 3, raw) << "link " << link << " raw " << raw;

  ProcessResult verified = CtlAt(address, "verify", {"--row-hash"});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_TRUE(absl::StrContains(verified.out, "Verified 9 chunks: 0 differ.")) << verified.out;

  // SIGTERM: each stops cleanly.
  ASSERT_TRUE(source_side->Signal(SIGTERM));
  EXPECT_EQ(source_side->Wait(), 0) << ReadFile(source_side->log_path());
  ASSERT_TRUE(target_side->Signal(SIGTERM));
  EXPECT_EQ(target_side->Wait(), 0) << ReadFile(target_side->log_path());
  ASSERT_TRUE(coordinator->Signal(SIGTERM));
  EXPECT_EQ(coordinator->Wait(), 0);
}

// The workers that dial a source-side worker hold the token, not the source's credentials:
// through it they read as a copy does, and cannot write, change the session's read-only
// mode or have the source write a file, whatever they send. The source user here is a
// superuser, so only the source-side worker stands in the way.
TEST_F(SourceSideTest, ThroughASourceSideWorkerTheOtherWorkersReadAndNothingMore) {
  ExecSource("CREATE TABLE public.guard (v int); INSERT INTO public.guard VALUES (1), (2)");
  std::unique_ptr<SourceSideServer> server = ServeInProcess();
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::unique_ptr<SourceSideSession>> opened = OpenThrough(*server);
  ASSERT_TRUE(opened.ok()) << opened.status();
  pg::Queryable& session = **opened;
  const auto refused = [](const absl::Status& status) {
    return status.code() == absl::StatusCode::kInvalidArgument &&
           absl::StrContains(status.message(), "the source-side worker runs no");
  };
  // A script's answer comes with the next request's (SourceSideSession::ExecScript).
  const auto script_refused = [&](const std::string& script) {
    return session.ExecScript(script).ok() && refused(session.Exec("SELECT 1").status());
  };
  const auto copy_out = [&session](const std::string& sql) -> absl::StatusOr<std::string> {
    if (absl::Status s = session.StartCopyOut(sql); !s.ok()) return s;
    std::string data;
    for (;;) {
      absl::StatusOr<bool> more = session.ReadCopyOut(&data, 1 << 16);
      if (!more.ok()) return more.status();
      if (!*more) return data;
    }
  };

  // What a copy does works: a snapshot, queries with parameters, both forms of COPY.
  ASSERT_TRUE(session.ExecScript("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").ok());
  absl::StatusOr<pg::Result> count =
      session.Exec("SELECT count(*) FROM public.guard WHERE v >= $1", {"1"});
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->Get(0, 0), "2");
  absl::StatusOr<std::string> table = copy_out("COPY public.guard (v) TO STDOUT (FORMAT text)");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(*table, "1\n2\n");
  absl::StatusOr<std::string> query =
      copy_out("COPY (SELECT v FROM public.guard WHERE v > 1) TO STDOUT (FORMAT text)");
  ASSERT_TRUE(query.ok()) << query.status();
  EXPECT_EQ(*query, "2\n");
  // Refused before the source sees it: the transaction goes on.
  EXPECT_TRUE(refused(session.Exec("SET TRANSACTION READ WRITE").status()));
  EXPECT_TRUE(refused(session.Exec("INSERT INTO public.guard VALUES (3)").status()));
  // A carriage return ends a -- comment for PostgreSQL: what follows is no comment.
  EXPECT_TRUE(refused(session.Exec("--\rSET TRANSACTION READ WRITE /*\nSELECT */").status()));
  EXPECT_TRUE(script_refused("COMMIT; INSERT INTO public.guard VALUES (3)"));
  ASSERT_TRUE(session.ExecScript("COMMIT").ok());

  // A fresh read-only transaction cannot be made read-write by a query either.
  ASSERT_TRUE(session.ExecScript("BEGIN READ ONLY").ok());
  absl::Status flip =
      session.Exec("SELECT set_config('transaction_read_only', 'off', true)").status();
  EXPECT_FALSE(flip.ok());
  EXPECT_TRUE(pg::SqlState(flip).has_value()) << flip;  // the source said no
  ASSERT_TRUE(session.ExecScript("ROLLBACK").ok());
  EXPECT_TRUE(script_refused("BEGIN"));
  EXPECT_TRUE(script_refused("BEGIN READ WRITE"));

  // Outside a transaction each statement gets a read-only one of its own, whatever the
  // session's default was set to.
  ASSERT_TRUE(
      session.Exec("SELECT set_config('default_transaction_read_only', 'off', false)").ok());
  absl::Status write =
      session.Exec("WITH w AS (INSERT INTO public.guard VALUES (3) RETURNING v) SELECT * FROM w")
          .status();
  EXPECT_EQ(pg::SqlState(write), "25006") << write;  // read_only_sql_transaction
  absl::Status copy_write =
      copy_out(
          "COPY (WITH w AS (DELETE FROM public.guard RETURNING v) SELECT v FROM w) TO STDOUT "
          "(FORMAT text)")
          .status();
  EXPECT_EQ(pg::SqlState(copy_write), "25006") << copy_write;

  // A COPY that would write a file: one whose query closes the parenthesis early, one that
  // names a file, one that reads a program.
  const std::string file = absl::StrCat(source_->dir(), "/guard-", db_, ".out");
  absl::Status early = copy_out(absl::StrCat("COPY (SELECT v FROM public.guard) TO '", file,
                                             "' (FORMAT text) -- ) TO STDOUT (FORMAT text)"))
                           .status();
  EXPECT_FALSE(early.ok());
  EXPECT_TRUE(pg::SqlState(early).has_value()) << early;  // the query alone does not parse
  EXPECT_TRUE(refused(copy_out(absl::StrCat("COPY public.guard (v) TO '", file, "'")).status()));
  EXPECT_TRUE(
      refused(copy_out("COPY public.guard (v) FROM PROGRAM 'true' (FORMAT text)").status()));
  EXPECT_FALSE(std::filesystem::exists(file)) << file;

  // The session still reads, and nothing on the source changed.
  absl::StatusOr<pg::Result> after = session.Exec(
      "SELECT string_agg(v::text, ',' ORDER BY v) "
      "FROM public.guard");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->Get(0, 0), "1,2");
  EXPECT_EQ(SourceValue("SELECT string_agg(v::text, ',' ORDER BY v) FROM public.guard"), "1,2");
}

// TLS both ways on the link: a source-side worker serves only workers whose client
// certificates its CA signed, and they trust only a source-side worker their CA signed. Then
// the whole flow with TLS everywhere: the source-side worker's one certificate serves the
// workers and identifies it to the coordinator.
TEST_F(SourceSideTest, MutualTlsOnTheLinkAndACopyWithTlsEverywhere) {
  CreateSource();
  const std::string certs = absl::StrCat(source_->dir(), "/certs-", db_);
  std::filesystem::create_directories(certs);
  MakeCertificates(certs);
  if (HasFatalFailure()) return;
  const TlsFiles server_files{
      .ca = certs + "/ca.pem", .cert = certs + "/server.pem", .key = certs + "/server.key"};
  std::unique_ptr<SourceSideServer> server = ServeInProcess(server_files);
  ASSERT_NE(server, nullptr);
  const auto open = [&](const TlsFiles& files) -> absl::Status {
    absl::StatusOr<std::unique_ptr<SourceSideSession>> session = OpenThrough(*server, files);
    if (!session.ok()) return session.status();
    return (*session)->Exec("SELECT 1").status();
  };
  EXPECT_TRUE(
      open({.ca = certs + "/ca.pem", .cert = certs + "/client.pem", .key = certs + "/client.key"})
          .ok());
  for (const TlsFiles& wrong : {
           TlsFiles{},                                                // plaintext
           TlsFiles{.ca = certs + "/ca.pem", .cert = "", .key = ""},  // no client certificate
           TlsFiles{.ca = certs + "/other-ca.pem",                    // a server it does not trust
                    .cert = certs + "/client.pem",
           .key = certs + "/client.key"},
       }) {
    const absl::Status status = open(wrong);
    EXPECT_FALSE(status.ok());
    EXPECT_TRUE(absl::StrContains(status.message(), "do both sides agree on TLS")) << status;
  }
  EXPECT_EQ(server->sessions(), 0);
  server.reset();

  coordinator_tls_ = {"--tls-cert",          certs + "/server.pem", "--tls-key",
                      certs + "/server.key", "--tls-client-ca",     certs + "/ca.pem"};
  source_side_tls_ = {"--tls-ca",  certs + "/ca.pem",    "--tls-cert", certs + "/server.pem",
                      "--tls-key", certs + "/server.key"};
  client_tls_ = {"--tls-ca",  certs + "/ca.pem",    "--tls-cert", certs + "/client.pem",
                 "--tls-key", certs + "/client.key"};
  const std::string coordinator_address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  std::unique_ptr<BackgroundProcess> coordinator = StartCoordinator(coordinator_address);
  std::unique_ptr<BackgroundProcess> source_side = StartSourceSide(coordinator_address, "s1");
  std::unique_ptr<BackgroundProcess> target_side = StartTargetSide(coordinator_address, "t1");
  ProcessResult staged = CtlAt(coordinator_address, "stage", {"--until", "2024-01-09T12:00:00Z"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = CtlAt(coordinator_address, "copy");
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err << ReadFile(target_side->log_path())
                                 << ReadFile(source_side->log_path());
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  // The target-side worker cannot reach the source: every chunk went through s1, over TLS.
  EXPECT_TRUE(absl::StrContains(ReadFile(coordinator->log_path()),
                                "reading through source-side worker s1#"))
      << ReadFile(coordinator->log_path());
}

// A source-side worker given the target as its --source (the target restored from the
// source's dump has the same tables and chunks): reading through it would copy the target
// onto itself and verify it against itself. The coordinator pairs nothing with it and says
// why; the copy goes through the one reading the source.
TEST_F(SourceSideTest, ASourceSideWorkerReadingAnotherDatabaseIsPairedWithNothing) {
  CreateSource();
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  std::unique_ptr<BackgroundProcess> coordinator = StartCoordinator(address);
  std::unique_ptr<BackgroundProcess> wrong = StartSourceSide(address, "wrong", TargetDsn());
  std::unique_ptr<BackgroundProcess> s1 = StartSourceSide(address, "s1");
  std::unique_ptr<BackgroundProcess> target_side = StartTargetSide(address, "t1");
  ProcessResult staged = CtlAt(address, "stage", {"--until", "2024-01-09T12:00:00Z"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = CtlAt(address, "copy");
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err << ReadFile(target_side->log_path());
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  ProcessResult verified = CtlAt(address, "verify");
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  const std::string log = ReadFile(coordinator->log_path());
  EXPECT_TRUE(absl::StrContains(log, "reads another database")) << log;
  EXPECT_FALSE(absl::StrContains(log, "reading through source-side worker wrong#")) << log;
  EXPECT_TRUE(absl::StrContains(log, "reading through source-side worker s1#")) << log;
}

// A target-side worker that gives up on a statement (a stop, an abort, a lost lease) cancels
// its call: the source-side worker cancels the statement on the source at once, rather
// than letting it run for no one.
TEST_F(SourceSideTest, ACancelledCallCancelsItsStatementOnTheSource) {
  std::unique_ptr<SourceSideServer> server = ServeInProcess();
  ASSERT_NE(server, nullptr);
  absl::StatusOr<std::unique_ptr<SourceSideSession>> session = OpenThrough(*server);
  ASSERT_TRUE(session.ok()) << session.status();
  const std::string sleeping =
      "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
      "'SELECT pg_sleep(600)%'";
  absl::Status slept;
  std::thread query([&] { slept = (*session)->Exec("SELECT pg_sleep(600)").status(); });
  ASSERT_TRUE(WaitFor([&] { return SourceValue(sleeping) == "1"; }));
  (*session)->Cancel();
  query.join();
  EXPECT_FALSE(slept.ok());
  EXPECT_TRUE(WaitFor([&] { return SourceValue(sleeping) == "0"; }, 10));
  session->reset();
  EXPECT_TRUE(WaitFor([&] { return server->sessions() == 0; }, 10));
}

TEST_F(SourceSideTest, ASourceSideWorkerWithAnotherTokenIsRefusedAndNeverPaired) {
  CreateSource();
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  std::unique_ptr<BackgroundProcess> coordinator = StartCoordinator(address);
  // A source-side worker with another token: target-side workers are refused by it.
  const std::string listen = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  BackgroundProcess impostor({BinPath("backfill-worker"), "--source-side", "--listen", listen,
                              "--coordinator", address, "--name", "wrong", "--source", SourceDsn()},
                             Log("wrong"), {{"BACKFILL_TOKEN", "another-token"}});
  // It cannot register either: the coordinator refuses it too.
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(ReadFile(impostor.log_path()), "missing or wrong bearer token");
  })) << ReadFile(impostor.log_path());
  ASSERT_TRUE(impostor.Signal(SIGKILL));
  impostor.Wait();
  std::unique_ptr<BackgroundProcess> good = StartSourceSide(address, "s1");
  std::unique_ptr<BackgroundProcess> target_side = StartTargetSide(address, "t1");
  ProcessResult staged = CtlAt(address, "stage", {"--until", "2024-01-09T12:00:00Z"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = CtlAt(address, "copy");
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  const std::string coordinator_log = ReadFile(coordinator->log_path());
  EXPECT_TRUE(absl::StrContains(coordinator_log, "refused RegisterWorker")) << coordinator_log;
  EXPECT_TRUE(absl::StrContains(coordinator_log, "reading through source-side worker s1#"))
      << coordinator_log;
  EXPECT_FALSE(absl::StrContains(coordinator_log, "source-side worker wrong")) << coordinator_log;
}

// SIGTERM on a source-side worker mid-chunk: the session it holds goes on to the chunk's end,
// the coordinator hears at once that it is stopping and pairs nothing more with it, and it
// exits once the session ends. No attempt fails.
TEST_F(SourceSideTest, AStoppedSourceSideWorkerFinishesItsSessionAndIsPairedWithNothingMore) {
  SlowCopy run;
  StartSlowCopyThroughS1(&run);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(run.s1->Signal(SIGTERM));
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(ReadFile(run.coordinator->log_path()), "is stopping; no more leases");
  })) << ReadFile(run.coordinator->log_path());
  const size_t stopped_at = ReadFile(run.coordinator->log_path()).size();
  std::optional<int> s1_code = run.s1->WaitFor(120000);
  ASSERT_TRUE(s1_code.has_value()) << ReadFile(run.s1->log_path());
  EXPECT_EQ(*s1_code, 0) << ReadFile(run.s1->log_path());
  std::optional<int> code = run.copy->WaitFor(240000);
  ASSERT_TRUE(code.has_value()) << ReadFile(run.copy->log_path());
  ASSERT_EQ(*code, 0) << ReadFile(run.copy->log_path()) << ReadFile(run.target_side->log_path());
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE attempts > 0"), "0")
      << ReadFile(run.target_side->log_path());
  const std::string after = ReadFile(run.coordinator->log_path()).substr(stopped_at);
  EXPECT_FALSE(absl::StrContains(after, "worker s1#")) << after;
  EXPECT_TRUE(absl::StrContains(after, "reading through source-side worker s2#")) << after;
}

TEST_F(SourceSideTest, AKilledSourceSideWorkerIsPairedWithNothingMoreAndTheCopyGoesOn) {
  // Kill s1 mid-chunk. Its lease may be granted again before the coordinator has missed
  // s1's heartbeats, through s1: that attempt fails too.
  SlowCopy run;
  StartSlowCopyThroughS1(&run);
  if (HasFatalFailure()) return;
  const size_t killed_at = ReadFile(run.coordinator->log_path()).size();
  ASSERT_TRUE(run.s1->Signal(SIGKILL));
  run.s1->Wait();
  std::optional<int> code = run.copy->WaitFor(240000);
  ASSERT_TRUE(code.has_value()) << ReadFile(run.copy->log_path());
  ASSERT_EQ(*code, 0) << ReadFile(run.copy->log_path()) << ReadFile(run.target_side->log_path());
  EXPECT_EQ(TargetDigest(kBelow), SourceDigest(kBelow));
  // Whether the kill cut the chunk short depends on how much of it the buffers on the way held
  // already (loopback has no slow link; wan_test.cc kills one mid-chunk across one). Either
  // way: at most the one lease granted before the coordinator knew (its open fails; the lost
  // report or the missed heartbeats end s1's pairing), then s2 alone.
  const std::string after = ReadFile(run.coordinator->log_path()).substr(killed_at);
  size_t through_s1 = 0;
  for (size_t at = after.find("worker s1#"); at != std::string::npos;
       at = after.find("worker s1#", at + 1)) {
    ++through_s1;
  }
  EXPECT_LE(through_s1, 1u) << after;
  const size_t last = after.rfind("reading through source-side worker ");
  ASSERT_NE(last, std::string::npos) << after;
  EXPECT_TRUE(absl::StartsWith(after.substr(last), "reading through source-side worker s2#"))
      << after;
  ProcessResult verified = CtlAt(run.address, "verify");
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

}  // namespace
}  // namespace backfill::testing
