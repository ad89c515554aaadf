#include "worker/source_guard.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace backfill {
namespace {

// For messages: what was sent, cut short.
std::string Quote(absl::string_view sql) {
  constexpr size_t kShown = 80;
  return sql.size() <= kShown ? absl::StrCat("\"", sql, "\"")
                              : absl::StrCat("\"", sql.substr(0, kShown), "...\"");
}

absl::Status Refused(absl::string_view what, absl::string_view sql) {
  return absl::InvalidArgumentError(
      absl::StrCat("the source-side worker runs no ", what, " like ", Quote(sql),
                   ": it reads the source in read-only transactions (queries, COPY ... TO "
                   "STDOUT) and nothing else"));
}

// The statement's first word, upper-cased, past blanks and comments; empty if none.
std::string FirstWord(absl::string_view sql) {
  size_t i = 0;
  while (i < sql.size()) {
    if (absl::ascii_isspace(static_cast<unsigned char>(sql[i]))) {
      ++i;
    } else if (absl::StartsWith(sql.substr(i), "--")) {
      // PostgreSQL's lexer ends it at either (scan.l: newline [\n\r]).
      const size_t end = sql.find_first_of("\n\r", i);
      i = end == absl::string_view::npos ? sql.size() : end + 1;
    } else if (absl::StartsWith(sql.substr(i), "/*")) {
      // Comments nest in PostgreSQL.
      int depth = 0;
      do {
        if (absl::StartsWith(sql.substr(i), "/*")) {
          ++depth;
          i += 2;
        } else if (absl::StartsWith(sql.substr(i), "*/")) {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      } while (depth > 0 && i < sql.size());
    } else {
      break;
    }
  }
  size_t end = i;
  while (end < sql.size() && absl::ascii_isalpha(static_cast<unsigned char>(sql[end]))) ++end;
  // A word glued to what follows ("SELECT1", "SELECT$x") is not a keyword.
  if (end < sql.size() && (absl::ascii_isalnum(static_cast<unsigned char>(sql[end])) ||
                           sql[end] == '_' || sql[end] == '$')) {
    return "";
  }
  return absl::AsciiStrToUpper(sql.substr(i, end - i));
}

bool IsIdentStart(char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$';
}

// Consumes one identifier, plain or double-quoted, at `*at`; false if there is none.
bool Identifier(absl::string_view s, size_t* at) {
  size_t i = *at;
  if (i < s.size() && s[i] == '"') {
    for (++i; i < s.size(); ++i) {
      if (s[i] != '"') continue;
      if (i + 1 < s.size() && s[i + 1] == '"') {
        ++i;  // a doubled quote inside
        continue;
      }
      if (i == *at + 1) return false;  // "" names nothing
      *at = i + 1;
      return true;
    }
    return false;
  }
  if (i >= s.size() || !IsIdentStart(s[i])) return false;
  while (i < s.size() && IsIdentChar(s[i])) ++i;
  *at = i;
  return true;
}

void Blanks(absl::string_view s, size_t* at) {
  while (*at < s.size() && s[*at] == ' ') ++*at;
}

// `schema.table (column, ...)`, or `table (column, ...)`, and nothing else.
bool IsTableWithColumns(absl::string_view s) {
  size_t at = 0;
  if (!Identifier(s, &at)) return false;
  if (at < s.size() && s[at] == '.') {
    ++at;
    if (!Identifier(s, &at)) return false;
  }
  Blanks(s, &at);
  if (at >= s.size() || s[at] != '(') return false;
  ++at;
  for (;;) {
    Blanks(s, &at);
    if (!Identifier(s, &at)) return false;
    Blanks(s, &at);
    if (at < s.size() && s[at] == ',') {
      ++at;
      continue;
    }
    return at + 1 == s.size() && s[at] == ')';
  }
}

}  // namespace

absl::Status CheckSourceScript(absl::string_view script) {
  // Blanks collapsed, a trailing semicolon dropped, upper case.
  std::string normal;
  for (char c : absl::StripAsciiWhitespace(script)) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      if (!normal.empty() && normal.back() != ' ') normal.push_back(' ');
    } else {
      normal.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
    }
  }
  if (!normal.empty() && normal.back() == ';') normal.pop_back();
  static constexpr std::array<absl::string_view, 5> kAllowed = {
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
      "BEGIN READ ONLY",
      "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
      "COMMIT",
      "ROLLBACK",
  };
  for (absl::string_view allowed : kAllowed) {
    if (absl::StripTrailingAsciiWhitespace(normal) == allowed) return absl::OkStatus();
  }
  return Refused("script", script);
}

absl::Status CheckSourceQuery(absl::string_view sql) {
  const std::string word = FirstWord(sql);
  if (word == "SELECT" || word == "WITH" || word == "VALUES" || word == "TABLE" || word == "SHOW") {
    return absl::OkStatus();
  }
  return Refused("statement", sql);
}

absl::StatusOr<SourceCopy> CheckSourceCopy(absl::string_view copy_out_sql) {
  absl::string_view s = absl::StripAsciiWhitespace(copy_out_sql);
  absl::string_view format;
  for (absl::string_view candidate : {"binary", "text"}) {
    if (absl::EndsWithIgnoreCase(s, absl::StrCat(" TO STDOUT (FORMAT ", candidate, ")"))) {
      format = candidate;
    }
  }
  const size_t suffix = sizeof(" TO STDOUT (FORMAT )") - 1 + format.size();
  if (format.empty() || !absl::StartsWithIgnoreCase(s, "COPY ") || s.size() < 5 + suffix) {
    return Refused("COPY", s);
  }
  absl::string_view what = s.substr(5, s.size() - 5 - suffix);
  what = absl::StripAsciiWhitespace(what);
  SourceCopy copy;
  if (absl::StartsWith(what, "(") && absl::EndsWith(what, ")")) {
    copy.query = std::string(what.substr(1, what.size() - 2));
    // SHOW cannot be COPY's query.
    const std::string word = FirstWord(copy.query);
    if (word != "SELECT" && word != "WITH" && word != "VALUES" && word != "TABLE") {
      return Refused("COPY", s);
    }
    // On a line of its own: a comment at the query's end cannot swallow it.
    copy.statement = absl::StrCat("COPY (", copy.query, "\n) TO STDOUT (FORMAT ", format, ")");
    return copy;
  }
  if (!IsTableWithColumns(what)) return Refused("COPY", s);
  copy.statement = absl::StrCat("COPY ", what, " TO STDOUT (FORMAT ", format, ")");
  return copy;
}

}  // namespace backfill
