#include "common/auth.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace backfill {

absl::StatusOr<std::string> LoadToken(const std::string& token_file) {
  if (token_file.empty()) {
    const char* env = std::getenv(kTokenEnvironmentVariable);
    return std::string(env != nullptr ? absl::StripAsciiWhitespace(env) : "");
  }
  std::ifstream in(token_file);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the token file ", token_file));
  }
  std::stringstream content;
  content << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(content.str()));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the token file ", token_file, " is empty"));
  }
  return token;
}

std::string RandomToken() {
  std::random_device random;
  std::string bytes(32, '\0');
  for (char& c : bytes) c = static_cast<char>(random() & 0xff);
  return absl::WebSafeBase64Escape(bytes);
}

bool TokensEqual(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

}  // namespace backfill
