#include "common/task_range.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/quote.h"

namespace backfill {

std::string TaskRangeWhere(bool cut, absl::string_view time_column, absl::string_view time_type,
                           absl::string_view until_literal, absl::string_view from_literal) {
  std::vector<std::string> conditions;
  if (!from_literal.empty()) {
    conditions.push_back(
        absl::StrCat(QuoteIdent(time_column), " >= ", QuoteLiteral(from_literal), "::", time_type));
  }
  if (cut) {
    conditions.push_back(
        absl::StrCat(QuoteIdent(time_column), " < ", QuoteLiteral(until_literal), "::", time_type));
  }
  if (conditions.empty()) return "";
  return absl::StrCat(" WHERE ", absl::StrJoin(conditions, " AND "));
}

}  // namespace backfill
