#include "ctl/progress.h"

#include <algorithm>
#include <sstream>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace backfill {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

ProgressCounts Counts(int64_t done, int64_t total, int64_t rows = 0, int64_t bytes = 0) {
  ProgressCounts c;
  c.done = done;
  c.total = total;
  c.rows = rows;
  c.bytes = bytes;
  return c;
}

TEST(HumanTest, SizesCountsAndDurations) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(int64_t{5} << 40), "5.0 TiB");
  EXPECT_EQ(HumanCount(999), "999");
  EXPECT_EQ(HumanCount(8640), "8.6k");
  EXPECT_EQ(HumanCount(4.1e6), "4.1M");
  EXPECT_EQ(HumanDuration(absl::Seconds(45)), "45s");
  EXPECT_EQ(HumanDuration(absl::Seconds(725)), "12m05s");
  EXPECT_EQ(HumanDuration(absl::Seconds(3 * 3600 + 7 * 60 + 59)), "3h07m");
  EXPECT_EQ(HumanDuration(absl::Seconds(-3)), "0s");
}

TEST(RateMeterTest, MeasuresOverTheWindowAndEstimatesTimeLeft) {
  RateMeter rate(absl::Seconds(10));
  EXPECT_EQ(rate.ChunksPerSecond(), 0);
  EXPECT_FALSE(rate.Eta(Counts(0, 10)).has_value());
  rate.Add(kStart, Counts(0, 10, 0, 0));
  rate.Add(kStart + absl::Seconds(2), Counts(2, 10, 200, 2048));
  EXPECT_DOUBLE_EQ(rate.ChunksPerSecond(), 1);
  EXPECT_DOUBLE_EQ(rate.RowsPerSecond(), 100);
  EXPECT_DOUBLE_EQ(rate.BytesPerSecond(), 1024);
  ASSERT_TRUE(rate.Eta(Counts(2, 10)).has_value());
  EXPECT_EQ(*rate.Eta(Counts(2, 10)), absl::Seconds(8));
  // A slower pace later: once the early samples leave the window, the rate follows it.
  for (int s = 3; s <= 30; ++s) rate.Add(kStart + absl::Seconds(s), Counts(2 + (s - 2) / 4, 10));
  EXPECT_NEAR(rate.ChunksPerSecond(), 0.3, 1e-9);  // 6 -> 9 chunks from 20 s to 30 s
  EXPECT_EQ(*rate.Eta(Counts(10, 10)), absl::ZeroDuration());
}

TEST(FormatTest, LineBarAndJsonSayTheSame) {
  RateMeter rate;
  rate.Add(kStart, Counts(0, 40));
  rate.Add(kStart + absl::Seconds(4), Counts(12, 40, 1200000, int64_t{48} << 20));
  const ProgressCounts now = Counts(12, 40, 1200000, int64_t{48} << 20);
  EXPECT_EQ(FormatProgress("copied", now, rate),
            "12/40 chunks copied, 1.2M rows, 48.0 MiB, 12.0 MiB/s, ETA 10s");
  const std::string bar = RenderBar("copied", now, rate, 100);
  EXPECT_LT(bar.size(), 100u);
  EXPECT_TRUE(absl::StartsWith(bar, "[")) << bar;
  EXPECT_TRUE(absl::StrContains(bar,
                                "] 12/40 chunks copied  1.2M rows  48.0 MiB  12.0 MiB/s  "
                                "ETA 10s"))
      << bar;
  // 30% of the bar is filled.
  const size_t width = bar.find(']') - 1;
  EXPECT_EQ(std::count(bar.begin(), bar.end(), '#'), static_cast<long>(width * 3 / 10)) << bar;
  EXPECT_EQ(ProgressJson(now, rate),
            "{\"event\":\"progress\",\"chunks_total\":40,\"chunks_done\":12,\"chunks_failed\":0,"
            "\"chunks_in_progress\":0,\"rows\":1200000,\"bytes\":50331648,"
            "\"rows_per_second\":300000.0,\"bytes_per_second\":12582912.0,\"eta_seconds\":10}");
  // Verification has no rows or bytes to show; failures are.
  ProgressCounts verify = Counts(3, 5);
  verify.failed = 1;
  EXPECT_EQ(FormatProgress("verified", verify, RateMeter()),
            "3/5 chunks verified, 1 failed, ETA --");
  // A narrow terminal still gets a line that fits.
  EXPECT_LT(RenderBar("copied", now, rate, 40).size(), 40u);
}

TEST(ProgressDisplayTest, LinesComeAtTheIntervalAndQuietPrintsNothing) {
  std::ostringstream out;
  ProgressDisplay lines(ProgressStyle::kLines, "copied", out, absl::Seconds(10));
  lines.Update(Counts(0, 4), kStart);                      // first: printed
  lines.Update(Counts(1, 4), kStart + absl::Seconds(5));   // within the interval: not
  lines.Update(Counts(2, 4), kStart + absl::Seconds(10));  // printed
  lines.Finish(Counts(4, 4), kStart + absl::Seconds(12));  // always printed
  const std::string printed = out.str();
  EXPECT_EQ(std::count(printed.begin(), printed.end(), '\n'), 3) << printed;
  EXPECT_TRUE(absl::StrContains(out.str(), "progress: 2/4 chunks copied")) << out.str();
  EXPECT_TRUE(absl::StrContains(out.str(), "progress: 4/4 chunks copied")) << out.str();

  // Nothing new, nothing printed: not at the next interval, not at the end; a minute of
  // silence gets one line, so a stalled copy still shows it is alive.
  std::ostringstream stalled;
  ProgressDisplay same(ProgressStyle::kLines, "copied", stalled, absl::Seconds(10));
  same.Update(Counts(1, 4), kStart);
  same.Update(Counts(1, 4), kStart + absl::Seconds(10));
  same.Update(Counts(1, 4), kStart + absl::Seconds(20));
  same.Update(Counts(2, 4), kStart + absl::Seconds(30));
  same.Finish(Counts(2, 4), kStart + absl::Seconds(31));
  same.Update(Counts(2, 4), kStart + absl::Seconds(95));
  const std::string repeated = stalled.str();
  EXPECT_EQ(std::count(repeated.begin(), repeated.end(), '\n'), 3) << repeated;
  const auto occurrences = [&](const std::string& text) {
    int n = 0;
    for (size_t at = repeated.find(text); at != std::string::npos;
         at = repeated.find(text, at + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_EQ(occurrences("progress: 1/4 chunks"), 1) << repeated;
  EXPECT_EQ(occurrences("progress: 2/4 chunks"), 2) << repeated;

  std::ostringstream none;
  ProgressDisplay quiet(ProgressStyle::kQuiet, "copied", none, absl::Seconds(1));
  quiet.Update(Counts(1, 4), kStart);
  quiet.Finish(Counts(4, 4), kStart + absl::Seconds(3));
  EXPECT_EQ(none.str(), "");

  std::ostringstream bar;
  ProgressDisplay terminal(ProgressStyle::kBar, "copied", bar, absl::Seconds(10), 80);
  terminal.Update(Counts(1, 4), kStart);
  terminal.Clear();
  terminal.Finish(Counts(4, 4), kStart + absl::Seconds(1));
  EXPECT_TRUE(absl::StartsWith(bar.str(), "\r\033[K[")) << bar.str();
  EXPECT_TRUE(absl::EndsWith(bar.str(), "\r\033[K")) << "the bar is cleared at the end";
}

}  // namespace
}  // namespace backfill
