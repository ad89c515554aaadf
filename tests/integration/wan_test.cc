// Source-side workers across a slow link, in network namespaces: the source and two
// source-side workers on one side, the target, the coordinator and a target-side worker on
// the other, the link limited by tc (rate) and a delay line (20 ms each way: this kernel has
// no netem; tests/harness/delay_line_main.cc). One source-side worker's cable is pulled while
// a chunk streams through it: that attempt fails, the other source-side worker serves the
// retry, and the rows arrive once.
//
// Needs root (namespaces); elsewhere the suite skips with one loud line.
#include <signal.h>

#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/harness/netns.h"
#include "tests/harness/pg_cluster.h"
#include "tests/harness/process.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

constexpr char kBelow[] = "SELECT * FROM public.m WHERE time < '2024-01-06 00:00+00'";
constexpr char kToken[] = "wan-test-token";

class WanTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<VirtualNetwork>> net =
        VirtualNetwork::Create({"src", "s1", "s2", "dst"});
    if (!net.ok()) {
      skip_reason_ = std::string(net.status().message());
      return;
    }
    net_ = std::move(*net).release();
    for (const char* host : {"src", "dst"}) {
      PgClusterOptions options;
      options.name = absl::StrCat("wan-", host);
      options.netns = net_->Namespace(host);
      options.listen_address = net_->Address(host);
      options.trusted_network = VirtualNetwork::kSubnet;
      absl::StatusOr<std::unique_ptr<PgCluster>> cluster = PgCluster::Start(options);
      ASSERT_TRUE(cluster.ok()) << cluster.status();
      (std::string(host) == "src" ? source_ : target_) = std::move(*cluster).release();
    }
  }
  static void TearDownTestSuite() {
    delete source_;
    delete target_;
    delete net_;
    source_ = target_ = nullptr;
    net_ = nullptr;
  }
  void SetUp() override {
    if (net_ == nullptr) {
      std::cerr << "*** SKIPPING WanTest: cannot make network namespaces (" << skip_reason_
                << "); the slow-link test proves nothing here ***" << std::endl;
      GTEST_SKIP() << skip_reason_;
    }
    BACKFILL_REQUIRE_TIMESCALEDB(source_);
    db_ = absl::StrCat("bf_wan_", ++databases_);
    ASSERT_TRUE(source_->CreateDatabase(db_).ok());
    ASSERT_TRUE(target_->CreateDatabase(db_).ok());
  }
  void TearDown() override { processes_.clear(); }

  void Exec(PgCluster* cluster, const std::string& sql) {
    absl::Status s = cluster->Exec(db_, sql);
    ASSERT_TRUE(s.ok()) << s << "\nsql: " << sql;
  }
  std::string Value(PgCluster* cluster, const std::string& sql) {
    absl::StatusOr<std::string> v = cluster->QueryValue(db_, sql);
    EXPECT_TRUE(v.ok()) << v.status() << "\nsql: " << sql;
    return v.value_or("<error>");
  }
  std::string Digest(PgCluster* cluster, const std::string& query) {
    return Value(cluster, absl::StrCat("SELECT count(*) || '|' || coalesce(md5(string_agg(r::text, "
                                       "',' ORDER BY r::text)), '') FROM (",
                                       query, ") r"));
  }
  std::string Log(const std::string& name) const {
    return absl::StrCat(target_->dir(), "/", name, "-", db_, ".log");
  }
  // Starts `argv` on `host` and waits for `ready` in its log.
  BackgroundProcess* Start(const std::string& host, const std::string& name,
                           std::vector<std::string> argv, const std::string& ready) {
    std::vector<std::string> full = net_->On(host);
    full.insert(full.end(), argv.begin(), argv.end());
    processes_.push_back(std::make_unique<BackgroundProcess>(
        full, Log(name), std::map<std::string, std::string>{{"BACKFILL_TOKEN", kToken}}));
    BackgroundProcess* p = processes_.back().get();
    EXPECT_TRUE(WaitFor([&] { return absl::StrContains(ReadFile(p->log_path()), ready); }))
        << ReadFile(p->log_path());
    return p;
  }

  static VirtualNetwork* net_;
  static PgCluster* source_;
  static PgCluster* target_;
  static std::string skip_reason_;
  static int databases_;
  std::string db_;
  std::vector<std::unique_ptr<BackgroundProcess>> processes_;

  // Copies 5 chunks through source-side workers s1 and s2 (s1 on a 4 Mbit/s link), does
  // `disrupt` to s1 while a chunk streams through it, and checks that only that attempt
  // failed: the rows arrive once, through s2.
  void CopyDisruptingS1(const std::function<void(BackgroundProcess* s1)>& disrupt);
};

VirtualNetwork* WanTest::net_ = nullptr;
PgCluster* WanTest::source_ = nullptr;
PgCluster* WanTest::target_ = nullptr;
std::string WanTest::skip_reason_;
int WanTest::databases_ = 0;

