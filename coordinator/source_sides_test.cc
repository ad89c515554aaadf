#include "coordinator/source_sides.h"

#include <gtest/gtest.h>

namespace backfill {
namespace {

std::string PairedWith(SourceSides& sides, int64_t task) {
  std::optional<v1::SourceSide> side = sides.Pair(task);
  return side.has_value() ? side->worker_id() + "@" + side->address() : "none";
}

TEST(SourceSidesTest, NoneRegisteredMeansLeasesReadTheSourceThemselves) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  EXPECT_EQ(PairedWith(sides, 1), "none");
  EXPECT_FALSE(sides.Heartbeat("s1", "a:1"));  // unknown: it must register
  EXPECT_EQ(sides.Live(), 0);
}

TEST(SourceSidesTest, LeasesGoToTheOneWithFewestPairsAndEndedPairsCountNoMore) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  sides.Register("s1", "a:1");
  sides.Register("s2", "b:2");
  EXPECT_EQ(sides.Live(), 2);
  const std::string first = PairedWith(sides, 1);
  const std::string second = PairedWith(sides, 2);
  EXPECT_NE(first, second);
  sides.Unpair(1, /*lost=*/false);
  // The one whose pair ended has fewer now.
  EXPECT_EQ(PairedWith(sides, 3), first);
  // A task granted again (its lease expired) ends its old pair first.
  EXPECT_EQ(PairedWith(sides, 2), second);
}

TEST(SourceSidesTest, ASilentOrLostOneIsPairedWithNothingUntilHeardFromAgain) {
  FakeClock clock;
  SourceSides sides(clock, absl::Seconds(30));
  sides.Register("s1", "a:1");
  sides.Register("s2", "b:2");
  ASSERT_EQ(PairedWith(sides, 1), "s1@a:1");
  sides.Unpair(1, /*lost=*/true);
  // Lost: s2 alone, however few pairs s1 holds, until a lease timeout has passed.
  for (int64_t task = 2; task < 6; ++task) EXPECT_EQ(PairedWith(sides, task), "s2@b:2");
  clock.Advance(absl::Seconds(31));
  EXPECT_EQ(sides.Live(), 0);  // neither was heard from
  EXPECT_EQ(PairedWith(sides, 6), "none");
  EXPECT_TRUE(sides.Heartbeat("s1", "a:9"));  // heard from again, at a new address
  EXPECT_EQ(sides.Live(), 1);
  EXPECT_EQ(PairedWith(sides, 7), "s1@a:9");
}

}  // namespace
}  // namespace backfill
