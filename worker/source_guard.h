// What a source-side worker runs on the source for the workers that dial it. They hold the
// token, not the source's credentials: a session must let them read what a copy or a
// verification reads and nothing more. So every statement runs in a read-only transaction,
// and only these shapes are taken:
//   - transaction control: BEGIN [ISOLATION LEVEL REPEATABLE READ] READ ONLY, COMMIT,
//     ROLLBACK (a snapshot for the chunk's reads);
//   - one query that begins SELECT, WITH, VALUES, TABLE or SHOW (the extended protocol runs
//     one statement and no more; writes fail in a read-only transaction, SET is not a query);
//   - COPY (query) TO STDOUT or COPY table (columns) TO STDOUT, in binary or text: rebuilt
//     here from what was checked, never run as sent (no file, no program, no second
//     statement).
// Anything else is refused with InvalidArgument naming what was sent.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace backfill {

// Transaction control allowed as a script.
absl::Status CheckSourceScript(absl::string_view script);

// A query allowed as one statement.
absl::Status CheckSourceQuery(absl::string_view sql);

// A COPY ... TO STDOUT, checked and taken apart.
struct SourceCopy {
  // The COPY to run, rebuilt from the parts checked.
  std::string statement;
  // For COPY (query): the query, which must also parse as one statement on its own before the
  // COPY runs (Connection::Parse), so that it cannot close the parenthesis early.
  std::string query;
};
absl::StatusOr<SourceCopy> CheckSourceCopy(absl::string_view copy_out_sql);

}  // namespace backfill
