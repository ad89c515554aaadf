#include "ctl/commands.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "backfill_common_sql.h"
#include "backfill_ctl_sql.h"
#include "common/auth.h"
#include "common/catalog.h"
#include "common/json.h"
#include "common/pg.h"
#include "common/quote.h"
#include "common/signals.h"
#include "coordinator/coordinator.h"
#include "coordinator/server.h"
#include "ctl/control_client.h"
#include "ctl/progress.h"
#include "ctl/status.h"
#include "proto/credentials.h"
#include "worker/grpc_coordinator_client.h"
#include "worker/worker.h"

namespace backfill {
namespace {

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << std::endl;
  return kExitError;
}

// A coordinator and, for copy, workers, all inside this process: the spec's one-machine
// commands. They talk over loopback gRPC exactly like a cluster does.
class Embedded {
 public:
  absl::Status Start() {
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
        CoordinatorServer::Start("127.0.0.1:0", &coordinator_, token_);
    if (!server.ok()) {
      return absl::Status(
          server.status().code(),
          absl::StrCat("cannot start the embedded coordinator: ", server.status().message()));
    }
    server_ = *std::move(server);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
    return absl::OkStatus();
  }
  void StartWorkers(int n) {
    for (int i = 0; i < n; ++i) {
      clients_.push_back(std::make_unique<GrpcCoordinatorClient>(address_, token_,
                                                                 *ClientCredentials(TlsFiles{})));
      WorkerOptions options;
      options.name = absl::StrCat(DefaultWorkerName(), "/", i + 1);
      options.application_name = "timescaledb-backfill worker";
      workers_.push_back(std::make_unique<Worker>(options, clients_.back().get()));
      threads_.emplace_back([w = workers_.back().get()] { w->Run(); });
    }
  }
  // Workers finish the chunk in progress, then return.
  void StopWorkers() {
    coordinator_.Close();  // answers their lease requests at once
    for (auto& w : workers_) w->Stop();
  }
  void Join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  // The second Ctrl-C: every chunk in progress is rolled back now (see Worker::Abort), and
  // the target says which ones were and which committed first. Any thread; printed on stdout.
  void AbortWorkers(const std::string& target_conninfo) {
    const std::string prefix = absl::StrCat(DefaultWorkerName(), "/");
    absl::StatusOr<std::unique_ptr<pg::Connection>> target =
        pg::Connection::Open(target_conninfo, "backfillctl", "target");
    absl::StatusOr<pg::Result> held = target.ok() ? (*target)->Exec(sql::kHeldChunks, {prefix})
                                                  : absl::StatusOr<pg::Result>(target.status());
    coordinator_.Close();
    bool stopped = true;
    for (auto& w : workers_) stopped = w->Abort(absl::Seconds(10)) && stopped;
    if (!held.ok()) {
      std::cerr << "cannot tell which chunks were in progress: " << held.status().message()
                << std::endl;
      return;
    }
    std::vector<std::string> ids;
    ids.reserve(held->rows());
    for (int i = 0; i < held->rows(); ++i) ids.push_back(held->Get(i, 0));
    absl::StatusOr<pg::Result> done =
        (*target)->Exec(sql::kChunksDone, {absl::StrCat("{", absl::StrJoin(ids, ","), "}")});
    if (!done.ok()) {
      std::cerr << "cannot tell which chunks were rolled back: " << done.status().message()
                << std::endl;
      return;
    }
    std::vector<std::string> rolled_back, committed;
    for (int i = 0; i < done->rows(); ++i) {
      (done->GetBool(i, 1) ? committed : rolled_back).push_back(done->Get(i, 0));
    }
    std::cout << "Aborted: rolled back the copies of " << rolled_back.size()
              << " chunks in progress" << (rolled_back.empty() ? "." : ":") << std::endl;
    for (const std::string& chunk : rolled_back) std::cout << "  " << chunk << std::endl;
    if (!committed.empty()) {
      std::cout << committed.size()
                << " chunks committed before they could be stopped:" << std::endl;
      for (const std::string& chunk : committed) std::cout << "  " << chunk << std::endl;
    }
    if (!stopped) {
      std::cout << "Some workers did not stop in time; their sessions end with this process."
                << std::endl;
    }
  }
  ~Embedded() {
    StopWorkers();
    Join();
    if (server_ != nullptr) server_->Shutdown();
  }
  const std::string& address() const { return address_; }
  const std::string& token() const { return token_; }

