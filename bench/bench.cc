// backfill_bench: how fast our copy is next to what the two databases allow, measured side by
// side in one run on throwaway clusters (README.md, "Performance").
//
//   1. Plain chunks (a hypertable with two secondary indexes): `timescaledb-backfill copy -p P`
//      against a psql pipe per chunk (`COPY chunk TO STDOUT (FORMAT binary) | COPY chunk FROM
//      STDIN (FORMAT binary)`), P at once, and against our copy row by row (`--no-bulk-load`,
//      the path before bulk loads), into the same pre-created empty target chunks; P = 1 and 2,
//      the three timed in each round (in rotating order), the median of the rounds' ratios
//      reported. Then the time of a VACUUM (FREEZE) of the target after each way's load.
//   2. Compressed chunks: our copy (batches as they are) against decompressing through
//      SELECT, COPY into the target hypertable and compress_chunk there, P = 2.
//   3. Staging 10,000 chunks; the coordinator's lease round trip with 16 idle workers polling.
//   4. Peak resident memory of a backfill-worker process copying a chunk of about 1 GB.
//   5. Only when named (--only wan; needs root): the plain table across a slow link between
//      two network namespaces, psql pipe against our worker next to the target and against a
//      source-side worker feeding it (bench/wan.cc).
//
// Prints one line per figure and a last line with the ratios; writes the results as JSON.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/scale.h"
#include "bench/wan.h"
#include "ctl/control_client.h"
#include "proto/credentials.h"
#include "tests/harness/pg_cluster.h"
#include "tests/harness/process.h"
#include "worker/grpc_coordinator_client.h"

namespace backfill::bench {
namespace {

using testing::BackgroundProcess;
using testing::PgCluster;
using testing::ProcessResult;
using testing::RunProcess;

struct Options {
  int64_t rows = 6'000'000;
  int chunks = 8;
  int rounds = 3;
  int stage_chunks = 10'000;
  int idle_workers = 16;
  double memory_gb = 1.0;
  std::string json_path = "bench-results.json";
  std::string only;  // comma-separated figures to run; empty: all but scale and wan
  ScaleOptions scale;
  WanOptions wan;
  // Named in --only.
  bool Named(const std::string& figure) const {
    return absl::StrContains(absl::StrCat(",", only, ","), absl::StrCat(",", figure, ","));
  }
  bool Wants(const std::string& figure) const { return only.empty() || Named(figure); }
  // The figures that run on the two loopback clusters.
  bool WantsLoopbackClusters() const {
    return Wants("plain") || Wants("compressed") || Wants("stage") ||
           (Wants("memory") && memory_gb > 0) || Named("scale");
  }
};

// Runs `jobs` on `parallelism` threads, each job taken from a shared queue.
void RunParallel(int parallelism, const std::vector<std::function<void()>>& jobs) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < parallelism; ++i) {
    threads.emplace_back([&] {
      for (size_t j; (j = next++) < jobs.size();) jobs[j]();
    });
  }
  for (std::thread& t : threads) t.join();
}

// "psql -X -q -v ON_ERROR_STOP=1 '<dsn>' -c '<sql>'" for a shell pipeline.
std::string PsqlCommand(const std::string& dsn, const std::string& sql) {
  auto quote = [](const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  };
  return absl::StrCat(testing::PgBinDir(), "/psql -X -q -v ON_ERROR_STOP=1 ", quote(dsn), " -c ",
                      quote(sql));
}

// One pipe of two psql processes, as a user would type it.
void PsqlPipe(const std::string& source_dsn, const std::string& copy_out,
              const std::string& target_dsn, const std::string& copy_in) {
  RunOrDie({"bash", "-c",
            absl::StrCat("set -o pipefail; ", PsqlCommand(source_dsn, copy_out), " | ",
                         PsqlCommand(target_dsn, copy_in))});
}

class Bench {
 public:
  explicit Bench(Options options) : options_(std::move(options)) {}

