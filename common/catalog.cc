#include "common/catalog.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "backfill_common_sql.h"
#include "common/quote.h"

namespace backfill {

std::string Hypertable::QualifiedName() const { return QuoteQualified(schema, name); }
std::string Hypertable::DisplayName() const { return backfill::DisplayName(schema, name); }
std::string Chunk::QualifiedName() const { return QuoteQualified(schema, name); }
std::string Chunk::DisplayName() const { return backfill::DisplayName(schema, name); }

absl::StatusOr<TimescaleVersion> ParseTimescaleVersion(absl::string_view text) {
  absl::string_view numeric = text.substr(0, text.find_first_of("-+ "));
  std::vector<absl::string_view> parts = absl::StrSplit(numeric, '.');
  TimescaleVersion version;
  version.text = std::string(text);
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[0], &version.major) ||
      !absl::SimpleAtoi(parts[1], &version.minor) ||
      (parts.size() > 2 && !absl::SimpleAtoi(parts[2], &version.patch))) {
    return absl::InvalidArgumentError(
        absl::StrCat("unrecognised TimescaleDB version '", text, "'"));
  }
  return version;
}

absl::StatusOr<Catalog> Catalog::Load(pg::Queryable& conn) {
  absl::StatusOr<pg::Result> rows = conn.Exec(sql::kExtensionVersion);
  if (!rows.ok()) return rows.status();
  if (rows->rows() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ", conn.role(), " database does not have the timescaledb extension\n",
                     "hint: run CREATE EXTENSION timescaledb in the ", conn.role(),
                     " database, or check the connection string points at the right database"));
  }
  absl::StatusOr<TimescaleVersion> version = ParseTimescaleVersion(rows->Get(0, 0));
  if (!version.ok()) return version.status();
  if (absl::Status s = CheckSupportedVersion(conn.role(), *version); !s.ok()) return s;
  return Catalog(&conn, *version);
}

absl::Status CheckSupportedVersion(absl::string_view role, const TimescaleVersion& version) {
  if (version.AtLeast(2, 22) && !version.AtLeast(2, 29)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the ", role, " database runs TimescaleDB ", version.text,
      ", which this tool does not support (supported: ", kSupportedTimescaleRange, ")\nhint: ",
      version.AtLeast(2, 29) ? "use a release of this tool that supports it"
                             : "update the extension on both sides (ALTER EXTENSION timescaledb "
                               "UPDATE) to a supported version first"));
}

absl::Status CheckAbsoluteTime(absl::string_view flag, absl::string_view value) {
  static constexpr absl::string_view kSpecial[] = {"now",      "today",    "yesterday",
                                                   "tomorrow", "infinity", "epoch"};
  // PostgreSQL finds these words anywhere in a time input ("now()", "today 10:00").
  std::string words = absl::AsciiStrToLower(value);
  for (char& c : words) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) c = ' ';
  }
  for (absl::string_view word : absl::StrSplit(words, ' ', absl::SkipEmpty())) {
    for (absl::string_view special : kSpecial) {
      if (word != special) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          flag, " '", value, "' is a relative or special value (", special,
          "): it would mean another time on every run, or no time at all\nhint: give the "
          "absolute time where dual writes began, e.g. ",
          flag, " '2025-01-06T00:00:00Z'"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSameVersion(const TimescaleVersion& source, const TimescaleVersion& target) {
  if (source.text == target.text) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the source runs TimescaleDB ", source.text, " and the target runs ", target.text,
      "\nhint: update the older one (ALTER EXTENSION timescaledb UPDATE) so both run "
      "the same version, then run this command again"));
}

absl::StatusOr<std::string> DatabaseIdentity(pg::Queryable& conn) {
  absl::StatusOr<pg::Result> id = conn.Exec(
      "SELECT (SELECT system_identifier::text FROM pg_catalog.pg_control_system()), "
      "pg_catalog.current_database()");
  if (pg::SqlState(id.status()) == "42501") return std::string();  // insufficient_privilege
  if (!id.ok()) return id.status();
  return absl::StrCat("system ", id->Get(0, 0), ", database ", id->Get(0, 1));
}

absl::Status CheckVersions(pg::Queryable& source, pg::Queryable& target) {
  absl::StatusOr<Catalog> source_catalog = Catalog::Load(source);
  if (!source_catalog.ok()) return source_catalog.status();
  absl::StatusOr<Catalog> target_catalog = Catalog::Load(target);
  if (!target_catalog.ok()) return target_catalog.status();
  return CheckSameVersion(source_catalog->version(), target_catalog->version());
}

