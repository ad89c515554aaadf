#include "common/task_range.h"

#include "absl/strings/str_cat.h"
#include "common/quote.h"

namespace backfill {

std::string TaskRangeWhere(bool cut, absl::string_view time_column, absl::string_view time_type,
                           absl::string_view until_literal) {
  if (!cut) return "";
  return absl::StrCat(" WHERE ", QuoteIdent(time_column), " < ", QuoteLiteral(until_literal),
                      "::", time_type);
}

}  // namespace backfill