  void Run() {
    if (options_.WantsLoopbackClusters()) StartClusters();
    if (options_.Wants("plain")) PlainCopy();
    if (options_.Wants("compressed")) CompressedCopy();
    if (options_.Wants("stage")) StageAndLease();
    if (options_.Wants("memory") && options_.memory_gb > 0) WorkerMemory();
    // Long (a million tasks): only when asked for.
    if (options_.Named("scale")) ScaleFigures(*source_, *target_, options_.scale, &figures_);
    // Needs root and namespaces, clusters of its own: only when asked for.
    if (options_.Named("wan")) {
      source_.reset();
      target_.reset();
      WanFigures(options_.wan, &figures_);
    }
    std::cout << "ratios: " << absl::StrJoin(figures_.ratios, ", ") << std::endl;
    std::ofstream json(options_.json_path);
    json << "{\n  " << absl::StrJoin(figures_.json, ",\n  ") << "\n}\n";
    std::cout << "results written to " << options_.json_path << std::endl;
  }

 private:
  void StartClusters() {
    for (auto [name, slot] : {std::pair{"bench-source", &source_}, {"bench-target", &target_}}) {
      testing::PgClusterOptions options;
      options.name = name;
      absl::StatusOr<std::unique_ptr<PgCluster>> cluster = PgCluster::Start(options);
      if (!cluster.ok()) Die(std::string(cluster.status().message()));
      if (!(*cluster)->has_timescaledb()) Die("TimescaleDB is not installed for PostgreSQL 15");
      *slot = *std::move(cluster);
    }
    std::cout << "machine: " << std::thread::hardware_concurrency() << " cores; PostgreSQL 15, "
              << "TimescaleDB "
              << Value(*source_, "postgres",
                       "SELECT default_version FROM pg_available_extensions WHERE name = "
                       "'timescaledb'")
              << std::endl;
  }

  void CreateDatabase(const std::string& db) {
    if (!source_->CreateDatabase(db).ok() || !target_->CreateDatabase(db).ok()) {
      Die("cannot create database " + db);
    }
  }

  // `table` with `rows` rows over `chunks` daily chunks on the source, empty on the target;
  // compressed (segmentby device, orderby time) on both when `compress`.
  void CreateTable(const std::string& db, const std::string& table, bool compress) {
    std::string ddl = absl::StrCat(
        "CREATE TABLE ", table,
        " (time timestamptz NOT NULL, device int NOT NULL, v1 float8, v2 float8, note text);"
        "SELECT create_hypertable('",
        table, "', 'time', chunk_time_interval => interval '1 day');");
    if (compress) {
      absl::StrAppend(&ddl, "ALTER TABLE ", table,
                      " SET (timescaledb.compress, timescaledb.compress_segmentby = 'device', "
                      "timescaledb.compress_orderby = 'time');");
    }
    Exec(*source_, db, ddl);
    Exec(*target_, db, ddl);
    const double step = 86400.0 * options_.chunks / static_cast<double>(options_.rows);
    Exec(*source_, db,
         absl::StrFormat("INSERT INTO %s SELECT timestamptz '2024-01-01 00:00+00' + "
                         "(i * %.9f) * interval '1 second', i %% 100, random(), i * 0.25, "
                         "'note ' || (i %% 1000) FROM generate_series(0, %d) i",
                         table, step, options_.rows - 1));
    if (compress) {
      Exec(*source_, db,
           absl::StrCat("SELECT count(compress_chunk(c)) FROM show_chunks('", table, "') c"));
    }
    Exec(*source_, db, absl::StrCat("ANALYZE ", table));
  }

  std::vector<std::string> Databases(const std::string& db) const {
    return {"--source", source_->Dsn(db), "--target", target_->Dsn(db)};
  }

  void Stage(const std::string& db) {
    std::vector<std::string> argv = {Bin("timescaledb-backfill"), "stage", "--until", "2030-01-01"};
    for (const std::string& a : Databases(db)) argv.push_back(a);
    RunOrDie(argv);
  }

  // (source chunk, target chunk) of every task.
  std::vector<std::pair<std::string, std::string>> Tasks(const std::string& db) {
    absl::StatusOr<testing::QueryRows> rows = target_->Query(
        db,
        "SELECT format('%I.%I', chunk_schema, chunk_name), format('%I.%I', "
        "target_chunk_schema, target_chunk_name) FROM __backfill.task ORDER BY task_id");
    if (!rows.ok()) Die(std::string(rows.status().message()));
    std::vector<std::pair<std::string, std::string>> tasks;
    for (const auto& row : *rows) tasks.emplace_back(*row[0], *row[1]);
    return tasks;
  }

