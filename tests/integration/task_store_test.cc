// The TaskStore contract (coordinator/task_store_contract_test.cc) on PgTaskStore: the
// statements the coordinator runs in the target, on the coordinator's clock, each test in a
// fresh database of a throwaway PostgreSQL (no TimescaleDB needed: __backfill is plain SQL).
// Also the schema's versions: a target staged before versions were kept is migrated, one from
// a newer release is refused.
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "backfill_coordinator_sql.h"
#include "backfill_worker_sql.h"
#include "common/connection_pool.h"
#include "coordinator/pg_task_store.h"
#include "coordinator/task_store_contract.h"
#include "tests/harness/pg_cluster.h"

namespace backfill::testing {
namespace {

// One server for the suite, stopped when the process exits.
PgCluster* Cluster() {
  static const std::unique_ptr<PgCluster> cluster = []() -> std::unique_ptr<PgCluster> {
    PgClusterOptions options;
    options.preload_timescaledb = false;
    options.name = "task-store";
    absl::StatusOr<std::unique_ptr<PgCluster>> started = PgCluster::Start(options);
    if (!started.ok()) {
      ADD_FAILURE() << "cannot start PostgreSQL: " << started.status();
      return nullptr;
    }
    return *std::move(started);
  }();
  return cluster.get();
}

std::unique_ptr<pg::Connection> Connect(const std::string& dsn) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> conn =
      pg::Connection::Open(dsn, "task-store-test", "target");
  EXPECT_TRUE(conn.ok()) << conn.status();
  return conn.ok() ? *std::move(conn) : nullptr;
}

// A fresh database per harness.
std::string NewDatabase() {
  static int n = 0;
  const std::string name = absl::StrCat("store_", ++n);
  absl::Status created = Cluster()->CreateDatabaseWithoutTimescale(name);
  EXPECT_TRUE(created.ok()) << created;
  return name;
}

class PgHarness : public StoreHarness {
 public:
  PgHarness()
      : dsn_(Cluster()->Dsn(NewDatabase())),
        admin_(Connect(dsn_)),
        store_(std::make_shared<ConnectionPool>(dsn_, "task-store-test", "target")) {}

  TaskStore& store() override { return store_; }
  absl::Time start() const override { return absl::Now(); }

  int64_t Add(const TaskSpec& spec) override {
    absl::StatusOr<pg::Result> row = admin_->Exec(
        "INSERT INTO __backfill.task (hypertable_schema, hypertable_name, chunk_schema, "
        "chunk_name, target_chunk_schema, target_chunk_name, dimensions, time_column, "
        "time_type, source_bytes) VALUES ($1, $2, $3, $4, $3, $4, '{\"time\": [0, 100]}', "
        "'time', 'timestamp with time zone', $5::bigint) RETURNING task_id",
        {spec.hypertable_schema, spec.hypertable_name, spec.chunk_schema, spec.chunk_name,
         spec.source_bytes ? pg::Param(absl::StrCat(*spec.source_bytes)) : pg::Param()});
    EXPECT_TRUE(row.ok()) << row.status();
    return row.ok() ? row->GetInt(0, 0) : 0;
  }
  bool Complete(int64_t task_id, int64_t epoch, int64_t rows, int64_t bytes) override {
    absl::StatusOr<pg::Result> row = admin_->Exec(
        sql::kCompleteTask,
        {absl::StrCat(task_id), absl::StrCat(epoch), absl::StrCat(rows), absl::StrCat(bytes), ""});
    EXPECT_TRUE(row.ok()) << row.status();
    return row.ok() && row->rows() == 1;
  }
  bool CompleteVerify(int64_t task_id, int64_t epoch, bool matches) override {
    absl::StatusOr<pg::Result> row =
        admin_->Exec(sql::kCompleteVerify,
                     {absl::StrCat(task_id), absl::StrCat(epoch), matches ? "true" : "false",
                      matches ? "{\"matches\": true}" : "{\"matches\": false}"});
    EXPECT_TRUE(row.ok()) << row.status();
    return row.ok() && row->rows() == 1;
  }
  TargetSession OpenSession() override {
    std::unique_ptr<pg::Connection> conn = Connect(dsn_);
    if (conn == nullptr) return {};
    absl::StatusOr<pg::Result> row = conn->Exec(
        "SELECT pid, backend_start::text FROM pg_catalog.pg_stat_activity "
        "WHERE pid = pg_catalog.pg_backend_pid()");
    EXPECT_TRUE(row.ok()) << row.status();
    if (!row.ok()) return {};
    TargetSession session{static_cast<int32_t>(row->GetInt(0, 0)), row->Get(0, 1)};
    sessions_[session.pid] = std::move(conn);
    return session;
  }
  void CloseSession(const TargetSession& session) override { sessions_.erase(session.pid); }
  bool AwaitGone(const TargetSession& session) override {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (Alive(session)) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }
  bool Alive(const TargetSession& session) override {
    absl::StatusOr<pg::Result> row = admin_->Exec(
        "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid = $1::int "
        "AND backend_start = $2::timestamptz",
        {absl::StrCat(session.pid), session.start});
    EXPECT_TRUE(row.ok()) << row.status();
    return row.ok() && row->GetInt(0, 0) > 0;
  }