absl::StatusOr<std::vector<Hypertable>> Catalog::ListHypertables(absl::string_view filter) {
  pg::Param param;
  if (!filter.empty()) param = std::string(filter);
  absl::StatusOr<pg::Result> rows = conn_->Exec(sql::kListHypertables, {param});
  if (!rows.ok()) {
    if (pg::SqlState(rows.status()) == "2201B") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--filter '", filter, "' is not a valid regular expression: ", rows.status().message()));
    }
    return rows.status();
  }
  std::vector<Hypertable> out;
  out.reserve(rows->rows());
  for (int i = 0; i < rows->rows(); ++i) {
    Hypertable h;
    h.id = static_cast<int32_t>(rows->GetInt(i, 0));
    h.schema = rows->Get(i, 1);
    h.name = rows->Get(i, 2);
    h.time_dimension_id = static_cast<int32_t>(rows->GetInt(i, 3));
    h.time_column = rows->Get(i, 4);
    h.time_type = rows->Get(i, 5);
    h.raw_hypertable_id = static_cast<int32_t>(rows->GetInt(i, 6));
    h.view_schema = rows->Get(i, 7);
    h.view_name = rows->Get(i, 8);
    h.matched = rows->GetBool(i, 9);
    out.push_back(std::move(h));
  }
  return out;
}

absl::StatusOr<std::vector<Chunk>> Catalog::ListChunks(const Hypertable& hypertable, int64_t until,
                                                       int64_t from) {
  // chunk.dropped exists until 2.25 and was removed in 2.26.
  absl::string_view query =
      version_.AtLeast(2, 26) ? sql::kListChunks : sql::kListChunksWithDropped;
  absl::StatusOr<pg::Result> rows =
      conn_->Exec(query, {absl::StrCat(hypertable.id), absl::StrCat(hypertable.time_dimension_id),
                          absl::StrCat(until), absl::StrCat(from)});
  if (!rows.ok()) return rows.status();
  std::vector<Chunk> out;
  out.reserve(rows->rows());
  for (int i = 0; i < rows->rows(); ++i) {
    Chunk c;
    c.id = static_cast<int32_t>(rows->GetInt(i, 0));
    c.schema = rows->Get(i, 1);
    c.name = rows->Get(i, 2);
    c.compressed = rows->GetBool(i, 3);
    c.time_start = rows->GetInt(i, 4);
    c.time_end = rows->GetInt(i, 5);
    c.slices = rows->Get(i, 6);
    c.bytes = rows->GetInt(i, 7);
    c.uncompressed_bytes = rows->GetInt(i, 8);
    out.push_back(std::move(c));
  }
  return out;
}

std::string ContinuousAggregate::DisplayName() const {
  return backfill::DisplayName(view_schema, view_name);
}

absl::StatusOr<std::vector<ContinuousAggregate>> Catalog::ListContinuousAggregates(
    absl::string_view filter) {
  pg::Param param;
  if (!filter.empty()) param = std::string(filter);
  absl::StatusOr<pg::Result> rows = conn_->Exec(sql::kListCaggs, {param});
  if (!rows.ok()) {
    if (pg::SqlState(rows.status()) == "2201B") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--filter '", filter, "' is not a valid regular expression: ", rows.status().message()));
    }
    return rows.status();
  }
  std::vector<ContinuousAggregate> out;
  for (int i = 0; i < rows->rows(); ++i) {
    ContinuousAggregate c;
    c.mat_hypertable_id = static_cast<int32_t>(rows->GetInt(i, 0));
    c.raw_hypertable_id = static_cast<int32_t>(rows->GetInt(i, 1));
    c.view_schema = rows->Get(i, 2);
    c.view_name = rows->Get(i, 3);
    c.matched = rows->GetBool(i, 4);
    c.watermark = rows->GetInt(i, 5);
    c.time_type = rows->Get(i, 6);
    c.bucket_margin = rows->GetInt(i, 7);
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<std::optional<std::string>> Catalog::InternalToLiteral(int64_t internal,
                                                                      absl::string_view time_type) {
  absl::StatusOr<pg::Result> rows =
      conn_->Exec(sql::kInternalToLiteral, {absl::StrCat(internal), std::string(time_type)});
  if (!rows.ok()) return rows.status();
  if (rows->IsNull(0, 0)) return std::optional<std::string>();
  return std::optional<std::string>(rows->Get(0, 0));
}

absl::StatusOr<UntilValue> Catalog::ParseTime(const Hypertable& hypertable, absl::string_view flag,
                                              absl::string_view until) {
  static constexpr absl::string_view kTypes[] = {"timestamp with time zone",
                                                 "timestamp without time zone",
                                                 "date",
                                                 "smallint",
                                                 "integer",
                                                 "bigint"};
  bool known = false;
  for (absl::string_view t : kTypes) known = known || t == hypertable.time_type;
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot stage ", hypertable.DisplayName(), ": its time column ",
                     QuoteIdent(hypertable.time_column), " has type ", hypertable.time_type,
                     ", which ", flag, " does not support"));
  }
  absl::StatusOr<pg::Result> rows =
      conn_->Exec(sql::kParseUntil, {std::string(until), hypertable.time_type});
  if (!rows.ok()) {
    std::optional<std::string> state = pg::SqlState(rows.status());
    if (state.has_value() && state->substr(0, 2) == "22") {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot stage ", hypertable.DisplayName(), ": ", flag, " '", until, "' is not a valid ",
          hypertable.time_type, " for column ", QuoteIdent(hypertable.time_column)));
    }
    return rows.status();
  }
  if (rows->IsNull(0, 0)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot stage ", hypertable.DisplayName(), ": ",
                                                   flag, " '", until, "' has no value"));
  }
  return UntilValue{rows->GetInt(0, 0), rows->Get(0, 1)};
}