  // Empties the target chunks and makes every task pending again, as after stage.
  void ResetTarget(const std::string& db) {
    std::vector<std::string> chunks;
    for (const auto& task : Tasks(db)) chunks.push_back(task.second);
    Exec(*target_, db,
         absl::StrCat("TRUNCATE ", absl::StrJoin(chunks, ", "),
                      "; UPDATE __backfill.task SET worked = NULL, rows_copied = NULL, "
                      "bytes_copied = NULL, lease_holder = NULL, lease_expires_at = NULL, "
                      "attempts = 0, last_error = NULL; CHECKPOINT"));
  }

  void ExpectRows(const std::string& db, const std::string& table, const std::string& what) {
    const int64_t rows = IntValue(*target_, db, absl::StrCat("SELECT count(*) FROM ", table));
    if (rows != options_.rows) {
      Die(absl::StrCat(what, ": the target holds ", rows, " rows, not ", options_.rows));
    }
  }

  double OurCopy(const std::string& db, int parallelism, bool bulk_load = true) {
    std::vector<std::string> argv = {Bin("timescaledb-backfill"), "copy", "-q", "-p",
                                     absl::StrCat(parallelism)};
    if (!bulk_load) argv.push_back("--no-bulk-load");
    for (const std::string& a : Databases(db)) argv.push_back(a);
    const absl::Time start = absl::Now();
    RunOrDie(argv);
    return Seconds(start);
  }

  double PipeCopy(const std::string& db, int parallelism) {
    std::vector<std::function<void()>> jobs;
    for (const auto& [source_chunk, target_chunk] : Tasks(db)) {
      jobs.push_back([this, db, source_chunk = source_chunk, target_chunk = target_chunk] {
        PsqlPipe(
            source_->Dsn(db), absl::StrCat("COPY ", source_chunk, " TO STDOUT (FORMAT binary)"),
            target_->Dsn(db), absl::StrCat("COPY ", target_chunk, " FROM STDIN (FORMAT binary)"));
      });
    }
    const absl::Time start = absl::Now();
    RunParallel(parallelism, jobs);
    return Seconds(start);
  }

  // The ways a plain copy is timed, side by side in every round.
  enum class PlainWay { kPipe, kOurs, kRowByRow };

  double PlainWayCopy(const std::string& db, int parallelism, PlainWay way) {
    ResetTarget(db);
    double seconds = 0;
    switch (way) {
      case PlainWay::kPipe:
        seconds = PipeCopy(db, parallelism);
        break;
      case PlainWay::kOurs:
        seconds = OurCopy(db, parallelism);
        break;
      case PlainWay::kRowByRow:
        seconds = OurCopy(db, parallelism, /*bulk_load=*/false);
        break;
    }
    ExpectRows(db, "public.plain", "a plain copy");
    return seconds;
  }

  static std::string Rounds(const std::vector<double>& ratios) {
    return absl::StrJoin(ratios, " ",
                         [](std::string* out, double r) { absl::StrAppendFormat(out, "%.2f", r); });
  }

