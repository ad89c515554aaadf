// Live progress for copy and verify: a progress bar on a terminal, a progress line at a steady
// interval without one, JSON lines for machines, or nothing (--quiet).
//
// Not thread-safe: one display is fed from one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <ostream>
#include <string>

#include "absl/time/time.h"

namespace backfill {

struct ProgressCounts {
  int64_t total = 0;   // tasks in the job
  int64_t done = 0;    // finished, including those finished before this run
  int64_t failed = 0;  // given up on (attempts used up)
  int64_t leased = 0;  // held by a worker right now
  int64_t rows = 0;
  int64_t bytes = 0;
};

// Throughput over the last `window` of samples: recent enough to follow a change of pace,
// long enough not to jump with every chunk.
class RateMeter {
 public:
  explicit RateMeter(absl::Duration window = absl::Seconds(30)) : window_(window) {}
  void Add(absl::Time now, const ProgressCounts& counts);
  // Per second over the window; 0 until two samples span some time.
  double ChunksPerSecond() const;
  double RowsPerSecond() const;
  double BytesPerSecond() const;
  // Time left at the current chunk rate; nullopt when nothing has finished in the window.
  std::optional<absl::Duration> Eta(const ProgressCounts& counts) const;

 private:
  struct Sample {
    absl::Time time;
    int64_t done, rows, bytes;
  };
  double PerSecond(int64_t Sample::*field) const;
  absl::Duration window_;
  std::deque<Sample> samples_;
};

enum class ProgressStyle {
  kBar,    // redrawn in place on a terminal
  kLines,  // one line per interval
  kJson,   // one JSON object per interval
  kQuiet,  // nothing
};

// "1.5 KiB", "3.2 GiB".
std::string HumanBytes(int64_t bytes);
// "950", "12.3k", "4.1M", "2.0G".
std::string HumanCount(double count);
// "45s", "12m05s", "3h07m".
std::string HumanDuration(absl::Duration d);

// The text of one progress report, e.g. "12/40 chunks copied, 1.2M rows, 345.0 MiB,
// 12.3 MiB/s, ETA 2m10s". `verb` is "copied" or "verified"; rows and bytes are left out when
// both are zero.
std::string FormatProgress(const std::string& verb, const ProgressCounts& counts,
                           const RateMeter& rate);
// The same as a bar `width` columns wide: "[#####.....] 12/40 chunks ...".
std::string RenderBar(const std::string& verb, const ProgressCounts& counts, const RateMeter& rate,
                      int width);
// The same as one JSON object: {"event":"progress","chunks_total":40,...}.
std::string ProgressJson(const ProgressCounts& counts, const RateMeter& rate);

class ProgressDisplay {
 public:
  // Reports go to `out` (a bar is redrawn at most every 200 ms, lines and JSON every
  // `interval`); `width` is the terminal width for the bar.
  ProgressDisplay(ProgressStyle style, std::string verb, std::ostream& out, absl::Duration interval,
                  int width = 80);
  void Update(const ProgressCounts& counts, absl::Time now);
  // Clears the bar so that other output can be printed, and draws it again on the next
  // Update.
  void Clear();
  // A last report (a line or JSON object; the bar is cleared).
  void Finish(const ProgressCounts& counts, absl::Time now);
  ProgressStyle style() const { return style_; }

 private:
  void Emit(const ProgressCounts& counts);
  // Lines and JSON: false for a report that says nothing new (the same counts as the last
  // one printed, less than a minute ago), so a stalled copy does not repeat itself.
  bool News(const ProgressCounts& counts, absl::Time now);
  const ProgressStyle style_;
  const std::string verb_;
  std::ostream& out_;
  const absl::Duration interval_;
  const int width_;
  RateMeter rate_;
  absl::Time last_emit_ = absl::InfinitePast();
  std::optional<ProgressCounts> last_printed_;
  absl::Time last_printed_at_ = absl::InfinitePast();
  bool bar_drawn_ = false;
};

// Whether stderr is a terminal, and its width (80 when unknown).
bool StderrIsTerminal();
int TerminalWidth();

}  // namespace backfill