void WanTest::CopyDisruptingS1(const std::function<void(BackgroundProcess* s1)>& disrupt) {
  const std::string ddl =
      "CREATE TABLE public.m (time timestamptz NOT NULL, device int NOT NULL, v float8);"
      "SELECT create_hypertable('public.m', 'time', chunk_time_interval => interval '1 day');";
  Exec(source_, ddl);
  Exec(target_, ddl);
  // 6 daily chunks of 172,800 rows (about 6 MB each in binary COPY).
  Exec(source_,
       "INSERT INTO public.m SELECT t, d, round(random() * 1000) / 10 FROM generate_series("
       "timestamptz '2024-01-01 00:00+00', '2024-01-06 23:59:58+00', interval '2 seconds') t, "
       "generate_series(1, 4) d");
  Exec(target_, "INSERT INTO public.m VALUES ('2024-01-06 12:00+00', 7, 7)");  // dual write

  const std::string coordinator = net_->Address("dst") + ":7433";
  const std::string source_dsn = source_->Dsn(db_);
  const std::string target_dsn = target_->Uri(db_);
  Start("dst", "coordinator",
        {BinPath("backfill-coordinator"), "--listen", coordinator, "--lease-timeout-ms", "2000",
         "--heartbeat-ms", "300"},
        "listening on port");
  // The link: 100 Mbit/s each way, s1's 4 Mbit/s so that a chunk takes seconds through it;
  // 20 ms each way in front of each source-side worker. Set once for the suite.
  if (databases_ == 1) {
    ASSERT_TRUE(net_->LimitEgress("src", "100mbit").ok());
    ASSERT_TRUE(net_->LimitEgress("s1", "4mbit").ok());
    ASSERT_TRUE(net_->LimitEgress("s2", "100mbit").ok());
    ASSERT_TRUE(net_->LimitEgress("dst", "100mbit").ok());
  }
  BackgroundProcess* s1 = nullptr;
  for (const char* side : {"s1", "s2"}) {
    const std::string near_target =
        absl::StrCat(net_->Address("dst"), ":", side[1] == '1' ? 7441 : 7442);
    Start("dst", absl::StrCat("delay-", side),
          {BinPath("backfill_delay_line"), "--listen", near_target, "--to",
           net_->Address(side) + ":7434", "--delay-ms", "20"},
          "delay line listening");
    BackgroundProcess* started =
        Start(side, side,
              {BinPath("backfill-worker"), "--source-side", "--listen",
               net_->Address(side) + ":7434", "--advertise", near_target, "--coordinator",
               coordinator, "--name", side, "--source", source_dsn},
              "registered; target-side workers");
    if (s1 == nullptr) s1 = started;
  }
  // The target-side worker never reads the source itself: its own way there leads nowhere.
  Start("dst", "t1",
        {BinPath("backfill-worker"), "--coordinator", coordinator, "--name", "t1", "--source",
         "host=10.231.0.250 port=5432 dbname=nowhere connect_timeout=2", "-v"},
        "registered");

  ProcessResult staged = RunProcess(
      [&] {
        std::vector<std::string> argv = net_->On("dst");
        for (const std::string& a :
             {BinPath("backfillctl"), std::string("stage"), std::string("--coordinator"),
              coordinator, std::string("--source"), source_dsn, std::string("--target"), target_dsn,
              std::string("--until"), std::string("2024-01-06T00:00:00Z")}) {
          argv.push_back(a);
        }
        return argv;
      }(),
      {{"BACKFILL_TOKEN", kToken}});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  BackgroundProcess* copy = Start("dst", "copy",
                                  {BinPath("backfillctl"), "copy", "--coordinator", coordinator,
                                   "--source", source_dsn, "--target", target_dsn},
                                  "");
  // Pull s1's cable while the chunk read through it streams into the target.
  BackgroundProcess* coordinator_process = processes_.front().get();
  ASSERT_TRUE(WaitFor([&] {
    const std::string log = ReadFile(coordinator_process->log_path());
    const size_t last = log.rfind("leased chunk ");
    if (last == std::string::npos) return false;
    const std::string lease = log.substr(last, log.find('\n', last) - last);
    return absl::StrContains(lease, "reading through source-side worker s1#") &&
           Value(target_,
                 "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
                 "'COPY %FROM STDIN%'") != "0";
  })) << ReadFile(coordinator_process->log_path());
  disrupt(s1);

  std::optional<int> code = copy->WaitFor(240000);
  ASSERT_TRUE(code.has_value()) << ReadFile(copy->log_path());
  ASSERT_EQ(*code, 0) << ReadFile(copy->log_path()) << ReadFile(Log("t1"));
  EXPECT_EQ(Digest(target_, kBelow), Digest(source_, kBelow));
  EXPECT_EQ(Value(target_, "SELECT count(*) FROM public.m WHERE time >= '2024-01-06'"), "1");
  const std::string coordinator_log = ReadFile(coordinator_process->log_path());
  EXPECT_TRUE(absl::StrContains(coordinator_log, "was lost by a lease")) << coordinator_log;
  EXPECT_TRUE(absl::StrContains(coordinator_log, "reading through source-side worker s2#"));
  EXPECT_EQ(Value(target_, "SELECT count(*) FROM __backfill.task WHERE done_by LIKE 't1#%'"), "5");
  EXPECT_EQ(Value(target_, "SELECT count(*) FROM __backfill.task WHERE attempts > 0"), "1");
}

TEST_F(WanTest, ACablePulledOnTheSourceSideMidChunkFailsOnlyThatAttempt) {
  CopyDisruptingS1([&](BackgroundProcess*) {
    ASSERT_TRUE(net_->CutLink("s1").ok());
    std::cerr << "[ INFO     ] cut s1 off mid-chunk" << std::endl;
  });
  // The cable goes back in: s1 is heard from again and has nothing to commit anywhere.
  ASSERT_TRUE(net_->RestoreLink("s1").ok());
  EXPECT_EQ(Digest(target_, kBelow), Digest(source_, kBelow));
}

TEST_F(WanTest, ASourceSideWorkerKilledMidChunkFailsOnlyThatAttempt) {
  CopyDisruptingS1([&](BackgroundProcess* s1) {
    ASSERT_TRUE(s1->Signal(SIGKILL));
    s1->Wait();
    std::cerr << "[ INFO     ] killed s1 mid-chunk" << std::endl;
  });
}

}  // namespace
}  // namespace backfill::testing
