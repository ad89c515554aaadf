#include "common/task_range.h"

#include <gtest/gtest.h>

namespace backfill {
namespace {

TEST(TaskRangeTest, WholeChunkHasNoPredicate) {
  EXPECT_EQ(TaskRangeWhere(false, "time", "timestamp with time zone", "ignored"), "");
}

TEST(TaskRangeTest, CutChunkSelectsRowsStrictlyBeforeUntilInTheColumnType) {
  EXPECT_EQ(TaskRangeWhere(true, "time", "timestamp with time zone", "2024-01-04 12:00:00+00"),
            " WHERE \"time\" < '2024-01-04 12:00:00+00'::timestamp with time zone");
}

TEST(TaskRangeTest, QuotesHostileColumnNamesAndValues) {
  EXPECT_EQ(TaskRangeWhere(true, "t\"x", "bigint", "1'; DROP TABLE x; --"),
            " WHERE \"t\"\"x\" < '1''; DROP TABLE x; --'::bigint");
}

TEST(TaskRangeTest, AFromBoundSelectsRowsAtOrAfterIt) {
  EXPECT_EQ(TaskRangeWhere(false, "ts", "bigint", "", "100"), " WHERE \"ts\" >= '100'::bigint");
  EXPECT_EQ(TaskRangeWhere(true, "ts", "date", "2024-02-01", "2024-01-15"),
            " WHERE \"ts\" >= '2024-01-15'::date AND \"ts\" < '2024-02-01'::date");
}

}  // namespace
}  // namespace backfill