 private:
  const std::string dsn_;
  std::unique_ptr<pg::Connection> admin_;
  PgTaskStore store_;
  std::map<int32_t, std::unique_ptr<pg::Connection>> sessions_;
};

INSTANTIATE_TEST_SUITE_P(
    Pg, TaskStoreContract,
    ::testing::Values(StoreKind{"postgres",
                                [] {
                                  return Cluster() == nullptr ? nullptr
                                                              : std::unique_ptr<StoreHarness>(
                                                                    std::make_unique<PgHarness>());
                                }}),
    [](const ::testing::TestParamInfo<StoreKind>& info) { return info.param.name; });

TEST(TaskSchemaTest, ATargetStagedBeforeVersionsIsMigratedAndANewerOneRefused) {
  ASSERT_NE(Cluster(), nullptr);
  const std::string dsn = Cluster()->Dsn(NewDatabase());
  std::unique_ptr<pg::Connection> conn = Connect(dsn);
  ASSERT_NE(conn, nullptr);
  // The first release's table: no counts, no versions, a task done and one pending.
  ASSERT_TRUE(
      conn->ExecScript("CREATE SCHEMA __backfill;"
                       "CREATE TABLE __backfill.task (task_id bigint GENERATED ALWAYS AS "
                       "IDENTITY PRIMARY KEY, worked tstzrange, hypertable_schema name NOT NULL, "
                       "hypertable_name name NOT NULL, chunk_schema name NOT NULL, chunk_name "
                       "name NOT NULL, target_chunk_schema name NOT NULL, target_chunk_name name "
                       "NOT NULL, dimensions jsonb NOT NULL, time_column name NOT NULL, time_type "
                       "text NOT NULL, until_internal bigint, until_literal text, copy_message "
                       "text, lease_epoch bigint NOT NULL DEFAULT 0, lease_holder text, "
                       "lease_expires_at timestamptz, attempts integer NOT NULL DEFAULT 0, "
                       "last_error text, rows_copied bigint, bytes_copied bigint, staged_at "
                       "timestamptz NOT NULL DEFAULT now(), UNIQUE (chunk_schema, chunk_name));"
                       "INSERT INTO __backfill.task (worked, hypertable_schema, hypertable_name, "
                       "chunk_schema, chunk_name, target_chunk_schema, target_chunk_name, "
                       "dimensions, time_column, time_type, rows_copied, bytes_copied) VALUES "
                       "(tstzrange(now(), now()), 'public', 'm', 'i', 'c1', 'i', 'c1', '{}', "
                       "'time', 'timestamptz', 5, 50), "
                       "(NULL, 'public', 'm', 'i', 'c2', 'i', 'c2', '{}', 'time', 'timestamptz', "
                       "NULL, NULL)")
          .ok());
  PgTaskStore store(std::make_shared<ConnectionPool>(dsn, "task-store-test", "target"));
  ASSERT_TRUE(store.Migrate().ok());
  EXPECT_EQ(conn->Exec(sql::kSchemaVersion)->GetInt(0, 0), kTaskSchemaVersion);
  absl::StatusOr<TaskCounts> counts = store.Counts(Work::kCopy, 10, absl::Now());
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->total, 2);
  EXPECT_EQ(counts->done, 1);
  EXPECT_EQ(counts->rows, 5);
  absl::StatusOr<std::optional<Throttle>> throttle = store.ReadThrottle();
  ASSERT_TRUE(throttle.ok() && throttle->has_value());
  // Migrating again changes nothing.
  ASSERT_TRUE(store.Migrate().ok());
  EXPECT_EQ(store.Counts(Work::kCopy, 10, absl::Now())->total, 2);

  ASSERT_TRUE(conn->Exec("UPDATE __backfill.schema_version SET version = 99").ok());
  absl::Status refused = store.Migrate();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("version 99, written by a newer release"), std::string::npos)
      << refused;
  EXPECT_EQ(conn->Exec(sql::kSchemaVersion)->GetInt(0, 0), 99) << "nothing written";
}