  void PlainCopy() {
    const std::string db = "bench_plain";
    CreateDatabase(db);
    absl::Time start = absl::Now();
    CreateTable(db, "public.plain", false);
    // Two secondary indexes, as the time index create_hypertable makes and one per device.
    for (PgCluster* side : {source_.get(), target_.get()}) {
      Exec(*side, db, "CREATE INDEX plain_device_time_idx ON public.plain (device, time DESC)");
    }
    Stage(db);
    const int64_t bytes = IntValue(
        *source_, db, "SELECT sum(total_bytes) FROM hypertable_detailed_size('public.plain')");
    std::cout << absl::StrFormat(
                     "plain hypertable: %d rows in %d chunks, %.0f MiB with its indexes "
                     "(time; device, time) (built in %.0fs)",
                     options_.rows, options_.chunks, bytes / 1048576.0, Seconds(start))
              << std::endl;
    figures_.Add("plain_rows", static_cast<double>(options_.rows));
    const double rows = static_cast<double>(options_.rows);
    for (int parallelism : {1, 2}) {
      // Each round times the three back to back, in an order that rotates (so none always
      // meets the warmer caches); a ratio is the median of the rounds' ratios, which drift on
      // this noisy machine affects far less than it affects the times themselves.
      std::vector<double> pipe_times, our_times, previous_times, ratios, previous_ratios;
      for (int round = 0; round < options_.rounds; ++round) {
        double seconds[3] = {0, 0, 0};
        for (int turn = 0; turn < 3; ++turn) {
          const int way = (round + turn) % 3;
          seconds[way] = PlainWayCopy(db, parallelism, static_cast<PlainWay>(way));
        }
        pipe_times.push_back(seconds[0]);
        our_times.push_back(seconds[1]);
        previous_times.push_back(seconds[2]);
        ratios.push_back(seconds[0] / seconds[1]);
        previous_ratios.push_back(seconds[0] / seconds[2]);
      }
      const double pipe = Median(pipe_times), ours = Median(our_times),
                   previous = Median(previous_times), ratio = Median(ratios),
                   previous_ratio = Median(previous_ratios);
      std::cout << absl::StrFormat(
                       "copy plain, P=%d: psql pipe %.2fs (%.0f rows/s), ours %.2fs (%.0f "
                       "rows/s), ours row by row (--no-bulk-load, the previous path) %.2fs, "
                       "medians of %d rounds; ours/pipe throughput %.2f (rounds: %s), row by "
                       "row/pipe %.2f (rounds: %s)",
                       parallelism, pipe, rows / pipe, ours, rows / ours, previous, options_.rounds,
                       ratio, Rounds(ratios), previous_ratio, Rounds(previous_ratios))
                << std::endl;
      figures_.Add(absl::StrCat("plain_p", parallelism, "_pipe_seconds"), pipe);
      figures_.Add(absl::StrCat("plain_p", parallelism, "_ours_seconds"), ours);
      figures_.Add(absl::StrCat("plain_p", parallelism, "_row_by_row_seconds"), previous);
      figures_.Add(absl::StrCat("plain_p", parallelism, "_ratio"), ratio);
      figures_.Add(absl::StrCat("plain_p", parallelism, "_row_by_row_ratio"), previous_ratio);
      figures_.ratios.push_back(
          absl::StrFormat("plain P=%d %.2f (target >= 2.0)", parallelism, ratio));
    }
    // What the target owes later: VACUUM (FREEZE) of what each way loaded. Frozen rows leave
    // it nothing to rewrite.
    double vacuum[3] = {0, 0, 0};
    for (PlainWay way : {PlainWay::kPipe, PlainWay::kOurs, PlainWay::kRowByRow}) {
      PlainWayCopy(db, 2, way);
      const absl::Time vacuum_start = absl::Now();
      Exec(*target_, db, "VACUUM (FREEZE) public.plain");
      vacuum[static_cast<int>(way)] = Seconds(vacuum_start);
    }
    std::cout << absl::StrFormat(
                     "VACUUM (FREEZE) of the loaded target afterwards: after the psql pipe "
                     "%.2fs, after ours %.2fs, after ours row by row %.2fs",
                     vacuum[0], vacuum[1], vacuum[2])
              << std::endl;
    figures_.Add("plain_vacuum_freeze_after_pipe_seconds", vacuum[0]);
    figures_.Add("plain_vacuum_freeze_after_ours_seconds", vacuum[1]);
    figures_.Add("plain_vacuum_freeze_after_row_by_row_seconds", vacuum[2]);
  }

