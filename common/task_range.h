// The SQL predicate that selects a task's rows in a chunk, shared by copy and verify so that
// both always look at exactly the same range.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

namespace backfill {

// "" when the task covers the whole chunk; otherwise ` WHERE "col" < 'until'::type`, with
// `"col" >= 'from'::type` too when `from_literal` is not empty (stage --from).
// `time_type` must be a type name read from the catalog (regtype text), the literals the
// canonical text of values in that type.
std::string TaskRangeWhere(bool cut, absl::string_view time_column, absl::string_view time_type,
                           absl::string_view until_literal, absl::string_view from_literal = "");

}  // namespace backfill
