#include "ctl/status.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/quote.h"
#include "ctl/progress.h"

namespace backfill {
namespace {

void CountsJson(const HypertableStatus& h, JsonWriter* w) {
  w->Field("total_chunks", h.total)
      .Field("finished_chunks", h.finished)
      .Field("pending_chunks", h.pending)
      .Field("in_progress", h.in_progress)
      .Field("failing", h.failing)
      .Field("rows_copied", h.rows)
      .Field("bytes_copied", h.bytes)
      .Field("verified", h.verified)
      .Field("verify_differences", h.differ);
}

}  // namespace

std::string FormatStatusText(const MigrationStatus& status) {
  std::string out;
  if (status.hypertables.empty()) return "Nothing staged: __backfill.task is empty.\n";
  auto row = [&out](const std::string& label, const std::string& total, const std::string& done,
                    const std::string& pending, const std::string& active,
                    const std::string& failing, const std::string& rows, const std::string& bytes,
                    const std::string& verified) {
    absl::StrAppendFormat(&out, "%-40s %8s %8s %8s %8s %8s %10s %11s %8s\n", label, total, done,
                          pending, active, failing, rows, bytes, verified);
  };
  row("HYPERTABLE", "CHUNKS", "DONE", "PENDING", "ACTIVE", "FAILING", "ROWS", "BYTES", "VERIFIED");
  auto line = [&](const std::string& label, const HypertableStatus& h) {
    row(label, absl::StrCat(h.total), absl::StrCat(h.finished), absl::StrCat(h.pending),
        absl::StrCat(h.in_progress), absl::StrCat(h.failing),
        HumanCount(static_cast<double>(h.rows)), HumanBytes(h.bytes), absl::StrCat(h.verified));
  };
  for (const HypertableStatus& h : status.hypertables) line(h.display, h);
  if (status.hypertables.size() > 1) line("total", status.totals);

  if (status.totals.pending == 0 && status.totals.total > 0) {
    absl::StrAppend(&out, "\nAll ", status.totals.total, " chunks are copied");
    if (status.totals.verified == status.totals.total) {
      absl::StrAppend(&out, " and verified",
                      status.totals.differ > 0
                          ? absl::StrCat(" (", status.totals.differ, " differ)")
                          : std::string(""));
    }
    absl::StrAppend(&out, ".\n");
  } else if (status.window_seconds > 0) {
    absl::StrAppendFormat(&out, "\nThroughput (last %.0fs): %.1f chunks/s, %s rows/s, %s/s",
                          status.window_seconds, status.chunks_per_second,
                          HumanCount(status.rows_per_second),
                          HumanBytes(static_cast<int64_t>(status.bytes_per_second)));
    if (status.eta_seconds.has_value()) {
      absl::StrAppend(&out, "; ETA ", HumanDuration(absl::Seconds(*status.eta_seconds)));
    } else if (status.leases.empty()) {
      absl::StrAppend(&out, "; no worker holds a chunk now: is a copy running?");
    }
    absl::StrAppend(&out, "\n");
  } else {
    absl::StrAppend(&out, "\nNo chunk finished in the last minute: is a copy running?\n");
  }

  if (!status.leases.empty()) {
    absl::StrAppend(&out, "\nWorkers holding chunks:\n");
    for (const LeaseStatus& l : status.leases) {
      absl::StrAppendFormat(
          &out, "  %s: %s %s (epoch %d, lease expires in %.0fs without a heartbeat)\n", l.worker,
          l.work == "copy" ? "copying" : "verifying", l.chunk, l.epoch, l.expires_in_seconds);
    }
  }
  if (!status.failing.empty()) {
    absl::StrAppend(&out, "\nFailing chunks (retried by the next copy):\n");
    for (const FailingChunk& f : status.failing) {
      absl::StrAppend(&out, "  ", f.chunk, " (", f.hypertable, ", ", f.attempts,
                      f.attempts == 1 ? " attempt" : " attempts", "): ", f.error, "\n");
    }
  }
  return out;
}

std::string FormatStatusJson(const MigrationStatus& status) {
  JsonWriter w;
  w.BeginObject().Key("hypertables").BeginArray();
  for (const HypertableStatus& h : status.hypertables) {
    w.BeginObject()
        .Field("hypertable_schema", h.schema)
        .Field("hypertable_name", h.name)
        .Field("display_name", h.display);
    CountsJson(h, &w);
    w.EndObject();
  }
  w.EndArray().Key("totals").BeginObject();
  CountsJson(status.totals, &w);
  w.EndObject().Key("leases").BeginArray();
  for (const LeaseStatus& l : status.leases) {
    w.BeginObject()
        .Field("worker", l.worker)
        .Field("chunk", l.chunk)
        .Field("work", l.work)
        .Field("epoch", l.epoch)
        .Key("expires_in_seconds")
        .Fixed(l.expires_in_seconds, 1)
        .EndObject();
  }
  w.EndArray().Key("failing").BeginArray();
  for (const FailingChunk& f : status.failing) {
    w.BeginObject()
        .Field("chunk", f.chunk)
        .Field("hypertable", f.hypertable)
        .Field("attempts", f.attempts)
        .Field("error", f.error)
        .EndObject();
  }
  w.EndArray()
      .Key("throughput")
      .BeginObject()
      .Key("window_seconds")
      .Fixed(status.window_seconds, 1)
      .Key("chunks_per_second")
      .Fixed(status.chunks_per_second, 3)
      .Key("rows_per_second")
      .Fixed(status.rows_per_second, 1)
      .Key("bytes_per_second")
      .Fixed(status.bytes_per_second, 1)
      .EndObject()
      .Key("eta_seconds");
  if (status.eta_seconds.has_value()) {
    w.Fixed(*status.eta_seconds, 0);
  } else {
    w.Null();
  }
  return w.EndObject().str();
}

}  // namespace backfill
