// Typed reads and writes of TimescaleDB's catalog, for the versions we support. Version
// differences are decided here, once, from the extension version read at Load().
//
// A Catalog borrows its connection: the connection must outlive it. Not thread-safe.
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "common/pg.h"

namespace backfill {

struct TimescaleVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  std::string text;

  bool AtLeast(int want_major, int want_minor) const {
    return major > want_major || (major == want_major && minor >= want_minor);
  }
};

// The oldest and newest TimescaleDB minor versions this tool was built and tested against.
inline constexpr char kSupportedTimescaleRange[] = "2.22 to 2.28";

struct Hypertable {
  int32_t id = 0;
  std::string schema;
  std::string name;
  int32_t time_dimension_id = 0;
  std::string time_column;
  std::string time_type;  // regtype as text, e.g. "timestamp with time zone"
  // For the materialization of a continuous aggregate: what it is built on, and its view.
  int32_t raw_hypertable_id = 0;
  std::string view_schema;
  std::string view_name;
  bool matched = false;  // by the filter given to ListHypertables

  bool is_cagg() const { return raw_hypertable_id != 0; }

  std::string QualifiedName() const;  // for SQL text
  std::string DisplayName() const;    // for messages
};

struct Chunk {
  int32_t id = 0;
  std::string schema;
  std::string name;
  bool compressed = false;
  int64_t time_start = 0;          // internal units, inclusive
  int64_t time_end = 0;            // internal units, exclusive
  std::string slices;              // JSON object {"column": [start, end], ...} for create_chunk
  int64_t bytes = 0;               // on disk, its compressed chunk included
  int64_t uncompressed_bytes = 0;  // the same decompressed (from compression statistics)

  std::string QualifiedName() const;  // for SQL text
  std::string DisplayName() const;    // for messages
};

// An --until value parsed for one time column type.
struct UntilValue {
  int64_t internal = 0;  // TimescaleDB internal units (µs since epoch, or the integer)
  std::string literal;   // canonical text, safe to cast back to the column type
};

struct Column {
  std::string name;
  std::string type;  // format_type(), typmod included
  bool binary_io = true;
  bool not_null = false;
  bool has_default = false;  // a default, an identity or a generated column
};

// A hypertable as the target knows it: a continuous aggregate's materialization has its own
// name there.
struct TargetHypertable {
  int32_t id = 0;
  std::string schema;
  std::string name;
};

struct CreatedChunk {
  std::string schema;
  std::string name;
  bool created = false;
};

// A continuous aggregate and how far it is materialized.
struct ContinuousAggregate {
  int32_t mat_hypertable_id = 0;
  int32_t raw_hypertable_id = 0;  // what it is built on: a hypertable or another aggregate
  std::string view_schema;
  std::string view_name;
  bool matched = false;       // by the filter given to ListContinuousAggregates
  int64_t watermark = 0;      // end of the materialized range, internal units
  std::string time_type;      // regtype text of its time column
  int64_t bucket_margin = 0;  // two of its buckets, internal units (months as 30 days); 0: unknown

  std::string DisplayName() const;
};

class Catalog {
 public:
  // Reads the TimescaleDB version; FailedPrecondition naming `conn.role()` when the extension
  // is missing, or when its version is outside kSupportedTimescaleRange.
  static absl::StatusOr<Catalog> Load(pg::Queryable& conn);

  const TimescaleVersion& version() const { return version_; }

  // Every hypertable and continuous-aggregate materialization, `matched` set where the name or
  // the view's name matches `filter` (a POSIX regular expression; empty matches all).
  // InvalidArgument quoting the filter when it is not a valid regular expression.
  absl::StatusOr<std::vector<Hypertable>> ListHypertables(absl::string_view filter);

  // Live chunks of `hypertable` with any time in [from, until), oldest first.
  absl::StatusOr<std::vector<Chunk>> ListChunks(const Hypertable& hypertable, int64_t until,
                                                int64_t from = INT64_MIN);

  // Parses `until` for the hypertable's time column type. InvalidArgument names the
  // hypertable, the column and the type when the value does not parse or does not fit.
  // Every continuous aggregate, `matched` set where the view's name matches `filter` (empty
  // matches all). InvalidArgument quoting the filter when it is not a regular expression.
  absl::StatusOr<std::vector<ContinuousAggregate>> ListContinuousAggregates(
      absl::string_view filter);

