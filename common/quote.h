// SQL quoting for identifiers and literals that must appear in statement text (COPY cannot
// take parameters). Everything else reaches SQL as a parameter.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace backfill {

// "name" with embedded double quotes doubled; always quoted, so any name is safe.
std::string QuoteIdent(absl::string_view name);

// "schema"."name".
std::string QuoteQualified(absl::string_view schema, absl::string_view name);

// 'text' with embedded single quotes doubled. Requires standard_conforming_strings = on,
// which every Connection pins. Rejects nothing: NUL bytes cannot occur in PostgreSQL text.
std::string QuoteLiteral(absl::string_view text);

// A text[] parameter's value: {"a","b"}, each element quoted, with backslashes and double
// quotes escaped by a backslash.
std::string TextArrayParam(const std::vector<std::string>& elements);

}  // namespace backfill

namespace backfill {

// schema.name as PostgreSQL's format('%I.%I') prints it: each part quoted only when it needs
// to be (anything but lowercase letters, digits and underscores, or a leading digit). For
// messages and output; SQL text always uses QuoteQualified. Keywords are not detected.
std::string DisplayName(absl::string_view schema, absl::string_view name);

}  // namespace backfill
