// The bearer token every RPC between backfillctl, backfill-coordinator and backfill-worker
// carries. The same token is given to all three, from --token-file or BACKFILL_TOKEN. It is
// never logged.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace backfill {

inline constexpr char kTokenEnvironmentVariable[] = "BACKFILL_TOKEN";

// The token from `token_file` when given (surrounding whitespace trimmed), else from
// BACKFILL_TOKEN, else "" (no token). A file that cannot be read, or holds an empty token,
// is an error naming the file.
absl::StatusOr<std::string> LoadToken(const std::string& token_file);

// A fresh random token (for an embedded coordinator, so that other local users cannot
// drive it).
std::string RandomToken();

// Compares in time independent of where the strings differ.
bool TokensEqual(absl::string_view a, absl::string_view b);

}  // namespace backfill