absl::StatusOr<std::optional<TargetHypertable>> Catalog::FindHypertable(const Hypertable& source) {
  absl::StatusOr<pg::Result> rows = conn_->Exec(
      sql::kFindHypertable, {source.schema, source.name, source.view_schema, source.view_name});
  if (!rows.ok()) return rows.status();
  if (rows->rows() == 0) return std::optional<TargetHypertable>();
  return std::optional<TargetHypertable>(
      TargetHypertable{static_cast<int32_t>(rows->GetInt(0, 0)), rows->Get(0, 1), rows->Get(0, 2)});
}

absl::StatusOr<std::vector<CreatedChunk>> Catalog::CreateChunks(
    absl::string_view hypertable_schema, absl::string_view hypertable_name,
    const std::vector<std::string>& slices) {
  // The slices are JSON objects read from the source catalog; join them into an array.
  std::string array = absl::StrCat("[", absl::StrJoin(slices, ","), "]");
  absl::StatusOr<pg::Result> rows = conn_->Exec(
      sql::kCreateChunk, {QuoteQualified(hypertable_schema, hypertable_name), std::move(array)});
  if (!rows.ok()) return rows.status();
  std::vector<CreatedChunk> out;
  out.reserve(rows->rows());
  for (int i = 0; i < rows->rows(); ++i) {
    out.push_back(CreatedChunk{rows->Get(i, 0), rows->Get(i, 1), rows->GetBool(i, 2)});
  }
  return out;
}

absl::StatusOr<std::vector<Column>> ListColumns(pg::Queryable& conn,
                                                absl::string_view qualified_table) {
  absl::StatusOr<pg::Result> rows = conn.Exec(sql::kListColumns, {std::string(qualified_table)});
  if (!rows.ok()) return rows.status();
  std::vector<Column> out;
  out.reserve(rows->rows());
  for (int i = 0; i < rows->rows(); ++i) {
    out.push_back(Column{rows->Get(i, 0), rows->Get(i, 1), rows->GetBool(i, 2), rows->GetBool(i, 3),
                         rows->GetBool(i, 4)});
  }
  return out;
}

absl::StatusOr<ChunkState> ReadChunkState(pg::Queryable& conn, absl::string_view schema,
                                          absl::string_view name) {
  absl::StatusOr<pg::Result> rows =
      conn.Exec(sql::kChunkState, {std::string(schema), std::string(name)});
  if (!rows.ok()) return rows.status();
  ChunkState state;
  if (rows->rows() == 0) return state;
  state.exists = true;
  state.status = static_cast<int32_t>(rows->GetInt(0, 0));
  state.compressed_schema = rows->Get(0, 1);
  state.compressed_name = rows->Get(0, 2);
  state.hypertable_schema = rows->Get(0, 3);
  state.hypertable_name = rows->Get(0, 4);
  return state;
}

absl::StatusOr<std::string> SkipInvalidationStatement(pg::Queryable& conn) {
  absl::StatusOr<pg::Result> rows = conn.Exec(sql::kSkipInvalidationSupported);
  if (!rows.ok()) return rows.status();
  const std::string how = rows->Get(0, 0);
  if (how == "guc") return std::string("SET LOCAL timescaledb.skip_cagg_invalidation = on");
  if (how == "replica") return std::string("SET LOCAL session_replication_role = replica");
  return std::string();
}

absl::StatusOr<bool> IsSuperuser(pg::Queryable& conn) {
  absl::StatusOr<pg::Result> rows = conn.Exec(sql::kIsSuperuser);
  if (!rows.ok()) return rows.status();
  return rows->GetBool(0, 0);
}

absl::StatusOr<bool> RelationExists(pg::Queryable& conn, absl::string_view qualified_name) {
  absl::StatusOr<pg::Result> rows = conn.Exec(sql::kRelationExists, {std::string(qualified_name)});
  if (!rows.ok()) return rows.status();
  return rows->GetBool(0, 0);
}

}  // namespace backfill
