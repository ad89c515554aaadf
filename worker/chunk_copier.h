// Copies one task's rows from a source chunk into its target chunk: the hot path.
//
// One target transaction holds everything: the fence on the task row, the delete of the
// task's range in the target chunk, the binary COPY relayed from the source without decoding
// rows, and the task's completion. Either all of it commits or none of it does, so a chunk's
// rows land exactly once whatever dies. No gRPC here: the worker loop adapts.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/pg.h"

namespace backfill {

struct CopySpec {
  int64_t task_id = 0;
  int64_t lease_epoch = 0;
  std::string source_chunk_schema;
  std::string source_chunk_name;
  std::string target_chunk_schema;
  std::string target_chunk_name;
  std::string time_column;
  std::string time_type;
  bool cut = false;  // copy only rows with time_column < until_literal
  std::string until_literal;
};

struct CopyOutcome {
  enum class Kind {
    kCopied,         // committed together with the task's completion
    kSourceMissing,  // source chunk gone; the task was completed with a message
    kFenced,         // the lease was re-granted; nothing was committed
  };
  Kind kind = Kind::kCopied;
  int64_t rows = 0;
  int64_t bytes = 0;
};

// Runs the copy on the two connections, which must be idle (no open transaction). On error
// both transactions are rolled back and the connections stay usable unless they broke.
absl::StatusOr<CopyOutcome> CopyChunk(pg::Connection& source, pg::Connection& target,
                                      const CopySpec& spec);

}  // namespace backfill
