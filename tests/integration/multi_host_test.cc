// Workers on separate hosts: the source, the target, the coordinator and three workers each in
// a network namespace of their own, joined by a virtual switch. One worker's cable is pulled
// while it is in the middle of a chunk; its lease must expire, another worker must copy the
// chunk, and when the cable comes back the cut-off worker must commit nothing.
//
// Needs root (namespaces); elsewhere the suite skips with one loud line.
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/harness/netns.h"
#include "tests/harness/pg_cluster.h"
#include "tests/harness/process.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kDb[] = "bf_multi_host";
constexpr char kBelow[] = "SELECT * FROM public.f WHERE time < '2024-01-07 00:00+00'";

class MultiHostTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<VirtualNetwork>> net =
        VirtualNetwork::Create({"source", "target", "coord", "w1", "w2", "w3"});
    if (!net.ok()) {
      skip_reason_ = std::string(net.status().message());
      return;
    }
    net_ = std::move(*net).release();
    for (const char* host : {"source", "target"}) {
      PgClusterOptions options;
      options.name = absl::StrCat("multihost-", host);
      options.netns = net_->Namespace(host);
      options.listen_address = net_->Address(host);
      options.trusted_network = VirtualNetwork::kSubnet;
      absl::StatusOr<std::unique_ptr<PgCluster>> cluster = PgCluster::Start(options);
      ASSERT_TRUE(cluster.ok()) << cluster.status();
      (std::string(host) == "source" ? source_ : target_) = std::move(*cluster).release();
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
      std::cerr << "*** SKIPPING MultiHostTest: cannot make network namespaces (" << skip_reason_
                << "); the multi-host test proves nothing here ***" << std::endl;
      GTEST_SKIP() << skip_reason_;
    }
    BACKFILL_REQUIRE_TIMESCALEDB(source_);
    ASSERT_TRUE(source_->CreateDatabase(kDb).ok());
    ASSERT_TRUE(target_->CreateDatabase(kDb).ok());
    token_file_ = source_->dir() + "/token";
    std::ofstream(token_file_) << "multi-host-test-token\n";
    coordinator_address_ = net_->Address("coord") + ":7433";
  }
  void TearDown() override {
    copy_.reset();
    workers_.clear();
    coordinator_.reset();
  }

  void Exec(PgCluster* cluster, const std::string& sql) {
    absl::Status s = cluster->Exec(kDb, sql);
    ASSERT_TRUE(s.ok()) << s << "\nsql: " << sql;
  }
  std::string Value(PgCluster* cluster, const std::string& sql) {
    absl::StatusOr<std::string> v = cluster->QueryValue(kDb, sql);
    EXPECT_TRUE(v.ok()) << v.status() << "\nsql: " << sql;
    return v.value_or("<error>");
  }
  std::string Digest(PgCluster* cluster, const std::string& query) {
    return Value(cluster, absl::StrCat("SELECT count(*) || '|' || coalesce(md5(string_agg(r::text, "
                                       "',' ORDER BY r::text)), '') FROM (",
                                       query, ") r"));
  }
  std::vector<std::string> On(const std::string& host, std::vector<std::string> argv) {
    std::vector<std::string> full = net_->On(host);
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
  }
  std::string Log(const std::string& name) const { return source_->dir() + "/" + name + ".log"; }
  std::string SourceDsn() const { return source_->Dsn(kDb); }
  std::string TargetDsn() const { return target_->Uri(kDb); }

  static VirtualNetwork* net_;
  static PgCluster* source_;
  static PgCluster* target_;
  static std::string skip_reason_;
  std::string token_file_;
  std::string coordinator_address_;
  std::unique_ptr<BackgroundProcess> coordinator_;
  std::vector<std::unique_ptr<BackgroundProcess>> workers_;
  std::unique_ptr<BackgroundProcess> copy_;
};

VirtualNetwork* MultiHostTest::net_ = nullptr;
PgCluster* MultiHostTest::source_ = nullptr;
PgCluster* MultiHostTest::target_ = nullptr;
std::string MultiHostTest::skip_reason_;

