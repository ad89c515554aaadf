#include "common/json.h"

#include <gtest/gtest.h>

namespace backfill {
namespace {

TEST(JsonTest, QuotesAndEscapes) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("line\nnext\ttab\x01"), "\"line\\nnext\\ttab\\u0001\"");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(JsonWriterTest, WritesNestedValuesCompactInTheOrderGiven) {
  JsonWriter w;
  w.BeginObject()
      .Field("event", "finished")
      .Field("n", int64_t{-3})
      .Field("ok", true)
      .Key("rate")
      .Fixed(2, 1)
      .Key("eta")
      .Null()
      .Key("failed")
      .BeginArray();
  w.BeginObject().Field("chunk", "a\"b").EndObject();
  w.BeginObject().Field("chunk", "c").EndObject();
  w.EndArray().Key("empty").BeginArray().EndArray().Key("none").BeginObject().EndObject();
  w.EndObject();
  EXPECT_EQ(w.str(),
            "{\"event\":\"finished\",\"n\":-3,\"ok\":true,\"rate\":2.0,\"eta\":null,"
            "\"failed\":[{\"chunk\":\"a\\\"b\"},{\"chunk\":\"c\"}],\"empty\":[],\"none\":{}}");
}

TEST(JsonWriterTest, SeparatesTheValuesOfAnArray) {
  JsonWriter w;
  w.BeginArray().Int(1).String("two").Bool(false).Fixed(0.25, 2).EndArray();
  EXPECT_EQ(w.str(), "[1,\"two\",false,0.25]");
}

}  // namespace
}  // namespace backfill
