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

std::string CountsJson(const HypertableStatus& h) {
  return absl::StrCat("\"total_chunks\":", h.total, ",\"finished_chunks\":", h.finished,
                      ",\"pending_chunks\":", h.pending, ",\"in_progress\":", h.in_progress,
                      ",\"failing\":", h.failing, ",\"rows_copied\":", h.rows,
                      ",\"bytes_copied\":", h.bytes, ",\"verified\":", h.verified,
                      ",\"verify_differences\":", h.differ);
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
  std::string out = "{\"hypertables\":[";
  for (size_t i = 0; i < status.hypertables.size(); ++i) {
    const HypertableStatus& h = status.hypertables[i];
    absl::StrAppend(&out, i == 0 ? "" : ",", "{\"hypertable_schema\":", JsonQuote(h.schema),
                    ",\"hypertable_name\":", JsonQuote(h.name),
                    ",\"display_name\":", JsonQuote(h.display), ",", CountsJson(h), "}");
  }
  absl::StrAppend(&out, "],\"totals\":{", CountsJson(status.totals), "},\"leases\":[");
  for (size_t i = 0; i < status.leases.size(); ++i) {
    const LeaseStatus& l = status.leases[i];
    absl::StrAppendFormat(&out,
                          "%s{\"worker\":%s,\"chunk\":%s,\"work\":%s,\"epoch\":%d,"
                          "\"expires_in_seconds\":%.1f}",
                          i == 0 ? "" : ",", JsonQuote(l.worker), JsonQuote(l.chunk),
                          JsonQuote(l.work), l.epoch, l.expires_in_seconds);
  }
  absl::StrAppend(&out, "],\"failing\":[");
  for (size_t i = 0; i < status.failing.size(); ++i) {
    const FailingChunk& f = status.failing[i];
    absl::StrAppend(&out, i == 0 ? "" : ",", "{\"chunk\":", JsonQuote(f.chunk),
                    ",\"hypertable\":", JsonQuote(f.hypertable), ",\"attempts\":", f.attempts,
                    ",\"error\":", JsonQuote(f.error), "}");
  }
  absl::StrAppendFormat(&out,
                        "],\"throughput\":{\"window_seconds\":%.1f,\"chunks_per_second\":%.3f,"
                        "\"rows_per_second\":%.1f,\"bytes_per_second\":%.1f},\"eta_seconds\":%s}",
                        status.window_seconds, status.chunks_per_second, status.rows_per_second,
                        status.bytes_per_second,
                        status.eta_seconds.has_value()
                            ? absl::StrFormat("%.0f", *status.eta_seconds)
                            : std::string("null"));
  return out;
}

}  // namespace backfill
