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

TEST(CheckSupportedVersionTest, NamesTheSideTheVersionAndTheRange) {
  for (const char* ok : {"2.22.0", "2.22.1", "2.25.2", "2.28.3", "2.28.0-dev"}) {
    EXPECT_TRUE(CheckSupportedVersion("source", *ParseTimescaleVersion(ok)).ok()) << ok;
  }
  absl::Status old = CheckSupportedVersion("source", *ParseTimescaleVersion("2.21.4"));
  EXPECT_EQ(old.message(),
            "the source database runs TimescaleDB 2.21.4, which this tool does not support "
            "(supported: 2.22 to 2.28)\nhint: update the extension on both sides (ALTER "
            "EXTENSION timescaledb UPDATE) to a supported version first");
  absl::Status newer = CheckSupportedVersion("target", *ParseTimescaleVersion("2.29.0"));
  EXPECT_EQ(newer.message(),
            "the target database runs TimescaleDB 2.29.0, which this tool does not support "
            "(supported: 2.22 to 2.28)\nhint: use a release of this tool that supports it");
  EXPECT_FALSE(CheckSupportedVersion("target", *ParseTimescaleVersion("1.7.5")).ok());
  EXPECT_FALSE(CheckSupportedVersion("target", *ParseTimescaleVersion("3.0.0")).ok());
}

}  // namespace
}  // namespace backfill
