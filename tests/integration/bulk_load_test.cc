// Whole plain chunks are loaded as pg_restore loads a table (worker/chunk_copier.cc,
// BulkLoad): TRUNCATE, the chunk's own indexes dropped, COPY FREEZE, the indexes built again.
// The chunk must come out as TimescaleDB made it, its rows frozen; where the load cannot be
// done, the chunk is copied row by row and the task says why.
#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/pg.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

constexpr char kReadings[] = R"(
  CREATE TABLE public.readings (
    time timestamptz NOT NULL,
    device int NOT NULL CONSTRAINT device_positive CHECK (device >= 0),
    value float8,
    note text,
    PRIMARY KEY (device, time)) WITH (fillfactor = 90);
  ALTER TABLE public.readings ALTER COLUMN value SET STATISTICS 500;
  SELECT create_hypertable('public.readings', 'time', chunk_time_interval => interval '1 day');
  ALTER TABLE public.readings SET (timescaledb.compress,
                                   timescaledb.compress_segmentby = 'device');
  CREATE INDEX readings_device_time_idx ON public.readings (device, time DESC);
  CREATE INDEX readings_note_idx ON public.readings (note) WHERE note IS NOT NULL;
  CREATE FUNCTION public.ignore_row() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN RETURN NULL; END$$;
  CREATE TRIGGER readings_seen AFTER INSERT ON public.readings
    FOR EACH ROW EXECUTE FUNCTION public.ignore_row();
  CREATE MATERIALIZED VIEW public.readings_hourly WITH (timescaledb.continuous) AS
    SELECT time_bucket('1 hour', time) AS bucket, device, avg(value) AS v, count(*) AS n
    FROM public.readings GROUP BY 1, 2 WITH NO DATA;)";

// The target chunks of public.readings, oldest first.
constexpr char kChunks[] =
    "SELECT string_agg(format('%I.%I', chunk_schema, chunk_name), ',' ORDER BY range_start) "
    "FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'";

// TimescaleDB's catalog rows of a chunk (every column, whatever the version has): the chunk,
// its constraints and its dimension slices.
std::string CatalogRowsQuery(const std::string& chunk) {
  const std::string name = absl::StrCat("'", chunk.substr(chunk.find('.') + 1), "'");
  return absl::StrCat(
      "SELECT to_jsonb(c)::text || (SELECT coalesce(jsonb_agg(to_jsonb(k) || jsonb_build_object("
      "'slice', to_jsonb(s)) ORDER BY k.constraint_name), '[]')::text "
      "FROM _timescaledb_catalog.chunk_constraint k "
      "LEFT JOIN _timescaledb_catalog.dimension_slice s ON s.id = k.dimension_slice_id "
      "WHERE k.chunk_id = c.id) FROM _timescaledb_catalog.chunk c WHERE c.table_name = ",
      name);
}

