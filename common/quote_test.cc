#include "common/quote.h"

#include <gtest/gtest.h>

namespace backfill {
namespace {

TEST(QuoteTest, IdentifiersAreAlwaysQuotedWithEmbeddedQuotesDoubled) {
  EXPECT_EQ(QuoteIdent("metrics"), "\"metrics\"");
  EXPECT_EQ(QuoteIdent("Weird \"name\""), "\"Weird \"\"name\"\"\"");
  EXPECT_EQ(QuoteIdent(""), "\"\"");
}

TEST(QuoteTest, QualifiedNamesQuoteBothParts) {
  EXPECT_EQ(QuoteQualified("my schema", "t.1"), "\"my schema\".\"t.1\"");
}

TEST(QuoteTest, LiteralsDoubleSingleQuotesAndKeepBackslashes) {
  EXPECT_EQ(QuoteLiteral("2024-01-01 00:00:00+00"), "'2024-01-01 00:00:00+00'");
  EXPECT_EQ(QuoteLiteral("it's"), "'it''s'");
  EXPECT_EQ(QuoteLiteral("a\\b"), "'a\\b'");  // standard_conforming_strings is pinned on
}

}  // namespace
}  // namespace backfill

namespace backfill {
namespace {

TEST(QuoteTest, TextArraysQuoteEveryElementAndEscapeQuotesAndBackslashes) {
  EXPECT_EQ(TextArrayParam({}), "{}");
  EXPECT_EQ(TextArrayParam({"w1#17.2", ""}), "{\"w1#17.2\",\"\"}");
  EXPECT_EQ(TextArrayParam({"a,b", "say \"hi\"", "c:\\d", "NULL", "{x}"}),
            "{\"a,b\",\"say \\\"hi\\\"\",\"c:\\\\d\",\"NULL\",\"{x}\"}");
}

TEST(QuoteTest, DisplayNamesQuoteOnlyWhatNeedsIt) {
  EXPECT_EQ(DisplayName("public", "metrics_2"), "public.metrics_2");
  EXPECT_EQ(DisplayName("Public", "my table"), "\"Public\".\"my table\"");
  EXPECT_EQ(DisplayName("s", "1abc"), "s.\"1abc\"");
}

}  // namespace
}  // namespace backfill