TEST_F(MultiHostTest, AWorkerCutOffMidChunkLosesItsLeaseAndCommitsNothing) {
  const std::string ddl =
      "CREATE TABLE public.f (time timestamptz NOT NULL, device int NOT NULL, v float8);"
      "SELECT create_hypertable('public.f', 'time', chunk_time_interval => interval '1 day');";
  Exec(source_, ddl);
  Exec(target_, ddl);
  // 8 daily chunks of 172,800 rows (about 6 MB each in binary COPY).
  Exec(source_,
       "INSERT INTO public.f SELECT t, d, random() FROM generate_series(timestamptz "
       "'2024-01-01 00:00+00', '2024-01-08 23:59:59+00', interval '2 seconds') t, "
       "generate_series(1, 4) d");

  // The coordinator host stages: it reaches both databases over the virtual network only.
  ProcessResult staged =
      RunProcess(On("coord", {BinPath("timescaledb-backfill"), "stage", "--source", SourceDsn(),
                              "--target", TargetDsn(), "--until", "2024-01-07T00:00:00Z"}));
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ASSERT_EQ(Value(target_, "SELECT count(*) FROM __backfill.task"), "6");

  coordinator_ = std::make_unique<BackgroundProcess>(
      On("coord",
         {BinPath("backfill-coordinator"), "--listen", coordinator_address_, "--token-file",
          token_file_, "--lease-timeout-ms", "2000", "--heartbeat-ms", "300"}),
      Log("coordinator"));
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(ReadFile(coordinator_->log_path()), "listening on port");
  })) << ReadFile(coordinator_->log_path());

  // w1 sends slowly (its chunk takes many seconds), so the cut lands mid-chunk.
  ASSERT_TRUE(net_->LimitEgress("w1", "2mbit").ok());
  for (const char* name : {"w1", "w2", "w3"}) {
    workers_.push_back(std::make_unique<BackgroundProcess>(
        On(name, {BinPath("backfill-worker"), "--coordinator", coordinator_address_, "--token-file",
                  token_file_, "--name", name}),
        Log(name)));
    if (std::string(name) == "w1") {
      // Let the slow worker take the first lease before the fast ones empty the queue.
      ASSERT_TRUE(WaitFor([&] {
        return absl::StrContains(ReadFile(workers_.back()->log_path()), "registered");
      })) << ReadFile(workers_.back()->log_path());
    }
  }
  copy_ = std::make_unique<BackgroundProcess>(
      On("coord", {BinPath("backfillctl"), "copy", "--coordinator", coordinator_address_,
                   "--token-file", token_file_, "--source", SourceDsn(), "--target", TargetDsn()}),
      Log("copy"));

  // Wait until w1's target session is streaming rows, then pull its cable.
  std::string chunk;
  ASSERT_TRUE(WaitFor([&] {
    chunk = Value(target_,
                  "SELECT coalesce(max(format('%s.%s', chunk_schema, chunk_name)), '') FROM "
                  "__backfill.task t JOIN pg_stat_activity a ON a.pid = t.lease_backend_pid "
                  "WHERE t.lease_holder LIKE 'w1#%' AND t.worked IS NULL AND a.state = 'active' "
                  "AND a.query LIKE 'COPY %FROM STDIN%'");
    return !chunk.empty();
  })) << ReadFile(workers_[0]->log_path())
      << ReadFile(coordinator_->log_path());
  ASSERT_TRUE(net_->CutLink("w1").ok());
  std::cerr << "[ INFO     ] cut w1 off while it copied " << chunk << std::endl;

  std::optional<int> code = copy_->WaitFor(180000);
  ASSERT_TRUE(code.has_value()) << ReadFile(copy_->log_path());
  ASSERT_EQ(*code, 0) << ReadFile(copy_->log_path()) << ReadFile(coordinator_->log_path());
  EXPECT_TRUE(absl::StrContains(ReadFile(coordinator_->log_path()),
                                "ended the target session of the expired lease"))
      << ReadFile(coordinator_->log_path());
  EXPECT_EQ(Digest(target_, kBelow), Digest(source_, kBelow));
  EXPECT_EQ(Value(target_, "SELECT count(*) FROM public.f WHERE time >= '2024-01-07'"), "0");
  // Another worker finished w1's chunk under a newer epoch.
  const std::string holder =
      Value(target_, absl::StrCat("SELECT lease_epoch > 1 AND done_by NOT LIKE 'w1#%' FROM "
                                  "__backfill.task WHERE format('%s.%s', chunk_schema, "
                                  "chunk_name) = '",
                                  chunk, "'"));
  EXPECT_EQ(holder, "t");

  // The cable goes back in: w1 finds its lease gone and commits nothing.
  ASSERT_TRUE(net_->RestoreLink("w1").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string log = ReadFile(workers_[0]->log_path());
        return absl::StrContains(log, "re-granted") || absl::StrContains(log, "failed");
      },
      90))
      << ReadFile(workers_[0]->log_path());
  std::this_thread::sleep_for(milliseconds(2000));
  EXPECT_EQ(Digest(target_, kBelow), Digest(source_, kBelow));
  EXPECT_EQ(Value(target_, "SELECT count(*) FROM __backfill.task WHERE worked IS NULL"), "0");
}

}  // namespace
}  // namespace backfill::testing