 private:
  // Even on loopback, other local users must not drive this process's coordinator.
  const std::string token_ = RandomToken();
  Coordinator coordinator_{CoordinatorOptions{}};
  std::unique_ptr<CoordinatorServer> server_;
  std::string address_;
  std::vector<std::unique_ptr<GrpcCoordinatorClient>> clients_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
};

// The cutoff as the coordinator parsed it, and what the user should know about the target.
void PrintCutoffAndNotes(const v1::StagedHypertable& h) {
  if (!h.from().empty()) std::cout << "  rows from " << h.from() << "\n";
  if (!h.until().empty()) std::cout << "  rows before " << h.until() << "\n";
  for (const std::string& note : h.notes()) std::cout << "  note: " << note << "\n";
}

int PrintDryRun(const v1::StageResponse& response, const CtlOptions& options) {
  int64_t chunks = 0, bytes = 0, uncompressed = 0;
  for (const v1::StagedHypertable& h : response.hypertables()) {
    int64_t h_bytes = 0, h_uncompressed = 0;
    std::cout << (h.cagg_view().empty() ? DisplayName(h.schema(), h.name())
                                        : "continuous aggregate " + h.cagg_view())
              << ": " << h.chunks_staged() << " chunks to stage";
    if (h.chunks_widened() > 0) std::cout << ", " << h.chunks_widened() << " to widen";
    if (h.chunks_already_staged() > 0) {
      std::cout << ", " << h.chunks_already_staged() << " already staged";
    }
    std::cout << "\n";
    PrintCutoffAndNotes(h);
    for (const v1::PlannedChunk& c : h.planned()) {
      std::cout << "  " << c.action() << " " << c.chunk() << ": "
                << (c.compressed()
                        ? absl::StrCat("compressed, ", HumanBytes(c.bytes()), " (",
                                       HumanBytes(c.uncompressed_bytes()), " uncompressed)")
                        : HumanBytes(c.bytes()))
                << (c.cut_from() ? ", cut at --from" : "") << (c.cut() ? ", cut at --until" : "")
                << "\n";
      if (c.action() == "already staged") continue;
      ++chunks;
      h_bytes += c.bytes();
      h_uncompressed += c.uncompressed_bytes();
    }
    std::cout << "  to copy: " << HumanBytes(h_bytes) << " on disk, " << HumanBytes(h_uncompressed)
              << " uncompressed\n";
    bytes += h_bytes;
    uncompressed += h_uncompressed;
  }
  std::cout << "Total to copy: " << chunks << " chunks, " << HumanBytes(bytes) << " on disk ("
            << HumanBytes(uncompressed) << " uncompressed).\n";
  // Compressed chunks go across compressed: what moves is roughly their size on disk.
  double rate = options.throughput_mib * 1024 * 1024;
  std::string source = "given with --throughput";
  if (rate <= 0 && response.sampled_bytes_per_second() > 0) {
    rate = response.sampled_bytes_per_second();
    source = "the source's read rate on a sample chunk; writing the target usually takes longer";
  }
  if (rate > 0) {
    std::cout << "Estimated copy time with one worker: "
              << HumanDuration(absl::Seconds(static_cast<double>(bytes) / rate)) << " at "
              << HumanBytes(static_cast<int64_t>(rate)) << "/s (" << source
              << "); workers in parallel divide it, up to what the databases sustain.\n";
  } else {
    std::cout << "No estimate: no uncompressed chunk to sample; give --throughput.\n";
  }
  std::cout << "Dry run: nothing was written to either database." << std::endl;
  return kExitOk;
}

int RunStage(ControlClient& client, const CtlOptions& options) {
  v1::StageRequest request;
  *request.mutable_databases() = options.databases;
  request.set_until(options.until);
  request.set_from(options.from);
  request.set_filter(options.filter);
  request.set_cascade_up(options.cascade_up);
  request.set_cascade_down(options.cascade_down);
  request.set_dry_run(options.dry_run);
  request.set_allow_active_jobs(options.allow_active_jobs);
  request.set_replace_target_rows(options.replace_target_rows);
  absl::StatusOr<v1::StageResponse> response = client.Stage(request);
  if (!response.ok()) return Fail(response.status());
  if (!response->nothing_to_stage().empty()) {
    std::cout << "Nothing to stage: " << response->nothing_to_stage() << "."
              << (options.dry_run ? "" : " The target's __backfill schema is ready.") << std::endl;
    return kExitOk;
  }
  if (options.dry_run) return PrintDryRun(*response, options);
  int64_t staged = 0, already = 0, widened = 0;
  for (const v1::StagedHypertable& h : response->hypertables()) {
    std::cout << "staged " << h.chunks_staged() << " chunks of "
              << (h.cagg_view().empty() ? DisplayName(h.schema(), h.name())
                                        : "continuous aggregate " + h.cagg_view());
    if (h.chunks_cut_from() > 0 && h.chunks_cut() > 0) {
      std::cout << " (" << h.chunks_cut_from() << " cut at --from, " << h.chunks_cut()
                << " cut at --until)";
    } else if (h.chunks_cut_from() > 0) {
      std::cout << " (" << h.chunks_cut_from() << " cut at --from)";
    } else if (h.chunks_cut() > 0) {
      std::cout << " (" << h.chunks_cut() << " cut at --until)";
    }
    if (h.chunks_widened() > 0) {
      std::cout << "; " << h.chunks_widened() << " widened to the new range (re-opened: copy "
                << "copies them again)";
    }
    if (h.chunks_already_staged() > 0) {
      std::cout << "; " << h.chunks_already_staged() << " were already staged";
    }
    std::cout << "\n";
    PrintCutoffAndNotes(h);
    staged += h.chunks_staged();
    already += h.chunks_already_staged();
    widened += h.chunks_widened();
  }
  std::cout << "Staged " << staged << " chunks to copy (" << response->target_chunks_created()
            << " target chunks created";
  if (widened > 0) std::cout << ", " << widened << " chunks widened and re-opened";
  if (already > 0) std::cout << ", " << already << " chunks already staged";
  std::cout << ").\nExecute the 'copy' command to migrate the data." << std::endl;
  return kExitOk;
}

ProgressCounts CountsOf(const v1::CopyProgress& progress) {
  ProgressCounts counts;
  counts.total = progress.tasks_total();
  counts.done = progress.tasks_done();
  counts.failed = progress.tasks_failed();
  counts.leased = progress.tasks_leased();
  counts.rows = progress.rows_copied();
  counts.bytes = progress.bytes_copied();
  return counts;
}

const char* OutcomeName(v1::ReportTaskRequest::Outcome outcome) {
  switch (outcome) {
    case v1::ReportTaskRequest::COPIED:
      return "copied";
    case v1::ReportTaskRequest::SOURCE_MISSING:
      return "source_missing";
    case v1::ReportTaskRequest::FAILED:
      return "failed";
    case v1::ReportTaskRequest::FENCED:
      return "fenced";
    case v1::ReportTaskRequest::VERIFIED:
      return "verified";
    case v1::ReportTaskRequest::ABORTED:
      return "aborted";
    default:
      return "unknown";
  }
}

std::string EventJson(const v1::TaskEvent& e) {
  return absl::StrCat("{\"event\":\"chunk\",\"chunk\":", JsonQuote(e.chunk()),
                      ",\"hypertable\":", JsonQuote(e.hypertable()),
                      ",\"worker\":", JsonQuote(e.worker_id()), ",\"outcome\":\"",
                      OutcomeName(e.outcome()), "\",\"rows\":", e.rows(), ",\"bytes\":", e.bytes(),
                      ",\"error\":", JsonQuote(e.error()), "}");
}

// Progress goes to stderr (a bar on a terminal, else a line per interval), JSON to stdout.
ProgressStyle StyleFor(const CtlOptions& options, bool json_progress) {
  if (options.quiet) return ProgressStyle::kQuiet;
  if (options.json && json_progress) return ProgressStyle::kJson;
  return StderrIsTerminal() ? ProgressStyle::kBar : ProgressStyle::kLines;
}

int RunCopy(ControlClient& client, const CtlOptions& options, Embedded* embedded) {
  v1::CopyRequest request;
  *request.mutable_databases() = options.databases;
  request.set_allow_active_jobs(options.allow_active_jobs);
  request.set_repair(options.repair);
  if (embedded != nullptr) request.set_planned_workers(options.parallelism);
  if (options.max_rate >= 0) request.set_max_bytes_per_second(options.max_rate);
  if (options.max_chunks_per_hypertable >= 0) {
    request.set_max_chunks_per_hypertable(options.max_chunks_per_hypertable);
  }
  absl::Time start = absl::Now();
  v1::CopyProgress last;
  const ProgressStyle style = StyleFor(options, /*json_progress=*/true);
  const bool json = style == ProgressStyle::kJson;
  ProgressDisplay display(style, "copied", json ? std::cout : std::cerr, options.progress_interval,
                          TerminalWidth());
  // Chunk lines on stdout: without a terminal always, on one only with -v (the bar says it).
  const bool chunk_lines =
      style == ProgressStyle::kLines || (style == ProgressStyle::kBar && options.verbose);
  int64_t shown = -1;       // finished chunks printed so far, counting those done before this run
  int64_t copied_here = 0;  // chunks this run finished
  std::set<std::string> lines_printed;  // chunks with a line, for the summary after Ctrl-C
  int64_t pending_at_start = -1;        // by the first progress message
  auto on_progress = [&](const v1::CopyProgress& progress) {
    if (shown < 0) {
      if (options.repair && !json && style != ProgressStyle::kQuiet) {
        std::cout << "Re-opened " << progress.reopened_size()
                  << " chunks the last verify found different";
        for (const std::string& chunk : progress.reopened()) std::cout << "\n  " << chunk;
        std::cout << std::endl;
      }
      const int64_t pending = progress.tasks_total() - progress.tasks_done_at_start();
      pending_at_start = pending;
      if (json) {
        std::cout << "{\"event\":\"start\",\"chunks_total\":" << progress.tasks_total()
                  << ",\"chunks_pending\":" << pending;
        if (options.repair) std::cout << ",\"chunks_reopened\":" << progress.reopened_size();
        std::cout << "}" << std::endl;
      } else if (style != ProgressStyle::kQuiet) {
        std::cout << "Copying " << pending << " pending chunks of " << progress.tasks_total()
                  << " staged" << std::endl;
      }
      shown = progress.tasks_done_at_start();
    }
    for (const v1::TaskEvent& e : progress.events()) {
      const bool counted = e.outcome() == v1::ReportTaskRequest::COPIED ||
                           e.outcome() == v1::ReportTaskRequest::SOURCE_MISSING;
      if (counted) ++shown;
      if (counted) ++copied_here;
      if (json) {
        // The last message ends with the failed tasks, listed again in "finished".
        if (counted || !progress.finished()) std::cout << EventJson(e) << std::endl;
        continue;
      }
      if (e.outcome() == v1::ReportTaskRequest::FAILED && !progress.finished() &&
          style != ProgressStyle::kQuiet) {
        display.Clear();
        std::cerr << "chunk " << e.chunk() << " failed (will retry): " << e.error() << std::endl;
      }
      if (!chunk_lines || !counted) continue;
      display.Clear();
      lines_printed.insert(e.chunk());
      std::cout << "[" << shown << "/" << progress.tasks_total() << "] ";
      if (e.outcome() == v1::ReportTaskRequest::COPIED) {
        std::cout << "copied chunk " << e.chunk() << " (" << e.rows() << " rows, "
                  << HumanBytes(e.bytes()) << ")" << std::endl;
      } else {
        std::cout << "skipped chunk " << e.chunk() << ": it no longer exists on the source"
                  << std::endl;
      }
    }
    if (progress.finished()) {
      display.Finish(CountsOf(progress), absl::Now());
    } else {
      display.Update(CountsOf(progress), absl::Now());
    }
    last = progress;
  };
  // A running coordinator may restart (its state is in the target): reconnect and carry on.
  absl::Status status;
  absl::Time lost_since = absl::InfiniteFuture();
  for (;;) {
    status = client.Copy(request, [&](const v1::CopyProgress& progress) {
      lost_since = absl::InfiniteFuture();
      on_progress(progress);
    });
    // The repair happened with the first message: a reconnect resumes the copy only.
    if (shown >= 0) request.set_repair(false);
    // Reconnect only to a coordinator that was reached before: one never reached (a wrong
    // address, TLS or token) is an error now, not in five minutes.
    if (status.ok() || embedded != nullptr || !absl::IsUnavailable(status) || last.finished() ||
        shown < 0) {
      break;
    }
    const absl::Time now = absl::Now();
    if (lost_since == absl::InfiniteFuture()) {
      lost_since = now;
      display.Clear();
      std::cerr << "lost the coordinator (" << status.message() << "); reconnecting for up to "
                << absl::FormatDuration(options.reconnect_timeout) << std::endl;
    }
    if (now - lost_since > options.reconnect_timeout) break;
    absl::SleepFor(absl::Seconds(1));
  }
  display.Clear();
  if (embedded != nullptr) {
    embedded->StopWorkers();
    embedded->Join();
  }
  if (absl::IsCancelled(status)) {
    // The chunks that committed while the copy shut down get their lines too, then what this
    // run copied and what is left, read from the target.
    absl::StatusOr<std::unique_ptr<pg::Connection>> target =
        pg::Connection::Open(options.databases.target(), "backfillctl", "target");
    absl::StatusOr<pg::Result> rows =
        target.ok()
            ? (*target)->Exec(sql::kInterruptedCopies,
                              {absl::StrCat(absl::ToDoubleSeconds(absl::Now() - start) + 1.0)})
            : absl::StatusOr<pg::Result>(target.status());
    if (rows.ok() && rows->rows() > 0) {
      int64_t copied = 0, copied_rows = 0, copied_bytes = 0;
      const int64_t total = rows->GetInt(0, 4);
      const int64_t left = rows->GetInt(0, 3);
      // Interrupted before the first progress message: number from what was done before.
      if (shown < 0) shown = total - left - (rows->IsNull(0, 0) ? 0 : rows->rows());
      for (int i = 0; i < rows->rows(); ++i) {
        if (rows->IsNull(i, 0)) continue;
        ++copied;
        copied_rows += rows->GetInt(i, 1);
        copied_bytes += rows->GetInt(i, 2);
        if (!chunk_lines || json || lines_printed.count(rows->Get(i, 0)) > 0) continue;
        std::cout << "[" << ++shown << "/" << total << "] copied chunk " << rows->Get(i, 0) << " ("
                  << rows->GetInt(i, 1) << " rows, " << HumanBytes(rows->GetInt(i, 2)) << ")"
                  << std::endl;
      }
      if (json) {
        std::cout << "{\"event\":\"interrupted\",\"chunks_copied\":" << copied
                  << ",\"rows\":" << copied_rows << ",\"bytes\":" << copied_bytes
                  << ",\"chunks_left\":" << left << ",\"chunks_total\":" << total << "}"
                  << std::endl;
      } else {
        std::cout << "Interrupted: copied " << copied << " chunks in this run (" << copied_rows
                  << " rows, " << HumanBytes(copied_bytes) << "); " << left << " of " << total
                  << " chunks left to copy." << std::endl;
      }
    }
    std::cerr << "copy interrupted: chunks in progress were finished or rolled back; run copy "
                 "again to resume"
              << std::endl;
    return kExitInterrupted;
  }
  if (!status.ok()) return Fail(status);
  const absl::Duration elapsed = absl::Trunc(absl::Now() - start, absl::Milliseconds(1));
  if (json) {
    std::string failed;
    for (const v1::TaskEvent& e : last.events()) {
      if (e.outcome() != v1::ReportTaskRequest::FAILED) continue;
      absl::StrAppend(&failed, failed.empty() ? "" : ",", "{\"chunk\":", JsonQuote(e.chunk()),
                      ",\"error\":", JsonQuote(e.error()), "}");
    }
    std::cout << "{\"event\":\"finished\",\"chunks_total\":" << last.tasks_total()
              << ",\"chunks_done\":" << last.tasks_done()
              << ",\"chunks_failed\":" << last.tasks_failed() << ",\"rows\":" << last.rows_copied()
              << ",\"bytes\":" << last.bytes_copied()
              << ",\"elapsed_seconds\":" << absl::ToDoubleSeconds(elapsed) << ",\"failed\":["
              << failed << "]}" << std::endl;
  } else if (copied_here == 0 && pending_at_start == 0 && last.tasks_failed() == 0) {
    // Not "Copied 8 of 8 chunks": this run copied nothing.
    std::cout << (last.tasks_total() == 0
                      ? std::string("Nothing to copy: no chunk is staged.")
                      : absl::StrCat("Nothing to copy: all ", last.tasks_total(),
                                     " staged chunks are copied already."))
              << std::endl;
    return kExitOk;
  } else {
    std::cout << "Copied " << last.tasks_done() << " of " << last.tasks_total() << " chunks ("
              << last.rows_copied() << " rows, " << HumanBytes(last.bytes_copied()) << ") in "
              << absl::FormatDuration(elapsed) << "." << std::endl;
  }
  if (last.tasks_failed() > 0) {
    std::cerr << last.tasks_failed() << " chunks failed:" << std::endl;
    for (const v1::TaskEvent& e : last.events()) {
      if (e.outcome() == v1::ReportTaskRequest::FAILED) {
        std::cerr << "  " << e.chunk() << ": " << e.error() << std::endl;
      }
    }
    std::cerr << "hint: fix the cause and run copy again; only the failed chunks are retried"
              << std::endl;
    return kExitTasksFailed;
  }
  if (!json) std::cout << "Execute the 'verify' command to assert data integrity." << std::endl;
  return kExitOk;
}

int RunVerify(ControlClient& client, const CtlOptions& options) {
  v1::VerifyRequest request;
  *request.mutable_databases() = options.databases;
  request.set_row_hash(options.row_hash);
  ProgressDisplay display(StyleFor(options, /*json_progress=*/false), "verified", std::cerr,
                          options.progress_interval, TerminalWidth());
  absl::StatusOr<v1::VerifyResponse> response = client.Verify(
      request,
      [&](const v1::CopyProgress& progress) { display.Update(CountsOf(progress), absl::Now()); });
  display.Clear();
  if (!response.ok()) return Fail(response.status());
  if (options.json) {
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    print.always_print_primitive_fields = true;
    (void)google::protobuf::util::MessageToJsonString(*response, &json, print);
    std::cout << json << std::endl;
    return response->mismatches() > 0 ? kExitVerifyMismatch : kExitOk;
  }
  for (const v1::ChunkVerification& c : response->chunks()) {
    if (c.matches()) continue;
    std::cout << "MISMATCH " << c.hypertable() << " chunk " << c.source_chunk() << " -> "
              << c.target_chunk();
    if (!c.error().empty()) {
      std::cout << ": " << c.error() << "\n";
      continue;
    }
    std::cout << " (" << c.method() << ")\n";
    for (const v1::Difference& d : c.differences()) {
      std::cout << "  " << d.what() << ": source " << d.source() << ", target " << d.target()
                << "\n";
    }
  }
  int64_t rows = 0;
  for (const v1::ChunkVerification& c : response->chunks()) rows += c.source_rows();
  std::cout << "Verified " << response->chunks_size() << " chunks: " << response->mismatches()
            << " differ. " << rows << " rows compared." << std::endl;
  return response->mismatches() > 0 ? kExitVerifyMismatch : kExitOk;
}

int RunClean(ControlClient& client, const CtlOptions& options) {
  v1::CleanRequest request;
  request.mutable_databases()->set_target(options.databases.target());
  absl::StatusOr<v1::CleanResponse> response = client.Clean(request);
  if (!response.ok()) return Fail(response.status());
  if (response->existed()) {
    std::cout << "Removed the __backfill administrative schema from the target." << std::endl;
  } else {
    std::cout << "Nothing to clean: the target has no __backfill schema." << std::endl;
  }
  return kExitOk;
}

int RunRefreshCaggs(ControlClient& client, const CtlOptions& options) {
  v1::RefreshCaggsRequest request;
  *request.mutable_databases() = options.databases;
  request.set_filter(options.filter);
  request.set_cascade_up(options.cascade_up);
  request.set_cascade_down(options.cascade_down);
  absl::StatusOr<v1::RefreshCaggsResponse> response = client.RefreshCaggs(request);
  if (!response.ok()) return Fail(response.status());
  if (response->caggs_size() == 0) {
    std::cout << "No continuous aggregates to refresh." << std::endl;
    return kExitOk;
  }
  int refreshed = 0;
  for (const v1::RefreshedCagg& c : response->caggs()) {
    if (c.refreshed()) {
      ++refreshed;
      std::cout << "refreshed continuous aggregate " << c.view() << " over ["
                << (c.window_start().empty() ? "start" : c.window_start()) << ", " << c.window_end()
                << ")";
      if (!c.copied_until().empty()) {
        std::cout << "; the copied materialization before " << c.copied_until() << " is kept";
      }
      std::cout << "\n";
    } else {
      std::cout << "continuous aggregate " << c.view() << " is up to date\n";
    }
  }
  std::cout << "Refreshed " << refreshed << " of " << response->caggs_size()
            << " continuous aggregates." << std::endl;
  return kExitOk;
}

}  // namespace

