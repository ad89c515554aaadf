#include "common/catalog.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

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

TEST(CheckAbsoluteTimeTest, RefusesRelativeAndSpecialWordsAnywhereInTheValue) {
  for (const char* bad : {"now", "NOW()", "today", "Today 10:00", "yesterday", "tomorrow",
                          "infinity", "-infinity", "+Infinity", "epoch", "2024-01-01 now"}) {
    absl::Status s = CheckAbsoluteTime("--until", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(s.message(), absl::StrCat("--until '", bad, "' is a relative")))
        << s.message();
  }
  EXPECT_EQ(CheckAbsoluteTime("--until", "now").message(),
            "--until 'now' is a relative or special value (now): it would mean another time on "
            "every run, or no time at all\nhint: give the absolute time where dual writes began, "
            "e.g. --until '2025-01-06T00:00:00Z'");
  for (const char* ok : {"2025-01-06", "2025-01-06T00:00:00Z", "2025-01-06 10:00:00+02:00",
                         "1704067200", "-5", "Jan 6 2025", "2025-01-06T00:00:00.000000Z"}) {
    EXPECT_TRUE(CheckAbsoluteTime("--until", ok).ok()) << ok;
  }
}

}  // namespace
}  // namespace backfill