  void CompressedCopy() {
    const std::string db = "bench_compressed";
    CreateDatabase(db);
    absl::Time start = absl::Now();
    CreateTable(db, "public.comp", true);
    Stage(db);
    const int64_t bytes = IntValue(
        *source_, db, "SELECT sum(total_bytes) FROM hypertable_detailed_size('public.comp')");
    std::cout << absl::StrFormat(
                     "compressed hypertable: %d rows in %d compressed chunks, %.0f MiB (built in "
                     "%.0fs)",
                     options_.rows, options_.chunks, bytes / 1048576.0, Seconds(start))
              << std::endl;
    constexpr int kParallelism = 2;
    // Baseline: decompress through SELECT, copy rows into the hypertable, compress there.
    std::vector<std::function<void()>> jobs;
    for (const auto& [source_chunk, target_chunk] : Tasks(db)) {
      jobs.push_back([this, db, source_chunk = source_chunk, target_chunk = target_chunk] {
        PsqlPipe(source_->Dsn(db),
                 absl::StrCat("COPY (SELECT * FROM ", source_chunk, ") TO STDOUT (FORMAT binary)"),
                 target_->Dsn(db), "COPY public.comp FROM STDIN (FORMAT binary)");
        Exec(*target_, db, absl::StrCat("SELECT compress_chunk('", target_chunk, "')"));
      });
    }
    Exec(*target_, db, "CHECKPOINT");
    start = absl::Now();
    RunParallel(kParallelism, jobs);
    const double baseline = Seconds(start);
    ExpectRows(db, "public.comp", "decompress-copy-recompress");
    // Ours, into the same (now compressed) target chunks: they are emptied first.
    Exec(*target_, db, "CHECKPOINT");
    const double ours = OurCopy(db, kParallelism);
    ExpectRows(db, "public.comp", "our compressed copy");
    std::cout << absl::StrFormat(
                     "copy compressed, P=%d: decompress-copy-recompress %.2fs, ours %.2fs: %.1fx "
                     "faster",
                     kParallelism, baseline, ours, baseline / ours)
              << std::endl;
    figures_.Add("compressed_baseline_seconds", baseline);
    figures_.Add("compressed_ours_seconds", ours);
    figures_.Add("compressed_speedup", baseline / ours);
    figures_.ratios.push_back(absl::StrFormat("compressed %.1fx (target >= 5x)", baseline / ours));
  }

  void StageAndLease() {
    const std::string db = "bench_stage";
    CreateDatabase(db);
    const std::string ddl =
        "CREATE TABLE public.s (time timestamptz NOT NULL, v int);"
        "SELECT create_hypertable('public.s', 'time', chunk_time_interval => interval '1 hour')";
    Exec(*source_, db, ddl);
    Exec(*target_, db, ddl);
    absl::Time start = absl::Now();
    // A thousand new chunks per statement: each new chunk holds a lock until commit.
    for (int first = 0; first < options_.stage_chunks; first += 1000) {
      Exec(*source_, db,
           absl::StrCat("INSERT INTO public.s SELECT timestamptz '2020-01-01 00:00+00' + i * "
                        "interval '1 hour', i FROM generate_series(",
                        first, ", ", std::min(first + 1000, options_.stage_chunks) - 1, ") i"));
    }
    std::cout << absl::StrFormat("stage source: %d one-hour chunks (built in %.0fs)",
                                 options_.stage_chunks, Seconds(start))
              << std::endl;
    start = absl::Now();
    Stage(db);
    const double stage = Seconds(start);
    std::cout << absl::StrFormat("stage %d chunks: %.2fs", options_.stage_chunks, stage)
              << std::endl;
    figures_.Add("stage_chunks", options_.stage_chunks);
    figures_.Add("stage_seconds", stage);
    figures_.ratios.push_back(absl::StrFormat("stage %.1fs (target < 30s)", stage));
    LeaseRoundTrip(db);
  }

  // What a worker's commit does to its task, done here at once: a worker whose copies take no
  // time. Keeps the task table as a real copy has it (few leases held at a time).
  void Complete(const std::string& db, const v1::LeaseTaskResponse& lease) {
    Exec(*target_, db,
         absl::StrCat("UPDATE __backfill.task SET worked = tstzrange(now(), now(), '[]'), "
                      "lease_expires_at = NULL, lease_backend_pid = NULL WHERE task_id = ",
                      lease.task().task_id(), " AND lease_epoch = ", lease.task().lease_epoch()));
  }

