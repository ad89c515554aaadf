// copy: follow the coordinator's copy job and print its progress and outcome.
#include "ctl/command.h"

#include <iostream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/json.h"
#include "common/pg.h"
#include "coordinator/task_reports.h"
#include "ctl/embedded.h"

namespace backfill {

namespace {

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
  JsonWriter w;
  w.BeginObject()
      .Field("event", "chunk")
      .Field("chunk", e.chunk())
      .Field("hypertable", e.hypertable())
      .Field("worker", e.worker_id())
      .Field("outcome", OutcomeName(e.outcome()))
      .Field("rows", e.rows())
      .Field("bytes", e.bytes())
      .Field("error", e.error())
      .Field("note", e.note())
      .EndObject();
  return w.str();
}

}  // namespace

int RunCopy(ControlClient& client, const CtlOptions& options, Embedded* embedded) {
  v1::CopyRequest request;
  *request.mutable_databases() = options.databases;
  request.set_allow_active_jobs(options.allow_active_jobs);
  request.set_repair(options.repair);
  request.set_row_by_row(options.no_bulk_load);
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
  std::set<std::string> notes_printed;  // "hypertable: note": each said for its first chunk
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
        JsonWriter w;
        w.BeginObject()
            .Field("event", "start")
            .Field("chunks_total", progress.tasks_total())
            .Field("chunks_pending", pending);
        if (options.repair) w.Field("chunks_reopened", progress.reopened_size());
        std::cout << w.EndObject().str() << std::endl;
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
      if (!e.note().empty() && style != ProgressStyle::kQuiet &&
          notes_printed.insert(absl::StrCat(e.hypertable(), ": ", e.note())).second) {
        display.Clear();
        std::cerr << "note: " << e.hypertable() << ": chunk " << e.chunk() << " copied " << e.note()
                  << std::endl;
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
    absl::StatusOr<std::optional<CopyRunSummary>> summary =
        target.ok() ? ReadCopiedSince(**target, absl::ToDoubleSeconds(absl::Now() - start) + 1.0)
                    : absl::StatusOr<std::optional<CopyRunSummary>>(target.status());
    if (summary.ok() && summary->has_value()) {
      const CopyRunSummary& run = **summary;
      int64_t copied = 0, copied_rows = 0, copied_bytes = 0;
      const int64_t total = run.total;
      const int64_t left = run.left;
      // Interrupted before the first progress message: number from what was done before.
      if (shown < 0) shown = total - left - static_cast<int64_t>(run.copied.size());
      for (const CopiedChunk& c : run.copied) {
        ++copied;
        copied_rows += c.rows;
        copied_bytes += c.bytes;
        if (!chunk_lines || json || lines_printed.count(c.chunk) > 0) continue;
        std::cout << "[" << ++shown << "/" << total << "] copied chunk " << c.chunk << " ("
                  << c.rows << " rows, " << HumanBytes(c.bytes) << ")" << std::endl;
      }
      if (json) {
        JsonWriter w;
        w.BeginObject()
            .Field("event", "interrupted")
            .Field("chunks_copied", copied)
            .Field("rows", copied_rows)
            .Field("bytes", copied_bytes)
            .Field("chunks_left", left)
            .Field("chunks_total", total)
            .EndObject();
        std::cout << w.str() << std::endl;
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
    JsonWriter w;
    w.BeginObject()
        .Field("event", "finished")
        .Field("chunks_total", last.tasks_total())
        .Field("chunks_done", last.tasks_done())
        .Field("chunks_failed", last.tasks_failed())
        .Field("rows", last.rows_copied())
        .Field("bytes", last.bytes_copied())
        .Key("elapsed_seconds")
        .Fixed(absl::ToDoubleSeconds(elapsed), 3)
        .Key("failed")
        .BeginArray();
    for (const v1::TaskEvent& e : last.events()) {
      if (e.outcome() != v1::ReportTaskRequest::FAILED) continue;
      w.BeginObject().Field("chunk", e.chunk()).Field("error", e.error()).EndObject();
    }
    std::cout << w.EndArray().EndObject().str() << std::endl;
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

}  // namespace backfill
