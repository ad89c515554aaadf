#include "coordinator/source_sides.h"

#include <gtest/gtest.h>

namespace backfill {
namespace {

std::string PairedWith(SourceSides& sides, int64_t task, const std::string& identity = "") {
  std::optional<v1::SourceSide> side = sides.Pair(task, 1, identity);
  return side.has_value() ? side->worker_id() + "@" + side->address() : "none";
}

TEST(SourceSidesTest, NoneRegisteredMeansLeasesReadTheSourceThemselves) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  EXPECT_EQ(PairedWith(sides, 1), "none");
  EXPECT_FALSE(sides.Heartbeat("s1", "a:1", false));  // unknown: it must register
  EXPECT_EQ(sides.Live(), 0);
}

TEST(SourceSidesTest, LeasesGoToTheOneWithFewestPairsAndEndedPairsCountNoMore) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  sides.Register("s1", "a:1", "");
  sides.Register("s2", "b:2", "");
  EXPECT_EQ(sides.Live(), 2);
  const std::string first = PairedWith(sides, 1);
  const std::string second = PairedWith(sides, 2);
  EXPECT_NE(first, second);
  sides.Unpair(1, 1, /*lost=*/false);
  // The one whose pair ended has fewer now.
  EXPECT_EQ(PairedWith(sides, 3), first);
  // A task granted again (its lease expired) ends its old pair first.
  EXPECT_EQ(PairedWith(sides, 2), second);
}

TEST(SourceSidesTest, OneALeaseLostRestsATimeoutWhateverItsHeartbeatsSay) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  sides.Register("s1", "a:1", "");
  sides.Register("s2", "b:2", "");
  ASSERT_EQ(PairedWith(sides, 1), "s1@a:1");  // a tie goes to the name
  sides.Unpair(1, 1, /*lost=*/true);
  clock.Advance(absl::Seconds(20));
  EXPECT_TRUE(sides.Heartbeat("s1", "a:1", false));
  EXPECT_TRUE(sides.Heartbeat("s2", "b:2", false));
  // Lost: s2 alone, however few pairs s1 holds, until a lease timeout has passed.
  for (int64_t task = 2; task < 6; ++task) EXPECT_EQ(PairedWith(sides, task), "s2@b:2");
  clock.Advance(absl::Seconds(11));
  EXPECT_TRUE(sides.Heartbeat("s1", "a:1", false));
  EXPECT_EQ(PairedWith(sides, 6), "s1@a:1");
}

TEST(SourceSidesTest, OneSilentForALeaseTimeoutIsPairedWithNothingUntilHeardFromAgain) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  sides.Register("s1", "a:1", "");
  clock.Advance(absl::Seconds(29));
  EXPECT_EQ(sides.Live(), 1);
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(sides.Live(), 0);
  EXPECT_EQ(sides.Known(), 1);
  EXPECT_EQ(PairedWith(sides, 1), "none");
  EXPECT_TRUE(sides.Heartbeat("s1", "a:9", false));  // heard from again, at a new address
  EXPECT_EQ(PairedWith(sides, 2), "s1@a:9");
}

TEST(SourceSidesTest, OneStoppingIsPairedWithNothingMoreButItsPairsEndAsUsual) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  sides.Register("s1", "a:1", "");
  sides.Register("s2", "b:2", "");
  ASSERT_EQ(PairedWith(sides, 1), "s1@a:1");
  EXPECT_TRUE(sides.Heartbeat("s1", "a:1", /*draining=*/true));
  EXPECT_EQ(sides.Live(), 1);
  // s2 takes every lease now, however many it holds.
  for (int64_t task = 2; task < 5; ++task) EXPECT_EQ(PairedWith(sides, task), "s2@b:2");
  sides.Unpair(1, 1, /*lost=*/false);
  EXPECT_EQ(PairedWith(sides, 5), "s2@b:2");
  // Registered again (restarted): paired again.
  sides.Register("s1", "a:1", "");
  EXPECT_EQ(PairedWith(sides, 6), "s1@a:1");
}

TEST(SourceSidesTest, OneReadingAnotherDatabaseIsPairedWithNothing) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  sides.Register("s1", "a:1", "system 1, database metrics");
  sides.Register("s2", "b:2", "system 2, database metrics");  // e.g. the target
  sides.Register("s3", "c:3", "");                            // may not tell
  const std::string job = "system 1, database metrics";
  for (int64_t task = 1; task < 7; ++task) EXPECT_NE(PairedWith(sides, task, job), "s2@b:2");
  // A job whose source could not say which it is: any of them.
  sides.Unpair(1, 1, false);
  EXPECT_EQ(PairedWith(sides, 7, ""), "s2@b:2");
  // Only the wrong one left live: nothing; the lease reads the source itself.
  clock.Advance(absl::Seconds(20));
  EXPECT_TRUE(sides.Heartbeat("s2", "b:2", false));
  clock.Advance(absl::Seconds(11));
  EXPECT_EQ(PairedWith(sides, 8, job), "none");
}

TEST(SourceSidesTest, AReportOfAnOlderEpochNeitherEndsTheNewPairNorBlamesItsWorker) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  sides.Register("s1", "a:1", "");
  sides.Register("s2", "b:2", "");
  ASSERT_TRUE(sides.Pair(7, 1, "").has_value());  // epoch 1, then its lease expires
  std::optional<v1::SourceSide> regranted = sides.Pair(7, 2, "");
  ASSERT_TRUE(regranted.has_value());
  // The first holder's late report, saying its source-side worker was lost.
  sides.Unpair(7, 1, /*lost=*/true);
  // Nobody is blamed, and the epoch-2 pair still counts: the next lease goes to the other.
  std::optional<v1::SourceSide> next = sides.Pair(8, 1, "");
  ASSERT_TRUE(next.has_value());
  EXPECT_NE(next->worker_id(), regranted->worker_id());
  sides.Unpair(8, 1, false);
  sides.Unpair(7, 2, false);
  // Both free and neither lost: they take turns.
  const std::string a = PairedWith(sides, 9);
  sides.Unpair(9, 1, false);
  EXPECT_NE(PairedWith(sides, 10), a);
}

}  // namespace
}  // namespace backfill