class BulkLoadTest : public BackfillTest {
 protected:
  // public.readings on the source (three days, a minute apart, five devices; its second
  // chunk clustered on an index), and the target restored from its schema and catalog, with
  // privileges granted there.
  void CreateReadings() {
    ExecSource(kReadings);
    ExecSource(
        "INSERT INTO public.readings SELECT t, i % 5, i * 0.5, CASE WHEN i % 3 = 0 THEN 'n' || i "
        "END FROM generate_series(timestamptz '2024-01-01 00:00+00', '2024-01-03 23:59+00', "
        "interval '1 minute') WITH ORDINALITY AS g(t, i)");
    ExecSource("CALL refresh_continuous_aggregate('public.readings_hourly', NULL, NULL)");
    const std::vector<std::string> chunks = absl::StrSplit(SourceValue(kChunks), ',');
    ASSERT_EQ(chunks.size(), 3u);
    const std::string second = chunks[1].substr(chunks[1].find('.') + 1);
    ExecSource(absl::StrCat("ALTER TABLE ", chunks[1], " CLUSTER ON \"", second,
                            "_readings_device_time_idx\""));
    PrepareTargetByReadmeRecipe();
    ExecTarget(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'readings_reader') "
        "THEN CREATE ROLE readings_reader; END IF; END$$;"
        "GRANT SELECT ON public.readings TO readings_reader;"
        "CREATE EXTENSION IF NOT EXISTS pg_visibility");
  }

  // The target's TimescaleDB minor version (2.x).
  int Minor() {
    const std::vector<std::string> parts = absl::StrSplit(
        TargetValue("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"), '.');
    int minor = 0;
    EXPECT_TRUE(parts.size() > 1 && absl::SimpleAtoi(parts[1], &minor));
    return minor;
  }
  // Whether a bulk load writes frozen rows: PostgreSQL's own COPY does (2.22), and from 2.28 a
  // superuser's, in restoring mode; TimescaleDB's own COPY into a chunk (2.23 on) does not.
  bool LoadsFrozen(bool superuser) {
    const int minor = Minor();
    return minor < 23 || (superuser && minor >= 28);
  }

  // The chunk's indexes as "name=oid", by name.
  std::string IndexOids(const std::string& chunk) {
    return TargetValue(absl::StrCat(
        "SELECT string_agg(c.relname || '=' || i.indexrelid, ',' ORDER BY c.relname) FROM "
        "pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '",
        chunk, "'::regclass"));
  }

  std::vector<std::string> TargetChunks() {
    return absl::StrSplit(TargetValue(kChunks), ',', absl::SkipEmpty());
  }

  // pg_dump --schema-only of one target table, without comments and blank lines.
  std::string Dump(const std::string& table) {
    ProcessResult r = RunProcess({"pg_dump", "-d", TargetDsn(), "--schema-only", "-t", table});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> kept;
    for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
      // pg_dump's \restrict key is new on every run.
      if (line.empty() || absl::StartsWith(line, "--") || absl::StartsWith(line, "\\restrict") ||
          absl::StartsWith(line, "\\unrestrict")) {
        continue;
      }
      kept.emplace_back(line);
    }
    return absl::StrJoin(kept, "\n");
  }

  // Pages of a target table and how many of them the visibility map says are all frozen.
  std::vector<std::string> FrozenPages(const std::string& table) {
    return absl::StrSplit(
        TargetValue(absl::StrCat("SELECT pg_relation_size('", table,
                                 "') / current_setting('block_size')::int || '/' || "
                                 "all_frozen FROM pg_visibility_map_summary('",
                                 table, "')")),
        '/');
  }

  std::string Messages() {
    return TargetValue(
        "SELECT string_agg(target_chunk_name || ': ' || coalesce(copy_message, ''), E'\\n' "
        "ORDER BY task_id) FROM __backfill.task");
  }

  ProcessResult CopyAll(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"copy",      "--source", SourceDsn(), "--target",
                                     TargetDsn(), "-p",       "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ctl(args);
  }

  void ExpectRowsEqual() {
    const std::string rows = "SELECT * FROM public.readings";
    EXPECT_EQ(TargetDigest(rows), SourceDigest(rows));
  }
};

// Names, numbers and ranges that differ between two chunks of one hypertable by nature.
std::string Normalized(const std::string& dump) {
  std::string out = std::regex_replace(dump, std::regex(R"(_hyper_\d+_\d+_chunk)"), "CHUNK");
  out = std::regex_replace(out, std::regex(R"(constraint_\d+)"), "constraint_N");
  out = std::regex_replace(out, std::regex(R"(\b(\d+_){1,2}readings_pkey)"), "N_readings_pkey");
  return std::regex_replace(out, std::regex(R"('\d{4}-\d\d-\d\d [0-9:+]+')"), "'TIME'");
}