  // A copy job is open on the 10,000 staged tasks; 16 workers poll for leases at the idle
  // interval while one more leases as fast as it can. Each granted task is completed at once
  // (outside the timed call), as by a worker whose copies take no time.
  void LeaseRoundTrip(const std::string& db) {
    const std::string address = absl::StrCat("127.0.0.1:", testing::FreeLoopbackPort());
    BackgroundProcess coordinator({Bin("backfill-coordinator"), "--listen", address},
                                  source_->dir() + "/bench-coordinator.log");
    for (int i = 0; i < 100 && !absl::StrContains(testing::ReadFile(coordinator.log_path()),
                                                  "listening on port");
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::shared_ptr<grpc::ChannelCredentials> credentials = *ClientCredentials(TlsFiles{});
    ControlClient control(address, "", credentials);
    v1::CopyRequest copy;
    copy.mutable_databases()->set_source(source_->Dsn(db));
    copy.mutable_databases()->set_target(target_->Dsn(db));
    std::atomic<bool> job_open{false};
    std::thread job(
        [&] { (void)control.Copy(copy, [&](const v1::CopyProgress&) { job_open = true; }); });
    while (!job_open) std::this_thread::sleep_for(std::chrono::milliseconds(20));

    std::atomic<bool> stop{false};
    std::vector<std::thread> idle;
    for (int i = 0; i < options_.idle_workers; ++i) {
      idle.emplace_back([&, i] {
        GrpcCoordinatorClient client(address, "", credentials);
        v1::RegisterWorkerRequest hello;
        hello.set_worker_name(absl::StrCat("idle-", i));
        absl::StatusOr<v1::RegisterWorkerResponse> me = client.RegisterWorker(hello);
        if (!me.ok()) return;
        v1::LeaseTaskRequest ask;
        ask.set_worker_id(me->worker_id());
        while (!stop) {
          absl::StatusOr<v1::LeaseTaskResponse> lease = client.LeaseTask(ask);
          if (lease.ok() && lease->kind() == v1::LeaseTaskResponse::TASK) Complete(db, *lease);
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
      });
    }
    GrpcCoordinatorClient client(address, "", credentials);
    v1::RegisterWorkerRequest hello;
    hello.set_worker_name("bench");
    v1::LeaseTaskRequest ask;
    ask.set_worker_id(client.RegisterWorker(hello)->worker_id());
    std::vector<double> millis;
    int granted = 0;
    for (int i = 0; i < 1000; ++i) {
      const absl::Time t = absl::Now();
      absl::StatusOr<v1::LeaseTaskResponse> lease = client.LeaseTask(ask);
      millis.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
      if (lease.ok() && lease->kind() == v1::LeaseTaskResponse::TASK) {
        ++granted;
        Complete(db, *lease);
      }
    }
    stop = true;
    for (std::thread& t : idle) t.join();
    control.CancelCopy();
    job.join();
    std::sort(millis.begin(), millis.end());
    const double median = millis[millis.size() / 2];
    const double p99 = millis[millis.size() * 99 / 100];
    std::cout << absl::StrFormat(
                     "lease round trip with %d idle workers polling: median %.2f ms, p99 %.2f "
                     "ms (%d of %d calls granted a task)",
                     options_.idle_workers, median, p99, granted, millis.size())
              << std::endl;
    figures_.Add("lease_median_ms", median);
    figures_.Add("lease_p99_ms", p99);
    figures_.ratios.push_back(absl::StrFormat("lease median %.2f ms (target < 5 ms)", median));
  }

  // A backfill-worker process copies one chunk of about options_.memory_gb GB; its peak
  // resident set (VmHWM) is read before it exits.
  void WorkerMemory() {
    const std::string db = "bench_memory";
    CreateDatabase(db);
    const std::string ddl =
        "CREATE TABLE public.m (time timestamptz NOT NULL, device int, v float8, note text);"
        "SELECT create_hypertable('public.m', 'time', chunk_time_interval => interval '1 year')";
    Exec(*source_, db, ddl);
    Exec(*target_, db, ddl);
    // About 150 bytes per row on disk.
    const int64_t rows = static_cast<int64_t>(options_.memory_gb * 1e9 / 150);
    absl::Time start = absl::Now();
    Exec(*source_, db,
         absl::StrCat("INSERT INTO public.m SELECT timestamptz '2024-01-01 00:00+00' + i * "
                      "interval '1 second', i % 100, random(), repeat(md5(i::text), 3) FROM "
                      "generate_series(1, ",
                      rows, ") i"));
    const int64_t bytes =
        IntValue(*source_, db, "SELECT sum(total_bytes) FROM hypertable_detailed_size('public.m')");
    std::cout << absl::StrFormat("memory: one chunk of %d rows, %.2f GiB (built in %.0fs)", rows,
                                 bytes / 1073741824.0, Seconds(start))
              << std::endl;
    Stage(db);
    const std::string address = absl::StrCat("127.0.0.1:", testing::FreeLoopbackPort());
    BackgroundProcess coordinator({Bin("backfill-coordinator"), "--listen", address},
                                  source_->dir() + "/bench-memory-coordinator.log");
    BackgroundProcess worker({Bin("backfill-worker"), "--coordinator", address},
                             source_->dir() + "/bench-memory-worker.log");
    std::vector<std::string> argv = {Bin("backfillctl"), "copy", "-q", "--coordinator", address};
    for (const std::string& a : Databases(db)) argv.push_back(a);
    start = absl::Now();
    RunOrDie(argv);
    const double seconds = Seconds(start);
    const std::string status = testing::ReadFile(absl::StrCat("/proc/", worker.pid(), "/status"));
    int64_t peak_kib = -1;
    for (absl::string_view line : absl::StrSplit(status, '\n')) {
      if (absl::ConsumePrefix(&line, "VmHWM:")) {
        (void)absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(line), " kB"),
                               &peak_kib);
      }
    }
    const double peak_mib = static_cast<double>(peak_kib) / 1024;
    std::cout << absl::StrFormat(
                     "worker peak resident memory copying that chunk: %.1f MiB (copy took %.1fs)",
                     peak_mib, seconds)
              << std::endl;
    figures_.Add("memory_chunk_bytes", static_cast<double>(bytes));
    figures_.Add("memory_worker_peak_mib", peak_mib);
    figures_.ratios.push_back(
        absl::StrFormat("worker memory %.0f MiB (target < 100 MiB)", peak_mib));
  }

