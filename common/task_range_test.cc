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

}  // namespace
}  // namespace backfill