TEST_F(BulkLoadTest, WholeChunksComeOutFrozenAndAsTimescaleDBMadeThem) {
  CreateReadings();
  // A partial index in a tablespace of its own (TimescaleDB puts the chunks' copies there).
  const std::string location = absl::StrCat(target_->dir(), "/tablespace_", db_);
  ASSERT_EQ(RunProcess({"mkdir", "-p", location}).exit_code, 0);
  (void)RunProcess({"chown", "postgres", location});  // the server's user, when we are root
  ExecTarget(absl::StrCat("CREATE TABLESPACE ", db_, "_space LOCATION '", location, "'"));
  ExecTarget(absl::StrCat("CREATE INDEX readings_big_idx ON public.readings (value) TABLESPACE ",
                          db_, "_space WHERE value > 1000"));
  // The continuous aggregate's materialization is copied too, for the refresh below.
  ProcessResult staged =
      Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-05"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  const std::vector<std::string> chunks = TargetChunks();
  ASSERT_EQ(chunks.size(), 3u);
  std::vector<std::string> dumps, catalog;
  for (const std::string& chunk : chunks) {
    dumps.push_back(Dump(chunk));
    catalog.push_back(TargetValue(CatalogRowsQuery(chunk)));
  }
  // The dump shows what is compared: privileges, options, statistics, indexes, constraints,
  // triggers, the clustering of the second chunk (the CHECK constraint is inherited).
  for (const char* part :
       {"GRANT SELECT", "fillfactor='90'", "SET STATISTICS 500", "readings_device_time_idx",
        "readings_note_idx", "readings_pkey", "readings_seen", "OWNER TO"}) {
    EXPECT_TRUE(absl::StrContains(dumps[0], part)) << part << " not in\n" << dumps[0];
  }
  EXPECT_TRUE(absl::StrContains(dumps[1], "CLUSTER ON")) << dumps[1];
  EXPECT_TRUE(absl::StrContains(dumps[0], absl::StrCat("SET default_tablespace = ", db_)))
      << dumps[0];
  const std::string oids = IndexOids(chunks[0]);
  const std::string invalidations =
      "SELECT count(*) FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log";
  const std::string logged = TargetValue(invalidations);

  // The database's sessions default to that tablespace: rebuilt indexes stay where they were.
  ExecTarget(absl::StrCat("ALTER DATABASE ", db_, " SET default_tablespace = ", db_, "_space"));
  ProcessResult copied = CopyAll();
  ExecTarget(absl::StrCat("ALTER DATABASE ", db_, " RESET default_tablespace"));
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  // Indexes were built again, the primary key's kept.
  const std::vector<std::string> before = absl::StrSplit(oids, ',');
  const std::vector<std::string> after = absl::StrSplit(IndexOids(chunks[0]), ',');
  ASSERT_EQ(before.size(), 5u) << oids;
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    if (absl::StrContains(before[i], "_pkey=")) {
      EXPECT_EQ(after[i], before[i]);
    } else {
      EXPECT_NE(after[i], before[i]);
    }
  }
  // Where the copy keeps its rows out of the invalidation log, TRUNCATE's entry is gone too.
  if (LoadsFrozen(true)) {
    EXPECT_EQ(TargetValue(invalidations), logged);
  }
  ExpectRowsEqual();
  EXPECT_FALSE(absl::StrContains(Messages(), "row by row")) << Messages();
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(Dump(chunks[i]), dumps[i]) << chunks[i];
    EXPECT_EQ(TargetValue(CatalogRowsQuery(chunks[i])), catalog[i]) << chunks[i];
    // Every page frozen: no anti-wraparound vacuum will rewrite them.
    const std::vector<std::string> frozen = FrozenPages(chunks[i]);
    EXPECT_NE(frozen[0], "0") << chunks[i];
    EXPECT_EQ(frozen[1], LoadsFrozen(true) ? frozen[0] : "0") << chunks[i] << "\n" << Messages();
  }
  // The same as a chunk the application's insert makes now, but for names and ranges.
  ExecTarget("INSERT INTO public.readings VALUES ('2030-01-01 00:00+00', 1, 1, 'new')");
  const std::string fresh = TargetChunks().back();
  EXPECT_EQ(Normalized(Dump(chunks[0])), Normalized(Dump(fresh)));
  ExecTarget("DELETE FROM public.readings WHERE time >= '2030-01-01'");

  ProcessResult verified = Ctl({"verify", "--source", SourceDsn(), "--target", TargetDsn()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  // TimescaleDB works on the loaded chunks: refresh, compression, retention.
  ProcessResult refreshed =
      Ctl({"refresh-caggs", "--source", SourceDsn(), "--target", TargetDsn()});
  EXPECT_EQ(refreshed.exit_code, 0) << refreshed.out << refreshed.err;
  const std::string hourly = "SELECT * FROM public.readings_hourly";
  EXPECT_EQ(TargetDigest(hourly), SourceDigest(hourly));
  ExecTarget("SELECT compress_chunk(c) FROM show_chunks('public.readings') c");
  ExpectRowsEqual();
  EXPECT_EQ(TargetValue("SELECT count(*) FROM public.readings WHERE device = 3 AND time < "
                        "'2024-01-02'"),
            SourceValue("SELECT count(*) FROM public.readings WHERE device = 3 AND time < "
                        "'2024-01-02'"));
  EXPECT_EQ(TargetValue("SELECT count(*) FROM drop_chunks('public.readings', older_than => "
                        "timestamptz '2024-01-02 00:00+00')"),
            "1");
}

TEST_F(BulkLoadTest, ChunksThatCannotBeLoadedInBulkAreCopiedRowByRowAndSaySo) {
  CreateReadings();
  // Another table's foreign key references the hypertable: TRUNCATE of its chunks is refused.
  ExecTarget(
      "CREATE TABLE public.alerts (device int, time timestamptz, "
      "FOREIGN KEY (device, time) REFERENCES public.readings (device, time))");
  ProcessResult staged = Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until",
                              "2024-01-05", "--filter", "^public\\.readings$"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = CopyAll();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  ExpectRowsEqual();
  const std::string messages = Messages();
  EXPECT_EQ(
      TargetValue("SELECT count(*) FROM __backfill.task WHERE copy_message LIKE '%(row by row: "
                  "foreign keys of other tables reference it)'"),
      "3")
      << messages;
  // Said once to whoever runs the copy.
  const std::string note = " copied row by row: foreign keys of other tables reference it\n";
  const size_t said = copied.err.find(note);
  ASSERT_NE(said, std::string::npos) << copied.err;
  EXPECT_EQ(copied.err.find(note, said + 1), std::string::npos) << copied.err;
  EXPECT_TRUE(absl::StrContains(copied.err, "note: public.readings: chunk _timescaledb_internal."))
      << copied.err;
  for (const std::string& chunk : TargetChunks()) {
    EXPECT_EQ(FrozenPages(chunk)[1], "0") << chunk;
  }
}

TEST_F(BulkLoadTest, ABusyChunkIsCopiedRowByRowAndACutOneIsNeverLocked) {
  CreateReadings();
  // --until cuts the last chunk: the application writes into it.
  ProcessResult staged = Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until",
                              "2024-01-03T12:00:00", "--filter", "^public\\.readings$"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  const std::vector<std::string> chunks = TargetChunks();
  ASSERT_EQ(chunks.size(), 3u);
  // A reader holds the first chunk, and the application an open insert into the cut chunk.
  absl::StatusOr<std::unique_ptr<pg::Connection>> reader =
      pg::Connection::Open(TargetDsn(), "bulk-load-test", "target");
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE((*reader)->ExecScript(absl::StrCat("BEGIN; SELECT count(*) FROM ", chunks[0])).ok());
  absl::StatusOr<std::unique_ptr<pg::Connection>> writer =
      pg::Connection::Open(TargetDsn(), "bulk-load-test", "target");
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)
                  ->ExecScript("BEGIN; INSERT INTO public.readings VALUES "
                               "('2024-01-03 18:00+00', 1, 1, 'dual write')")
                  .ok());
  // The copy finishes while both are still open.
  ProcessResult copied = CopyAll();
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  const std::string messages = Messages();
  EXPECT_TRUE(absl::StrContains(messages,
                                "(row by row: the target chunk was in use for more "
                                "than 2s)"))
      << messages;
  EXPECT_EQ(
      TargetValue("SELECT count(*) FROM __backfill.task WHERE copy_message LIKE '%row by row%'"),
      "1")
      << messages;
  ASSERT_TRUE((*reader)->ExecScript("COMMIT").ok());
  ASSERT_TRUE((*writer)->ExecScript("COMMIT").ok());
  const std::string below = "SELECT * FROM public.readings WHERE time < '2024-01-03 12:00+00'";
  EXPECT_EQ(TargetDigest(below), SourceDigest(below));
  EXPECT_EQ(TargetValue("SELECT note FROM public.readings WHERE time >= '2024-01-03 12:00+00'"),
            "dual write");
  // Only the idle whole chunk was loaded frozen.
  const std::vector<std::string> frozen = FrozenPages(chunks[1]);
  EXPECT_EQ(frozen[1], LoadsFrozen(true) ? frozen[0] : "0");
  EXPECT_EQ(FrozenPages(chunks[0])[1], "0");
  EXPECT_EQ(FrozenPages(chunks[2])[1], "0");
}