  const Options options_;
  std::unique_ptr<PgCluster> source_, target_;
  Figures figures_;
};

}  // namespace
}  // namespace backfill::bench

int main(int argc, char** argv) {
  CLI::App app{"backfill_bench: our copy against psql pipes, side by side, on throwaway clusters"};
  backfill::bench::Options options;
  app.add_option("--rows", options.rows, "rows in each of the plain and compressed hypertables")
      ->capture_default_str();
  app.add_option("--chunks", options.chunks, "daily chunks they are spread over")
      ->capture_default_str();
  app.add_option("--rounds", options.rounds,
                 "rounds of the plain comparison (medians are reported)")
      ->capture_default_str();
  app.add_option("--stage-chunks", options.stage_chunks, "chunks for the staging figure")
      ->capture_default_str();
  app.add_option("--idle-workers", options.idle_workers, "workers polling during the lease figure")
      ->capture_default_str();
  app.add_option("--memory-gb", options.memory_gb,
                 "size of the chunk for the worker memory figure (0 skips it)")
      ->capture_default_str();
  app.add_option("--json", options.json_path, "where to write the results")->capture_default_str();
  app.add_option("--only", options.only,
                 "run only these figures, comma-separated: plain, compressed, stage, memory, "
                 "scale, wan (scale and wan run only when named)");
  app.add_option("--scale-tasks", options.scale.tasks, "task counts of the scale figures")
      ->capture_default_str();
  app.add_option("--scale-workers", options.scale.workers, "workers in the scale figures")
      ->capture_default_str();
  app.add_option("--scale-phase-seconds", options.scale.phase_seconds,
                 "how long each scale phase measures")
      ->capture_default_str();
  app.add_option("--scale-stage-small", options.scale.stage_small,
                 "real chunks staged for the small staging figure (0 skips staging)")
      ->capture_default_str();
  app.add_option("--scale-stage-large", options.scale.stage_large,
                 "real chunks staged for the large staging figure")
      ->capture_default_str();
  app.add_option("--wan-rows", options.wan.rows,
                 "rows of the wan figure's table (over --chunks daily chunks)")
      ->capture_default_str();
  app.add_option("--wan-parallel", options.wan.parallel,
                 "wan: chunks at a time (psql pipes; workers next to the target)")
      ->capture_default_str();
  app.add_option("--wan-rate", options.wan.rate, "each wan host's egress rate (tc tbf)")
      ->capture_default_str();
  app.add_option("--wan-delay-ms", options.wan.delay_ms,
                 "delay each way across the wan link (backfill_delay_line)")
      ->capture_default_str();
  options.wan.results_prefix = BACKFILL_BENCH_DIR "/wan-results";
  app.add_option("--wan-results", options.wan.results_prefix,
                 "the wan figure also writes PREFIX.json and PREFIX.txt (\"\": neither)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.wan.chunks = options.chunks;
  options.wan.rounds = options.rounds;
  try {
    backfill::bench::Bench(options).Run();
  } catch (const backfill::bench::BenchFailure& e) {
    std::cerr << "backfill_bench: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
