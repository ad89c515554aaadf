// Just enough JSON writing to pass batches of rows to PostgreSQL as one parameter
// (jsonb_to_recordset), instead of one round trip per row.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace backfill {

// A JSON string literal for `text` (quotes, backslashes and control characters escaped).
std::string JsonQuote(absl::string_view text);

}  // namespace backfill