  // `internal` as text in `time_type`, or nullopt at the type's minimum (never refreshed).
  absl::StatusOr<std::optional<std::string>> InternalToLiteral(int64_t internal,
                                                               absl::string_view time_type);

  absl::StatusOr<UntilValue> ParseUntil(const Hypertable& hypertable, absl::string_view until) {
    return ParseTime(hypertable, "--until", until);
  }
  // The same for the value of `flag` ("--until", "--from").
  absl::StatusOr<UntilValue> ParseTime(const Hypertable& hypertable, absl::string_view flag,
                                       absl::string_view value);

  // This database's counterpart of `source`: the same name, or for a continuous aggregate the
  // materialization behind the view of the same name.
  absl::StatusOr<std::optional<TargetHypertable>> FindHypertable(const Hypertable& source);

  // Creates (or finds) the chunks of the hypertable with exactly these slices, in one round
  // trip; the result is in the order of `slices`.
  absl::StatusOr<std::vector<CreatedChunk>> CreateChunks(absl::string_view hypertable_schema,
                                                         absl::string_view hypertable_name,
                                                         const std::vector<std::string>& slices);

 private:
  Catalog(pg::Queryable* conn, TimescaleVersion version)
      : conn_(conn), version_(std::move(version)) {}

  pg::Queryable* conn_;
  TimescaleVersion version_;
};

// What a chunk is right now, read at copy time (it may have been compressed since staging).
struct ChunkState {
  bool exists = false;
  int32_t status = 0;
  std::string compressed_schema;  // "" when the chunk has no compressed chunk
  std::string compressed_name;
  std::string hypertable_schema;
  std::string hypertable_name;

  bool compressed() const { return (status & 1) != 0; }
  bool unordered() const { return (status & 2) != 0; }
  bool partial() const { return (status & 8) != 0; }
};

absl::StatusOr<ChunkState> ReadChunkState(pg::Queryable& conn, absl::string_view schema,
                                          absl::string_view name);

// The SET LOCAL statement that keeps a transaction's writes out of the continuous-aggregate
// invalidation log on this database, or "" when there is none (2.23 to 2.27, or 2.22 without
// superuser rights): timescaledb.skip_cagg_invalidation on 2.28+, session_replication_role =
// replica for 2.22's invalidation trigger (which also silences the target's other triggers
// for the copy transaction).
absl::StatusOr<std::string> SkipInvalidationStatement(pg::Queryable& conn);

// Columns of any table, in physical order, dropped ones left out.
absl::StatusOr<std::vector<Column>> ListColumns(pg::Queryable& conn,
                                                absl::string_view qualified_table);

// Whether the session's user is a superuser, who may write TimescaleDB's catalog.
absl::StatusOr<bool> IsSuperuser(pg::Queryable& conn);

absl::StatusOr<bool> RelationExists(pg::Queryable& conn, absl::string_view qualified_name);

// OK unless `value` is one of PostgreSQL's relative or special time inputs (now, today,
// yesterday, tomorrow, infinity, -infinity, epoch), alone or within the value: they mean
// another time on every run, or no time at all. InvalidArgument names `flag` and the value.
absl::Status CheckAbsoluteTime(absl::string_view flag, absl::string_view value);

// Parses "2.22.1" (and "2.28.0-dev"); InvalidArgument otherwise.
absl::StatusOr<TimescaleVersion> ParseTimescaleVersion(absl::string_view text);

// OK when `version` is within kSupportedTimescaleRange; else FailedPrecondition naming the
// `role` ("source", "target"), the version and the range, with a hint.
absl::Status CheckSupportedVersion(absl::string_view role, const TimescaleVersion& version);

// OK when source and target run the same TimescaleDB version; else FailedPrecondition naming
// both. Compressed batches are an on-disk format of one version: stage, copy, verify,
// refresh-caggs and every worker connection check this, not only stage.
absl::Status CheckSameVersion(const TimescaleVersion& source, const TimescaleVersion& target);

// Catalog::Load on both connections, then CheckSameVersion.
absl::Status CheckVersions(pg::Queryable& source, pg::Queryable& target);

// Which database `conn` is: "system <system identifier>, database <name>", the same for
// every session of that database on a cluster and its physical replicas, different for
// any other (a target restored from the source's dump included). Empty when the session may
// not read pg_control_system().
absl::StatusOr<std::string> DatabaseIdentity(pg::Queryable& conn);

}  // namespace backfill