int RunStatus(const CtlOptions& options) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      pg::Connection::Open(options.databases.target(), "backfillctl", "target");
  if (!target.ok()) return Fail(target.status());
  absl::StatusOr<MigrationStatus> status = ReadMigrationStatus(**target);
  if (!status.ok()) return Fail(status.status());
  if (options.json) {
    std::cout << FormatStatusJson(*status) << std::endl;
  } else {
    std::cout << FormatStatusText(*status) << std::flush;
  }
  return kExitOk;
}

// Changes (or shows) __backfill.throttle in the target; a running copy's coordinator picks
// the change up within its progress interval, and its workers at their next heartbeat.
int RunThrottle(const CtlOptions& options) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> target =
      pg::Connection::Open(options.databases.target(), "backfillctl", "target");
  if (!target.ok()) return Fail(target.status());
  absl::StatusOr<pg::Result> exists =
      (*target)->Exec("SELECT pg_catalog.to_regclass('__backfill.task') IS NOT NULL");
  if (!exists.ok()) return Fail(exists.status());
  if (!exists->GetBool(0, 0)) {
    return Fail(absl::FailedPreconditionError(
        "nothing staged: the target has no __backfill schema\nhint: run stage first"));
  }
  if (absl::Status s = (*target)->ExecScript(sql::kCreateThrottle); !s.ok()) return Fail(s);
  absl::StatusOr<pg::Result> row = (*target)->Exec(
      sql::kSetThrottle,
      {options.max_rate >= 0 ? pg::Param(absl::StrCat(options.max_rate)) : pg::Param(),
       options.max_chunks_per_hypertable >= 0
           ? pg::Param(absl::StrCat(options.max_chunks_per_hypertable))
           : pg::Param()});
  if (!row.ok()) return Fail(row.status());
  const int64_t rate = row->GetInt(0, 0);
  const int64_t cap = row->GetInt(0, 1);
  std::cout << "Throttle: " << (rate > 0 ? HumanBytes(rate) + "/s" : std::string("no rate limit"))
            << " for all workers together; "
            << (cap > 0 ? absl::StrCat("at most ", cap, " chunks of one hypertable at a time")
                        : std::string("no cap on chunks per hypertable"))
            << "." << std::endl;
  return kExitOk;
}

