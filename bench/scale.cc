// The coordinator at the scale it exists for. For each task count (synthetic tasks over 100
// hypertables, half of them done, inserted with the stager's own statement):
//   - steady: `workers` workers whose copies take copy_seconds lease, heartbeat once, commit
//     (the worker's completing statement) and report, over gRPC to a backfill-coordinator
//     process; lease round trip p50 and p99, without and with --max-chunks-per-hypertable 2;
//   - storm: the same workers with copies that take no time: leases per second, the most the
//     coordinator and target grant on this machine;
//   - idle: the tail of a copy (every remaining task leased to a worker that is busy), the
//     workers polling for more: the CPU the target's backends spend, in % of one core.
// Then staging stage_small and stage_large real one-hour chunks.
#include "bench/scale.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "backfill_coordinator_sql.h"
#include "backfill_worker_sql.h"
#include "common/pg.h"
#include "coordinator/pg_task_store.h"
#include "ctl/control_client.h"
#include "proto/credentials.h"
#include "worker/grpc_coordinator_client.h"

namespace backfill::bench {
namespace {

std::unique_ptr<pg::Connection> ConnectOrDie(const std::string& dsn) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> conn =
      pg::Connection::Open(dsn, "backfill-bench", "target");
  if (!conn.ok()) Die(std::string(conn.status().message()));
  return *std::move(conn);
}

// Runs `update` (many tasks at once) with the counts recomputed in its transaction, as the
// tool's own bulk statements do (migration 2): counted row by row it would take minutes.
void BulkUpdate(pg::Connection& conn, const std::string& update) {
  for (const std::string& statement :
       {std::string("BEGIN"), std::string("SET LOCAL backfill.counts_by_statement = 'on'"), update,
        std::string("DELETE FROM __backfill.task_count"),
        std::string("INSERT INTO __backfill.task_count SELECT hypertable_schema, "
                    "hypertable_name, (task_id % 16)::int, count(*), count(worked), "
                    "coalesce(sum(rows_copied), 0), coalesce(sum(bytes_copied), 0), "
                    "count(verified), count(*) FILTER (WHERE verify_matches = false) "
                    "FROM __backfill.task GROUP BY 1, 2, 3"),
        std::string("COMMIT"), std::string("VACUUM ANALYZE __backfill.task")}) {
    if (absl::Status s = conn.ExecScript(statement); !s.ok()) Die(std::string(s.message()));
  }
}

void LoadTasks(const std::string& dsn, int64_t count) {
  std::unique_ptr<pg::Connection> conn = ConnectOrDie(dsn);
  if (absl::Status s = MigrateTaskSchema(*conn); !s.ok()) Die(std::string(s.message()));
  constexpr int64_t kBatch = 10'000;
  for (int64_t first = 0; first < count; first += kBatch) {
    std::vector<std::string> tasks;
    for (int64_t i = first; i < std::min(count, first + kBatch); ++i) {
      const int64_t hour = 3'600'000'000LL;
      tasks.push_back(absl::StrFormat(
          R"({"hypertable_schema": "public", "hypertable_name": "h%d", "chunk_schema": )"
          R"("_timescaledb_internal", "chunk_name": "c%d", "target_chunk_schema": )"
          R"("_timescaledb_internal", "target_chunk_name": "c%d", "dimensions": {"time": )"
          R"([%d, %d]}, "time_column": "time", "time_type": "timestamp with time zone", )"
          R"("until_internal": null, "until_literal": null, "from_internal": null, )"
          R"("from_literal": null, "source_bytes": %d, "display_name": "public.h%d"})",
          i % 100, i, i, i * hour, (i + 1) * hour, (i * 7919) % 1'000'003, i % 100));
    }
    absl::StatusOr<pg::Result> inserted =
        conn->Exec(sql::kInsertTasks, {absl::StrCat("[", absl::StrJoin(tasks, ","), "]")});
    if (!inserted.ok()) Die(std::string(inserted.status().message()));
  }
  BulkUpdate(*conn,
             "UPDATE __backfill.task SET worked = tstzrange(now(), now(), '[]'), rows_copied = 1, "
             "bytes_copied = 1 WHERE task_id % 2 = 0");
}

// Makes the tasks the bench completed pending again.
void ResetCompleted(const std::string& dsn) {
  std::unique_ptr<pg::Connection> conn = ConnectOrDie(dsn);
  BulkUpdate(*conn,
             "UPDATE __backfill.task SET worked = NULL, rows_copied = NULL, bytes_copied = NULL, "
             "copy_message = NULL, lease_holder = NULL, lease_expires_at = NULL "
             "WHERE copy_message = 'bench'");
}

// CPU seconds the target's backends (children of its postmaster) have used.
double BackendCpuSeconds(const PgCluster& cluster) {
  std::ifstream pidfile(cluster.data_dir() + "/postmaster.pid");
  int64_t postmaster = 0;
  pidfile >> postmaster;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  double total = 0;
  for (const auto& entry : std::vector<std::string>(
           absl::StrSplit(RunOrDie({"bash", "-c", "ls /proc | grep -E '^[0-9]+$'"}).out, '\n',
                          absl::SkipEmpty()))) {
    std::ifstream in("/proc/" + entry + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    int64_t ppid = 0, utime = 0, stime = 0;
    if (f.size() < 13 || !absl::SimpleAtoi(f[1], &ppid) || ppid != postmaster) continue;
    if (absl::SimpleAtoi(f[11], &utime) && absl::SimpleAtoi(f[12], &stime)) {
      total += static_cast<double>(utime + stime) / tick;
    }
  }
  return total;
}

// The coordinator's backfill_lease_statement_seconds histogram as scraped: cumulative counts
// by upper bound (seconds).
std::map<double, double> LeaseStatementBuckets(int metrics_port) {
  std::map<double, double> buckets;
  const std::string prefix = "backfill_lease_statement_seconds_bucket{le=\"";
  for (absl::string_view line : absl::StrSplit(testing::HttpGet(metrics_port, "/metrics"), '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    line.remove_prefix(prefix.size());
    const size_t quote = line.find('"');
    const size_t space = line.rfind(' ');
    double le = 0, count = 0;
    if (quote == absl::string_view::npos || space == absl::string_view::npos) continue;
    const absl::string_view bound = line.substr(0, quote);
    if (bound == "+Inf") {
      le = std::numeric_limits<double>::infinity();
    } else if (!absl::SimpleAtod(bound, &le)) {
      continue;
    }
    if (absl::SimpleAtod(line.substr(space + 1), &count)) buckets[le] = count;
  }
  return buckets;
}

// The bucket bound (ms) under which `q` of the statements between two scrapes fell.
double BucketQuantileMs(const std::map<double, double>& before,
                        const std::map<double, double>& after, double q) {
  const auto count = [](const std::map<double, double>& m, double le) {
    auto it = m.find(le);
    return it == m.end() ? 0.0 : it->second;
  };
  const double total = count(after, std::numeric_limits<double>::infinity()) -
                       count(before, std::numeric_limits<double>::infinity());
  for (const auto& [le, n] : after) {
    if (total > 0 && n - count(before, le) >= q * total) return le * 1000;
  }
  return 0;
}

struct Phase {
  double p50_ms = 0, p99_ms = 0;
  // The same requests as the coordinator times them, when they asked the target (bucket
  // bounds of its histogram): what the machine's scheduling adds is the difference.
  double statement_p50_ms = 0, statement_p99_ms = 0;
  int64_t granted = 0, calls = 0;
  double seconds = 0;
  double leases_per_second() const { return static_cast<double>(granted) / seconds; }
};

class ScaleRun {
 public:
  ScaleRun(PgCluster& cluster, const ScaleOptions& options, std::string db)
      : cluster_(cluster), options_(options), db_(std::move(db)), dsn_(cluster.Dsn(db_)) {
    address_ = absl::StrCat("127.0.0.1:", testing::FreeLoopbackPort());
    metrics_port_ = testing::FreeLoopbackPort();
    coordinator_ = std::make_unique<testing::BackgroundProcess>(
        std::vector<std::string>{Bin("backfill-coordinator"), "--listen", address_,
                                 "--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port_)},
        cluster.dir() + "/scale-coordinator-" + db_ + ".log");
    for (int i = 0; i < 100 && !absl::StrContains(testing::ReadFile(coordinator_->log_path()),
                                                  "listening on port");
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    credentials_ = *ClientCredentials(TlsFiles{});
    for (int i = 0; i < 8; ++i) completers_.push_back(ConnectOrDie(dsn_));
  }

  // Opens a copy job (cap 0: none), runs the workers for `seconds`, closes the job.
  Phase Run(int cap, double copy_seconds, double seconds, bool idle_only = false,
            double* target_cpu_share = nullptr) {
    ControlClient control(address_, "", credentials_);
    v1::CopyRequest copy;
    copy.mutable_databases()->set_source(dsn_);
    copy.mutable_databases()->set_target(dsn_);
    copy.set_allow_active_jobs(true);
    copy.set_max_chunks_per_hypertable(cap);
    std::atomic<bool> open{false};
    std::thread job([&] {
      absl::Status s = control.Copy(copy, [&](const v1::CopyProgress&) { open = true; });
      if (!s.ok() && !absl::IsCancelled(s)) std::cerr << "copy: " << s << std::endl;
    });
    while (!open) std::this_thread::sleep_for(std::chrono::milliseconds(20));

    std::atomic<bool> stop{false};
    std::mutex mu;
    std::vector<double> millis;
    Phase phase;
    std::vector<std::thread> workers;
    for (int i = 0; i < options_.workers; ++i) {
      workers.emplace_back([&, i] {
        GrpcCoordinatorClient client(address_, "", credentials_);
        v1::RegisterWorkerRequest hello;
        hello.set_worker_name(absl::StrCat("scale-", i));
        absl::StatusOr<v1::RegisterWorkerResponse> me = client.RegisterWorker(hello);
        if (!me.ok()) return;
        std::vector<double> mine;
        int64_t granted = 0;
        // Workers out of step, as they are once copies of different sizes have run: a start
        // within the first copy's time, and copies of 0.5 to 1.5 times copy_seconds.
        std::mt19937 rng(static_cast<uint32_t>(i));
        std::uniform_real_distribution<double> spread(0.5, 1.5);
        if (copy_seconds > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(
              static_cast<int64_t>(copy_seconds * 1000 * (spread(rng) - 0.5))));
        }
        while (!stop) {
          v1::LeaseTaskRequest ask;
          ask.set_worker_id(me->worker_id());
          const absl::Time t = absl::Now();
          absl::StatusOr<v1::LeaseTaskResponse> lease = client.LeaseTask(ask);
          mine.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
          if (!lease.ok() || lease->kind() != v1::LeaseTaskResponse::TASK) {
            std::this_thread::sleep_for(std::chrono::milliseconds(
                lease.ok() ? std::max<int64_t>(1, lease->retry_after_ms()) : 200));
            continue;
          }
          if (idle_only) Die("the idle phase granted a task");
          ++granted;
          Work(client, me->worker_id(), lease->task(), copy_seconds * spread(rng), i);
        }
        std::lock_guard<std::mutex> lock(mu);
        millis.insert(millis.end(), mine.begin(), mine.end());
        phase.granted += granted;
      });
    }
    // Measure once every worker has had its first answer.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const double cpu_before = BackendCpuSeconds(cluster_);
    const std::map<double, double> statements_before = LeaseStatementBuckets(metrics_port_);
    const absl::Time start = absl::Now();
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
    const double cpu = BackendCpuSeconds(cluster_) - cpu_before;
    const std::map<double, double> statements_after = LeaseStatementBuckets(metrics_port_);
    phase.statement_p50_ms = BucketQuantileMs(statements_before, statements_after, 0.5);
    phase.statement_p99_ms = BucketQuantileMs(statements_before, statements_after, 0.99);
    phase.seconds = Seconds(start) + 2;  // grants counted from the start
    stop = true;
    for (std::thread& t : workers) t.join();
    control.CancelCopy();
    job.join();
    if (target_cpu_share != nullptr) *target_cpu_share = cpu / Seconds(start);
    std::sort(millis.begin(), millis.end());
    phase.calls = static_cast<int64_t>(millis.size());
    if (!millis.empty()) {
      phase.p50_ms = millis[millis.size() / 2];
      phase.p99_ms = millis[millis.size() * 99 / 100];
    }
    return phase;
  }

 private:
  // A worker's copy: one heartbeat, the copy's time, the commit, the report.
  void Work(GrpcCoordinatorClient& client, const std::string& worker, const v1::Task& task,
            double copy_seconds, int i) {
    v1::HeartbeatRequest beat;
    beat.set_worker_id(worker);
    beat.set_task_id(task.task_id());
    beat.set_lease_epoch(task.lease_epoch());
    (void)client.Heartbeat(beat);
    if (copy_seconds > 0) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(static_cast<int64_t>(copy_seconds * 1000)));
    }
    {
      std::lock_guard<std::mutex> lock(completer_mu_[i % 8]);
      absl::StatusOr<pg::Result> done = completers_[static_cast<size_t>(i % 8)]->Exec(
          sql::kCompleteTask,
          {absl::StrCat(task.task_id()), absl::StrCat(task.lease_epoch()), "1", "1", "bench"});
      if (!done.ok()) Die(std::string(done.status().message()));
    }
    v1::ReportTaskRequest report;
    report.set_worker_id(worker);
    report.set_task_id(task.task_id());
    report.set_lease_epoch(task.lease_epoch());
    report.set_outcome(v1::ReportTaskRequest::COPIED);
    (void)client.ReportTask(report);
  }

  PgCluster& cluster_;
  const ScaleOptions& options_;
  const std::string db_;
  const std::string dsn_;
  std::string address_;
  int metrics_port_ = 0;
  std::unique_ptr<testing::BackgroundProcess> coordinator_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::vector<std::unique_ptr<pg::Connection>> completers_;
  std::mutex completer_mu_[8];
};

// Seconds to stage `chunks` real one-hour chunks (source and target in `cluster`'s db).
double StageRealChunks(PgCluster& source, PgCluster& target, int chunks) {
  const std::string db = absl::StrCat("scale_stage_", chunks);
  if (!source.CreateDatabase(db).ok() || !target.CreateDatabase(db).ok()) {
    Die("cannot create " + db);
  }
  const std::string ddl =
      "CREATE TABLE public.s (time timestamptz NOT NULL, v int);"
      "SELECT create_hypertable('public.s', 'time', chunk_time_interval => interval '1 hour')";
  Exec(source, db, ddl);
  Exec(target, db, ddl);
  const absl::Time built = absl::Now();
  for (int first = 0; first < chunks; first += 1000) {
    Exec(source, db,
         absl::StrCat("INSERT INTO public.s SELECT timestamptz '2000-01-01 00:00+00' + i * "
                      "interval '1 hour', i FROM generate_series(",
                      first, ", ", std::min(first + 1000, chunks) - 1, ") i"));
  }
  std::cout << absl::StrFormat("scale: %d one-hour chunks built in %.0fs", chunks, Seconds(built))
            << std::endl;
  const absl::Time start = absl::Now();
  RunOrDie({Bin("timescaledb-backfill"), "stage", "--until", "2030-01-01", "--source",
            source.Dsn(db), "--target", target.Dsn(db)},
           7200);
  return Seconds(start);
}

}  // namespace

void ScaleFigures(PgCluster& cluster, PgCluster& target, const ScaleOptions& options,
                  Figures* figures) {
  std::map<int64_t, double> storm;
  for (int64_t count : options.tasks) {
    const std::string db = absl::StrCat("scale_", count);
    if (!cluster.CreateDatabase(db).ok()) Die("cannot create " + db);
    const absl::Time loading = absl::Now();
    LoadTasks(cluster.Dsn(db), count);
    std::cout << absl::StrFormat(
                     "scale: %d tasks over 100 hypertables, half done (loaded in "
                     "%.0fs)",
                     count, Seconds(loading))
              << std::endl;
    ScaleRun run(cluster, options, db);
    for (int cap : {0, 2}) {
      Phase p = run.Run(cap, options.copy_seconds, options.phase_seconds);
      ResetCompleted(cluster.Dsn(db));
      std::cout << absl::StrFormat(
                       "scale %d tasks, %d workers copying %.1fs chunks%s: lease round trip "
                       "p50 %.2f ms, p99 %.2f ms (%d calls, %d granted); in the coordinator, "
                       "the requests that asked the target: p50 <= %g ms, p99 <= %g ms",
                       count, options.workers, options.copy_seconds,
                       cap > 0 ? absl::StrCat(", cap ", cap, " per hypertable") : "", p.p50_ms,
                       p.p99_ms, p.calls, p.granted, p.statement_p50_ms, p.statement_p99_ms)
                << std::endl;
      const std::string key = absl::StrCat("scale_", count, cap > 0 ? "_capped" : "");
      figures->Add(key + "_lease_p50_ms", p.p50_ms);
      figures->Add(key + "_lease_p99_ms", p.p99_ms);
      figures->Add(key + "_lease_statement_p50_bound_ms", p.statement_p50_ms);
      figures->Add(key + "_lease_statement_p99_bound_ms", p.statement_p99_ms);
      if (count == options.tasks.back()) {
        figures->ratios.push_back(
            absl::StrFormat("%d tasks%s: lease p50 %.2f ms (target < 2), p99 %.2f ms (target < 10)",
                            count, cap > 0 ? " capped" : "", p.p50_ms, p.p99_ms));
      }
    }
    Phase s = run.Run(0, 0, std::min(options.phase_seconds, 8.0));
    ResetCompleted(cluster.Dsn(db));
    storm[count] = s.leases_per_second();
    std::cout << absl::StrFormat(
                     "scale %d tasks, %d workers whose copies take no time: %.0f leases/s "
                     "(p50 %.2f ms, p99 %.2f ms)",
                     count, options.workers, s.leases_per_second(), s.p50_ms, s.p99_ms)
              << std::endl;
    figures->Add(absl::StrCat("scale_", count, "_leases_per_second"), s.leases_per_second());
    // The tail: every pending task leased to a busy worker; the workers poll for more.
    {
      std::unique_ptr<pg::Connection> conn = ConnectOrDie(cluster.Dsn(db));
      BulkUpdate(*conn,
                 "UPDATE __backfill.task SET worked = tstzrange(now(), now(), '[]') WHERE worked "
                 "IS NULL AND task_id NOT IN (SELECT task_id FROM __backfill.task WHERE worked "
                 "IS NULL ORDER BY task_id LIMIT 256)");
      BulkUpdate(*conn,
                 "UPDATE __backfill.task SET lease_holder = 'busy', lease_epoch = lease_epoch + "
                 "1, lease_expires_at = now() + interval '1 hour' WHERE worked IS NULL");
    }
    double cpu = 0;
    run.Run(0, 0, options.phase_seconds, /*idle_only=*/true, &cpu);
    std::cout << absl::StrFormat(
                     "scale %d tasks, %d idle workers polling at the tail of a copy: the "
                     "target's backends use %.1f%% of one core",
                     count, options.workers, cpu * 100)
              << std::endl;
    figures->Add(absl::StrCat("scale_", count, "_idle_target_cpu_percent"), cpu * 100);
    if (count == options.tasks.back()) {
      figures->ratios.push_back(
          absl::StrFormat("%d tasks: idle target CPU %.1f%% (target < 5%%)", count, cpu * 100));
    }
  }
  if (storm.size() >= 2) {
    const double ratio = storm.rbegin()->second / storm.begin()->second;
    figures->ratios.push_back(absl::StrFormat("leases/s at %d tasks / at %d: %.2f (target >= 0.8)",
                                              storm.rbegin()->first, storm.begin()->first, ratio));
  }
  if (options.stage_small > 0 && options.stage_large > 0) {
    const double small = StageRealChunks(cluster, target, options.stage_small);
    const double large = StageRealChunks(cluster, target, options.stage_large);
    std::cout << absl::StrFormat("scale: stage %d chunks %.1fs, %d chunks %.1fs (%.1fx)",
                                 options.stage_small, small, options.stage_large, large,
                                 large / small)
              << std::endl;
    figures->Add("scale_stage_small_seconds", small);
    figures->Add("scale_stage_large_seconds", large);
    figures->ratios.push_back(
        absl::StrFormat("stage %dx the chunks: %.1fx the time (target <= 10x)",
                        options.stage_large / options.stage_small, large / small));
  }
}

}  // namespace backfill::bench