// The target user, without superuser rights (as on Timescale Cloud): `role` connects to it.
std::string AsRole(std::string dsn, const std::string& role) {
  const size_t at = dsn.find("postgres@");
  if (at != std::string::npos) dsn.replace(at, 9, role + "@");
  return dsn;
}

TEST_F(BulkLoadTest, WithoutSuperuserRightsTheOwnerWhoMayCreateIndexesLoadsInBulk) {
  CreateReadings();
  ExecTarget(absl::StrCat(
      "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'readings_owner') "
      "THEN CREATE ROLE readings_owner LOGIN; END IF; "
      "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'readings_writer') "
      "THEN CREATE ROLE readings_writer LOGIN; END IF; END$$;"
      "ALTER TABLE public.readings OWNER TO readings_owner;"
      // Someone who may write the rows but does not own the hypertable stages and copies;
      // the owner, a member of that role, copies later.
      "GRANT SELECT, INSERT, UPDATE, DELETE ON public.readings TO readings_writer;"
      "GRANT readings_writer TO readings_owner;"
      "GRANT CREATE ON DATABASE ",
      db_, " TO readings_writer;"));
  const std::string writer = AsRole(TargetDsn(), "readings_writer");
  ASSERT_NE(writer, TargetDsn());
  ProcessResult staged = Ctl({"stage", "--source", SourceDsn(), "--target", writer, "--until",
                              "2024-01-05", "--filter", "^public\\.readings$"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  const std::vector<std::string> chunks = TargetChunks();
  ASSERT_EQ(chunks.size(), 3u);
  auto copy_as = [&](const std::string& role) {
    ExecTarget("UPDATE __backfill.task SET worked = NULL, copied = false");
    ProcessResult copied =
        Ctl({"copy", "--source", SourceDsn(), "--target", AsRole(TargetDsn(), role), "-p", "2"});
    EXPECT_EQ(copied.exit_code, 0) << copied.out << copied.err;
    ExpectRowsEqual();
  };
  auto tasks_saying = [&](const std::string& why) {
    return TargetValue(
        absl::StrCat("SELECT count(*) FROM __backfill.task WHERE copy_message "
                     "LIKE '%(row by row: ",
                     why, ")'"));
  };
  copy_as("readings_writer");
  EXPECT_EQ(tasks_saying("the target user readings_writer does not own it"), "3") << Messages();
  // The owner, who may not build indexes in TimescaleDB's schema for chunks.
  copy_as("readings_owner");
  EXPECT_EQ(tasks_saying("the target user readings_owner may not create indexes in schema "
                         "_timescaledb_internal (GRANT CREATE ON SCHEMA _timescaledb_internal)"),
            "3")
      << Messages();

  // The owner, who may.
  ExecTarget("GRANT CREATE ON SCHEMA _timescaledb_internal TO readings_owner");
  const std::string files = absl::StrCat(
      "SELECT string_agg(pg_relation_filenode(c)::text, ',' ORDER BY c) FROM unnest('{",
      absl::StrJoin(chunks, ","), "}'::regclass[]) c");
  const std::string before = TargetValue(files);
  copy_as("readings_owner");
  EXPECT_FALSE(absl::StrContains(Messages(), "row by row")) << Messages();
  // Loaded in bulk: every chunk has a new file (TRUNCATE), none kept its old one.
  const std::vector<std::string> old_files = absl::StrSplit(before, ',');
  for (absl::string_view file : absl::StrSplit(TargetValue(files), ',')) {
    EXPECT_EQ(std::count(old_files.begin(), old_files.end(), std::string(file)), 0) << file;
  }
  // The rows are written frozen where PostgreSQL's own COPY takes them (2.22: TimescaleDB
  // takes a COPY into a chunk through its own code from 2.23 on, and only a superuser may
  // put it in restoring mode).
  for (const std::string& chunk : chunks) {
    const std::vector<std::string> frozen = FrozenPages(chunk);
    EXPECT_EQ(frozen[1], LoadsFrozen(false) ? frozen[0] : "0") << chunk;
  }
}

TEST_F(BulkLoadTest, NoBulkLoadCopiesEveryChunkRowByRow) {
  CreateReadings();
  ProcessResult staged = Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until",
                              "2024-01-05", "--filter", "^public\\.readings$"});
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  ProcessResult copied = CopyAll({"--no-bulk-load"});
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err;
  ExpectRowsEqual();
  for (const std::string& chunk : TargetChunks()) {
    EXPECT_EQ(FrozenPages(chunk)[1], "0") << chunk;
  }
}

}  // namespace
}  // namespace backfill::testing