// Bad arguments found before anything connects: one message and exit 2, nothing written.
int CheckArguments(const CtlOptions& options) {
  for (const auto& [conninfo, role] : {std::pair{&options.databases.source(), "source"},
                                       std::pair{&options.databases.target(), "target"}}) {
    if (conninfo->empty()) continue;
    if (absl::Status s = pg::ValidateConninfo(*conninfo, role); !s.ok()) {
      std::cerr << "error: " << s.message() << std::endl;
      return kExitUsage;
    }
  }
  if (options.command == "stage") {
    for (const auto& [flag, value] :
         {std::pair{"--until", &options.until}, std::pair{"--from", &options.from}}) {
      if (absl::Status s = CheckAbsoluteTime(flag, *value); !s.ok()) {
        std::cerr << "error: " << s.message() << std::endl;
        return kExitUsage;
      }
    }
  }
  return kExitOk;
}

int RunCommand(const CtlOptions& options) {
  if (int code = CheckArguments(options); code != kExitOk) return code;
  // status and throttle work on the target alone: no coordinator, no signals to handle.
  if (options.command == "status") return RunStatus(options);
  if (options.command == "throttle") return RunThrottle(options);
  std::unique_ptr<Embedded> embedded;
  std::string address = options.coordinator;
  std::string token = options.token;
  // Block the signals before gRPC starts threads; the watcher decides what they mean.
  // Static: the watcher thread outlives this call.
  static std::atomic<ControlClient*> copy_client{nullptr};
  static std::atomic<Embedded*> copy_workers{nullptr};  // embedded mode, during copy
  static std::string target_conninfo;
  target_conninfo = options.databases.target();
  WatchTerminationSignals(
      [] {
        if (ControlClient* c = copy_client.load()) {
          std::cerr << "Shutting down, waiting for in-progress copies to complete... "
                       "(interrupt again to abort them)"
                    << std::endl;
          c->CancelCopy();
        } else {
          _exit(kExitInterrupted);
        }
      },
      [] {
        if (Embedded* e = copy_workers.load()) {
          std::cerr << "Terminating immediately; in-progress copies are rolled back." << std::endl;
          e->AbortWorkers(target_conninfo);
          std::cerr << "copy aborted; run copy again to resume" << std::endl;
        } else if (copy_client.load() != nullptr) {
          // The workers are other processes: they finish what they hold, and lease no more.
          std::cerr << "Leaving at once; the workers finish the chunks they hold and take no "
                       "new ones (stop them to roll those back). Run copy again to resume."
                    << std::endl;
        }
        _exit(kExitInterrupted);
      });
  if (address.empty()) {
    embedded = std::make_unique<Embedded>();
    if (absl::Status s = embedded->Start(); !s.ok()) return Fail(s);
    address = embedded->address();
    token = embedded->token();
  }
  TlsFiles tls;
  if (embedded == nullptr) tls = TlsFiles{options.tls_ca, options.tls_cert, options.tls_key};
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = ClientCredentials(tls);
  if (!credentials.ok()) return Fail(credentials.status());
  ControlClient client(address, token, *credentials);
  if (options.command == "stage") return RunStage(client, options);
  if (options.command == "copy") {
    if (embedded != nullptr) embedded->StartWorkers(options.parallelism);
    copy_client = &client;
    copy_workers = embedded.get();
    int code = RunCopy(client, options, embedded.get());
    copy_workers = nullptr;
    copy_client = nullptr;
    return code;
  }
  if (options.command == "verify") {
    if (embedded != nullptr) embedded->StartWorkers(options.parallelism);
    return RunVerify(client, options);
  }
  if (options.command == "clean") return RunClean(client, options);
  if (options.command == "refresh-caggs") return RunRefreshCaggs(client, options);
  std::cerr << "error: unknown command '" << options.command << "'" << std::endl;
  return kExitUsage;
}

}  // namespace backfill
