#include "common/catalog.h"

#include <gtest/gtest.h>

namespace backfill {
namespace {

TEST(TimescaleVersionTest, ParsesReleaseAndDevVersions) {
  absl::StatusOr<TimescaleVersion> v = ParseTimescaleVersion("2.22.1");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->major, 2);
  EXPECT_EQ(v->minor, 22);
  EXPECT_EQ(v->patch, 1);
  v = ParseTimescaleVersion("2.28.0-dev");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->minor, 28);
  EXPECT_EQ(v->patch, 0);
  EXPECT_EQ(v->text, "2.28.0-dev");
}

TEST(TimescaleVersionTest, RejectsGarbage) {
  EXPECT_FALSE(ParseTimescaleVersion("").ok());
  EXPECT_FALSE(ParseTimescaleVersion("two.one").ok());
  EXPECT_FALSE(ParseTimescaleVersion("2").ok());
}

TEST(TimescaleVersionTest, AtLeastComparesMajorThenMinor) {
  TimescaleVersion v = *ParseTimescaleVersion("2.26.0");
  EXPECT_TRUE(v.AtLeast(2, 26));
  EXPECT_TRUE(v.AtLeast(2, 22));
  EXPECT_TRUE(v.AtLeast(1, 99));
  EXPECT_FALSE(v.AtLeast(2, 27));
  EXPECT_FALSE(v.AtLeast(3, 0));
}

}  // namespace
}  // namespace backfill
