#include "common/quote.h"

#include "absl/strings/str_cat.h"

namespace backfill {
namespace {

std::string Quote(absl::string_view text, char quote) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back(quote);
  for (char c : text) {
    if (c == quote) out.push_back(quote);
    out.push_back(c);
  }
  out.push_back(quote);
  return out;
}

}  // namespace

std::string QuoteIdent(absl::string_view name) { return Quote(name, '"'); }

std::string QuoteQualified(absl::string_view schema, absl::string_view name) {
  return absl::StrCat(QuoteIdent(schema), ".", QuoteIdent(name));
}

std::string QuoteLiteral(absl::string_view text) { return Quote(text, '\''); }

std::string TextArrayParam(const std::vector<std::string>& elements) {
  std::string out = "{";
  for (size_t i = 0; i < elements.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : elements[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace backfill

namespace backfill {
namespace {

std::string IdentForDisplay(absl::string_view name) {
  bool plain = !name.empty() && !(name[0] >= '0' && name[0] <= '9');
  for (char c : name) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  }
  return plain ? std::string(name) : QuoteIdent(name);
}

}  // namespace

std::string DisplayName(absl::string_view schema, absl::string_view name) {
  return absl::StrCat(IdentForDisplay(schema), ".", IdentForDisplay(name));
}

}  // namespace backfill