// Inserts tasks c1..c`count` as the stager would; `hypertable` and `bytes` are SQL of n.
absl::Status InsertTasks(pg::Connection& conn, int count, const std::string& hypertable,
                         const std::string& bytes) {
  return conn
      .Exec(absl::StrCat("INSERT INTO __backfill.task (hypertable_schema, hypertable_name, "
                         "chunk_schema, chunk_name, target_chunk_schema, target_chunk_name, "
                         "dimensions, time_column, time_type, source_bytes) "
                         "SELECT 'public', ",
                         hypertable, ", 'i', 'c' || n, 'i', 'c' || n, '{\"time\": [0, 100]}', ",
                         "'time', 'timestamptz', ", bytes, " FROM generate_series(1, ", count,
                         ") n"))
      .status();
}

// A migrated PgTaskStore in a fresh database, and a session of the test's own on it.
class TaskIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(Cluster(), nullptr);
    dsn_ = Cluster()->Dsn(NewDatabase());
    store_ = std::make_unique<PgTaskStore>(
        std::make_shared<ConnectionPool>(dsn_, "task-store-test", "target"));
    ASSERT_TRUE(store_->Migrate().ok());
    conn_ = Connect(dsn_);
    ASSERT_NE(conn_, nullptr);
  }
  std::string dsn_;
  std::unique_ptr<PgTaskStore> store_;
  std::unique_ptr<pg::Connection> conn_;
};

