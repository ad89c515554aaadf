#include "ctl/progress.h"

#include "common/json.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace backfill {

void RateMeter::Add(absl::Time now, const ProgressCounts& counts) {
  samples_.push_back({now, counts.done, counts.rows, counts.bytes});
  // Keep one sample older than the window, so the window is always spanned.
  while (samples_.size() > 2 && now - samples_[1].time >= window_) samples_.pop_front();
}

double RateMeter::PerSecond(int64_t Sample::*field) const {
  if (samples_.size() < 2) return 0;
  const Sample& first = samples_.front();
  const Sample& last = samples_.back();
  const double seconds = absl::ToDoubleSeconds(last.time - first.time);
  if (seconds <= 0) return 0;
  return std::max(0.0, static_cast<double>(last.*field - first.*field) / seconds);
}

double RateMeter::ChunksPerSecond() const { return PerSecond(&Sample::done); }
double RateMeter::RowsPerSecond() const { return PerSecond(&Sample::rows); }
double RateMeter::BytesPerSecond() const { return PerSecond(&Sample::bytes); }

std::optional<absl::Duration> RateMeter::Eta(const ProgressCounts& counts) const {
  const int64_t left = counts.total - counts.done - counts.failed;
  if (left <= 0) return absl::ZeroDuration();
  const double rate = ChunksPerSecond();
  if (rate <= 0) return std::nullopt;
  return absl::Seconds(std::ceil(static_cast<double>(left) / rate));
}

std::string HumanBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", value, units[unit]);
}

std::string HumanCount(double count) {
  if (count < 1000) return absl::StrFormat("%.0f", count);
  const char* suffixes[] = {"k", "M", "G", "T"};
  int i = -1;
  while (count >= 1000 && i < 3) {
    count /= 1000;
    ++i;
  }
  return absl::StrFormat("%.1f%s", count, suffixes[i]);
}

std::string HumanDuration(absl::Duration d) {
  const int64_t seconds = std::max<int64_t>(0, absl::ToInt64Seconds(d));
  if (seconds < 60) return absl::StrCat(seconds, "s");
  if (seconds < 3600) return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  return absl::StrFormat("%dh%02dm", seconds / 3600, (seconds % 3600) / 60);
}

namespace {

// Everything after the chunk counts, shared by the line and the bar.
std::string Details(const ProgressCounts& counts, const RateMeter& rate, const char* sep) {
  std::string out;
  if (counts.rows > 0 || counts.bytes > 0) {
    absl::StrAppend(&out, sep, HumanCount(static_cast<double>(counts.rows)), " rows", sep,
                    HumanBytes(counts.bytes), sep,
                    HumanBytes(static_cast<int64_t>(rate.BytesPerSecond())), "/s");
  }
  if (counts.failed > 0) absl::StrAppend(&out, sep, counts.failed, " failed");
  std::optional<absl::Duration> eta = rate.Eta(counts);
  absl::StrAppend(&out, sep, "ETA ", eta.has_value() ? HumanDuration(*eta) : "--");
  return out;
}

}  // namespace

std::string FormatProgress(const std::string& verb, const ProgressCounts& counts,
                           const RateMeter& rate) {
  return absl::StrCat(counts.done, "/", counts.total, " chunks ", verb,
                      Details(counts, rate, ", "));
}

std::string RenderBar(const std::string& verb, const ProgressCounts& counts, const RateMeter& rate,
                      int width) {
  const std::string text = absl::StrCat(" ", counts.done, "/", counts.total, " chunks ", verb,
                                        Details(counts, rate, "  "));
  // The bar takes what the text leaves, between 10 and 40 columns.
  const int room = width - static_cast<int>(text.size()) - 3;
  const int bar = std::clamp(room, 10, 40);
  const int filled =
      counts.total > 0
          ? static_cast<int>(std::clamp<int64_t>(counts.done, 0, counts.total) * bar / counts.total)
          : 0;
  std::string line =
      absl::StrCat("[", std::string(filled, '#'), std::string(bar - filled, '.'), "]", text);
  if (static_cast<int>(line.size()) >= width) line.resize(std::max(0, width - 1));
  return line;
}

std::string ProgressJson(const ProgressCounts& counts, const RateMeter& rate) {
  std::optional<absl::Duration> eta = rate.Eta(counts);
  JsonWriter w;
  w.BeginObject()
      .Field("event", "progress")
      .Field("chunks_total", counts.total)
      .Field("chunks_done", counts.done)
      .Field("chunks_failed", counts.failed)
      .Field("chunks_in_progress", counts.leased)
      .Field("rows", counts.rows)
      .Field("bytes", counts.bytes)
      .Key("rows_per_second")
      .Fixed(rate.RowsPerSecond(), 1)
      .Key("bytes_per_second")
      .Fixed(rate.BytesPerSecond(), 1)
      .Key("eta_seconds");
  if (eta.has_value()) {
    w.Int(absl::ToInt64Seconds(*eta));
  } else {
    w.Null();
  }
  return w.EndObject().str();
}

ProgressDisplay::ProgressDisplay(ProgressStyle style, std::string verb, std::ostream& out,
                                 absl::Duration interval, int width)
    : style_(style), verb_(std::move(verb)), out_(out), interval_(interval), width_(width) {}

void ProgressDisplay::Update(const ProgressCounts& counts, absl::Time now) {
  rate_.Add(now, counts);
  if (style_ == ProgressStyle::kQuiet) return;
  const absl::Duration every = style_ == ProgressStyle::kBar ? absl::Milliseconds(200) : interval_;
  if (now - last_emit_ < every) return;
  last_emit_ = now;
  if (!News(counts, now)) return;
  Emit(counts);
}

bool ProgressDisplay::News(const ProgressCounts& counts, absl::Time now) {
  if (style_ == ProgressStyle::kBar) return true;
  const bool same = last_printed_.has_value() && last_printed_->total == counts.total &&
                    last_printed_->done == counts.done && last_printed_->failed == counts.failed &&
                    last_printed_->leased == counts.leased && last_printed_->rows == counts.rows &&
                    last_printed_->bytes == counts.bytes;
  if (same && now - last_printed_at_ < absl::Minutes(1)) return false;
  last_printed_ = counts;
  last_printed_at_ = now;
  return true;
}

void ProgressDisplay::Emit(const ProgressCounts& counts) {
  switch (style_) {
    case ProgressStyle::kBar:
      out_ << "\r\033[K" << RenderBar(verb_, counts, rate_, width_) << std::flush;
      bar_drawn_ = true;
      break;
    case ProgressStyle::kLines:
      out_ << "progress: " << FormatProgress(verb_, counts, rate_) << std::endl;
      break;
    case ProgressStyle::kJson:
      out_ << ProgressJson(counts, rate_) << std::endl;
      break;
    case ProgressStyle::kQuiet:
      break;
  }
}

void ProgressDisplay::Clear() {
  if (!bar_drawn_) return;
  out_ << "\r\033[K" << std::flush;
  bar_drawn_ = false;
  last_emit_ = absl::InfinitePast();
}

void ProgressDisplay::Finish(const ProgressCounts& counts, absl::Time now) {
  rate_.Add(now, counts);
  if (style_ == ProgressStyle::kBar) {
    Clear();
    return;
  }
  if (News(counts, now)) Emit(counts);
}

bool StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }

int TerminalWidth() {
  struct winsize size {};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 20) return size.ws_col;
  return 80;
}

}  // namespace backfill
