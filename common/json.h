// The JSON backfillctl prints (copy's JSON lines, status --json) is written by JsonWriter;
// verify --json prints its report message with protobuf's own JSON printer. JsonQuote also
// serves the batches of rows the stager passes to PostgreSQL as one parameter
// (jsonb_to_recordset).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace backfill {

// A JSON string literal for `text` (quotes, backslashes and control characters escaped).
std::string JsonQuote(absl::string_view text);

// Writes one JSON value, compact, keys in the order given. Misuse (a value without a key
// inside an object, unbalanced ends) is a programming error, checked in debug builds.
//
//   JsonWriter w;
//   w.BeginObject().Field("event", "start").Field("chunks_total", 8).EndObject();
//   std::cout << w.str();  // {"event":"start","chunks_total":8}
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // The key of the next value, inside an object.
  JsonWriter& Key(absl::string_view key);

  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  // With `decimals` digits after the point: 2.5 with 1 is 2.5, 2 with 1 is 2.0.
  JsonWriter& Fixed(double value, int decimals);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

  JsonWriter& Field(absl::string_view key, absl::string_view value) {
    return Key(key).String(value);
  }
  JsonWriter& Field(absl::string_view key, const char* value) { return Key(key).String(value); }
  JsonWriter& Field(absl::string_view key, const std::string& value) {
    return Key(key).String(value);
  }
  JsonWriter& Field(absl::string_view key, int64_t value) { return Key(key).Int(value); }
  JsonWriter& Field(absl::string_view key, int value) { return Key(key).Int(value); }
  JsonWriter& Field(absl::string_view key, double value) = delete;  // say how: Fixed
  JsonWriter& Field(absl::string_view key, bool value) { return Key(key).Bool(value); }

  const std::string& str() const { return out_; }

 private:
  // Before a value: the comma that separates it from the one before, unless a key came first.
  void BeforeValue();

  std::string out_;
  // Per open object or array: nothing written in it yet.
  std::vector<bool> empty_;
  bool after_key_ = false;
};

}  // namespace backfill