// A systematic failure (a privilege missing on a large hypertable) can use up the attempts of
// thousands of tasks at the head of the grant order; a grant must not read them one by one.
TEST_F(TaskIndexTest, GrantsDoNotReadTasksWhoseAttemptsAreUsedUp) {
  PgTaskStore& store = *store_;
  pg::Connection* conn = conn_.get();
  // 400 large tasks ahead of 2,000 small ones in the grant order.
  constexpr int kFailing = 400;
  constexpr int kHealthy = 2000;
  ASSERT_TRUE(InsertTasks(*conn, kFailing + kHealthy, "'m'",
                          absl::StrCat("CASE WHEN n > ", kHealthy, " THEN 1000 + n ELSE 1 END"))
                  .ok());
  // The large ones use up their attempts: half by a failure retrying cannot fix, half by
  // leases that expired, once per attempt.
  absl::Time now = absl::Now();
  LeaseRequest request;
  request.max_attempts = 3;
  auto lease = [&](int i) -> std::optional<Grant> {
    request.worker_id = absl::StrCat("w", i);
    request.now = now;
    absl::StatusOr<std::optional<Grant>> grant = store.Lease(request);
    EXPECT_TRUE(grant.ok() && grant->has_value()) << i;
    if (!grant.ok() || !grant->has_value()) return std::nullopt;
    EXPECT_EQ((*grant)->task.hypertable_name(), "m");
    return **grant;
  };
  for (int i = 0; i < kFailing / 2; ++i) {
    std::optional<Grant> grant = lease(i);
    ASSERT_TRUE(grant.has_value());
    ASSERT_TRUE(*store.RecordFailure(
        LeaseRef{grant->task.task_id(), grant->task.lease_epoch(), request.worker_id},
        "permission denied", false, request.max_attempts, now));
  }
  for (int attempt = 1; attempt <= request.max_attempts; ++attempt) {
    for (int i = 0; i < kFailing / 2; ++i) ASSERT_TRUE(lease(i).has_value());
    now += request.lease_timeout + absl::Seconds(1);
    absl::StatusOr<Sweep> sweep = store.SweepLeases(Work::kCopy, request.max_attempts, now);
    ASSERT_TRUE(sweep.ok()) << sweep.status();
    ASSERT_EQ(sweep->expired.size(), static_cast<size_t>(kFailing / 2));
    EXPECT_EQ(sweep->expired[0].attempts, attempt);
    now += absl::Minutes(1);  // past the back-off
  }
  ASSERT_TRUE(conn->Exec("ANALYZE __backfill.task").ok());
  // The grant as the planner runs it: how many rows it read and threw away.
  ASSERT_TRUE(conn->Exec("BEGIN").ok());
  absl::StatusOr<pg::Result> plan =
      conn->Exec(absl::StrCat("EXPLAIN (ANALYZE, COSTS OFF) ", sql::kLeaseTask),
                 {"{w}", "30000", "3", TimestampParam(now)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(conn->Exec("ROLLBACK").ok());
  std::string text;
  int64_t removed = 0;
  for (int i = 0; i < plan->rows(); ++i) {
    const std::string line = plan->Get(i, 0);
    absl::StrAppend(&text, line, "\n");
    const size_t at = line.find("Rows Removed by Filter: ");
    if (at != std::string::npos) removed += std::stoll(line.substr(at + 24));
  }
  EXPECT_NE(text.find("task_free_size_idx"), std::string::npos) << text;
  EXPECT_LE(removed, 2) << text;
  absl::StatusOr<std::optional<Grant>> last = store.Lease(request);
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ((*last)->task.source_chunk_name(), "c1") << "the first of the small ones";
  // The next copy gives the attempts back, and the tasks are granted again.
  ASSERT_TRUE(store.ResetFailed().ok());
  request.now = now + absl::Minutes(5);
  absl::StatusOr<std::optional<Grant>> again = store.Lease(request);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->task.source_chunk_name(), absl::StrCat("c", kFailing + kHealthy));
}

// Mid-migration most tasks are done. A done task names no holder (its holder moves to done_by),
// so that the planner's statistics of lease_holder stay true and the sweeps, prepared
// statements run every 250 ms, read the few held tasks through task_held_idx rather than
// every pending task through another index (over a second each at a million tasks).
TEST_F(TaskIndexTest, DoneTasksNameNoHolderSoTheSweepsReadOnlyTheHeld) {
  PgTaskStore& store = *store_;
  pg::Connection* conn = conn_.get();
  constexpr int kTasks = 20000;
  constexpr int kDone = 12000;
  constexpr int kHeld = 8;
  ASSERT_TRUE(InsertTasks(*conn, kTasks, "'h' || n % 10", "n").ok());
  LeaseRequest request;
  request.now = absl::Now();
  for (int i = 0; i < kDone + kHeld; ++i) {
    request.worker_id = absl::StrCat("w", i % 64);
    absl::StatusOr<std::optional<Grant>> grant = store.Lease(request);
    ASSERT_TRUE(grant.ok() && grant->has_value()) << i;
    if (i >= kDone) continue;
    const v1::Task& task = (*grant)->task;
    absl::StatusOr<pg::Result> done =
        conn->Exec(sql::kCompleteTask,
                   {absl::StrCat(task.task_id()), absl::StrCat(task.lease_epoch()), "1", "1", ""});
    ASSERT_TRUE(done.ok() && done->rows() == 1) << i;
    // Its holder is still recognised: a report after the commit, a heartbeat that raced it.
    const LeaseRef ref{task.task_id(), task.lease_epoch(), request.worker_id};
    if (i % 1000 == 0) {
      EXPECT_TRUE(*store.HoldsLease(ref)) << i;
      EXPECT_TRUE(*store.ExtendLease(ref, request.lease_timeout, request.now, std::nullopt)) << i;
      EXPECT_FALSE(*store.HoldsLease(LeaseRef{ref.task_id, ref.epoch, "another"})) << i;
    }
  }
  EXPECT_EQ(conn->Exec("SELECT count(*) FROM __backfill.task WHERE lease_holder IS NOT NULL")
                ->GetInt(0, 0),
            kHeld);
  ASSERT_TRUE(conn->Exec("ANALYZE __backfill.task").ok());
  // The sweep as the coordinator runs it: prepared, with the plan PostgreSQL caches.
  ASSERT_TRUE(conn->Exec("SET plan_cache_mode = force_generic_plan").ok());
  ASSERT_TRUE(
      conn->Exec(absl::StrCat("PREPARE sweep(timestamptz, int) AS ", sql::kExpireLeases)).ok());
  ASSERT_TRUE(conn->Exec("BEGIN").ok());
  absl::StatusOr<pg::Result> plan = conn->Exec(absl::StrCat(
      "EXPLAIN (ANALYZE, COSTS OFF) EXECUTE sweep('", TimestampParam(request.now), "', 10)"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(conn->Exec("ROLLBACK").ok());
  std::string text;
  for (int i = 0; i < plan->rows(); ++i) absl::StrAppend(&text, plan->Get(i, 0), "\n");
  EXPECT_NE(text.find("task_held_idx"), std::string::npos) << text;
}

}  // namespace
}  // namespace backfill::testing

namespace backfill::testing {
namespace {

TEST(PreparedStatementTest, ASessionThatLostItsPreparedStatementsPreparesThemAgain) {
  ASSERT_NE(Cluster(), nullptr);
  std::unique_ptr<pg::Connection> conn = Connect(Cluster()->Dsn("postgres"));
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<pg::Result> first = conn->ExecPrepared("SELECT $1::int + 1", {"1"});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->GetInt(0, 0), 2);
  ASSERT_TRUE(conn->ExecScript("DEALLOCATE ALL").ok());
  absl::StatusOr<pg::Result> again = conn->ExecPrepared("SELECT $1::int + 1", {"41"});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->GetInt(0, 0), 42);
  absl::StatusOr<pg::Result> bad = conn->ExecPrepared("SELECT $1::int", {"x"});
  EXPECT_FALSE(bad.ok()) << "an error of the statement itself is returned, not retried";
}

}  // namespace
}  // namespace backfill::testing
