#include "ctl/status.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "backfill_ctl_sql.h"
#include "common/json.h"
#include "common/quote.h"
#include "ctl/progress.h"

namespace backfill {
namespace {

double GetDouble(const pg::Result& result, int row, int column) {
  return std::strtod(result.Get(row, column).c_str(), nullptr);
}

void Add(HypertableStatus* sum, const HypertableStatus& h) {
  sum->total += h.total;
  sum->finished += h.finished;
  sum->pending += h.pending;
  sum->in_progress += h.in_progress;
  sum->failing += h.failing;
  sum->rows += h.rows;
  sum->bytes += h.bytes;
  sum->verified += h.verified;
  sum->differ += h.differ;
}

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

absl::StatusOr<MigrationStatus> ReadMigrationStatus(pg::Connection& target, double window_seconds) {
  absl::StatusOr<pg::Result> exists =
      target.Exec("SELECT pg_catalog.to_regclass('__backfill.task') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  if (!exists->GetBool(0, 0)) {
    return absl::FailedPreconditionError(
        "nothing staged: the target has no __backfill schema\nhint: run stage first");
  }
  MigrationStatus status;
  absl::StatusOr<pg::Result> rows = target.Exec(sql::kStatusHypertables);
  if (!rows.ok()) return rows.status();
  for (int i = 0; i < rows->rows(); ++i) {
    HypertableStatus h;
    h.schema = rows->Get(i, 0);
    h.name = rows->Get(i, 1);
    h.total = rows->GetInt(i, 2);
    h.finished = rows->GetInt(i, 3);
    h.pending = rows->GetInt(i, 4);
    h.in_progress = rows->GetInt(i, 5);
    h.failing = rows->GetInt(i, 6);
    h.rows = rows->GetInt(i, 7);
    h.bytes = rows->GetInt(i, 8);
    h.verified = rows->GetInt(i, 9);
    h.differ = rows->GetInt(i, 10);
    h.display = rows->Get(i, 11);
    Add(&status.totals, h);
    status.hypertables.push_back(std::move(h));
  }
  absl::StatusOr<pg::Result> leases = target.Exec(sql::kStatusLeases);
  if (!leases.ok()) return leases.status();
  for (int i = 0; i < leases->rows(); ++i) {
    status.leases.push_back({leases->Get(i, 0), leases->Get(i, 1), leases->Get(i, 2),
                             GetDouble(*leases, i, 3), leases->GetInt(i, 4)});
  }
  absl::StatusOr<pg::Result> failing = target.Exec(sql::kStatusFailing);
  if (!failing.ok()) return failing.status();
  for (int i = 0; i < failing->rows(); ++i) {
    status.failing.push_back(
        {failing->Get(i, 0), failing->Get(i, 1), failing->Get(i, 3), failing->GetInt(i, 2)});
  }
  absl::StatusOr<pg::Result> recent =
      target.Exec(sql::kStatusThroughput, {absl::StrCat(window_seconds)});
  if (!recent.ok()) return recent.status();
  const double seconds = GetDouble(*recent, 0, 3);
  if (recent->GetInt(0, 0) > 0 && seconds > 0) {
    status.window_seconds = seconds;
    status.chunks_per_second = static_cast<double>(recent->GetInt(0, 0)) / seconds;
    status.rows_per_second = static_cast<double>(recent->GetInt(0, 1)) / seconds;
    status.bytes_per_second = static_cast<double>(recent->GetInt(0, 2)) / seconds;
    // An ETA only while something copies: after a stop the recent rate says nothing.
    if (!status.leases.empty()) {
      status.eta_seconds = static_cast<double>(status.totals.pending) / status.chunks_per_second;
    }
  } else if (status.totals.pending == 0) {
    status.eta_seconds = 0;
  }
  return status;
}

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
