#include "tests/integration/fixture.h"

#include <stdlib.h>

#include <atomic>
#include <fstream>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace backfill::testing {
namespace {

std::unique_ptr<PgCluster> owned_source;
std::unique_ptr<PgCluster> owned_target;

std::string Digest(PgCluster* cluster, const std::string& db, const std::string& query) {
  absl::StatusOr<std::string> value = cluster->QueryValue(
      db, absl::StrCat("SELECT count(*) || '|' || coalesce(md5(string_agg(r::text, ',' ORDER BY "
                       "r::text)), '') FROM (",
                       query, ") r"));
  EXPECT_TRUE(value.ok()) << value.status() << "\nquery: " << query;
  return value.value_or("<error>");
}

}  // namespace

PgCluster* BackfillTest::source_ = nullptr;
PgCluster* BackfillTest::target_ = nullptr;

std::string BinPath(const std::string& name) { return absl::StrCat(BACKFILL_BIN_DIR, "/", name); }

void BackfillTest::SetUpTestSuite() {
  PgClusterOptions options;
  options.name = "source";
  absl::StatusOr<std::unique_ptr<PgCluster>> source = PgCluster::Start(options);
  ASSERT_TRUE(source.ok()) << source.status();
  options.name = "target";
  absl::StatusOr<std::unique_ptr<PgCluster>> target = PgCluster::Start(options);
  ASSERT_TRUE(target.ok()) << target.status();
  owned_source = *std::move(source);
  owned_target = *std::move(target);
  source_ = owned_source.get();
  target_ = owned_target.get();
}

void BackfillTest::TearDownTestSuite() {
  source_ = nullptr;
  target_ = nullptr;
  owned_source.reset();
  owned_target.reset();
}

std::vector<std::string> StagedNames(const std::string& out) {
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (!absl::StartsWith(line, "staged ")) continue;
    size_t of = line.find(" chunks of ");
    if (of == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(of + 11);
    absl::ConsumePrefix(&rest, "continuous aggregate ");
    names.emplace_back(rest.substr(0, rest.find_first_of(" ;")));
  }
  return names;
}

void BackfillTest::TearDown() {
  if (IsSkipped() || target_ == nullptr || db_.empty()) return;
  absl::StatusOr<std::string> kept = target_->QueryValue(db_, R"(
      SELECT CASE WHEN to_regclass('__backfill.task_count') IS NULL THEN 'none' ELSE (
        SELECT coalesce(string_agg(format('%s.%s:%s', hypertable_schema, hypertable_name, c),
                                   ' ' ORDER BY hypertable_schema, hypertable_name), '')
        FROM (SELECT hypertable_schema, hypertable_name,
                     concat_ws('/', sum(total), sum(done), sum(rows_copied), sum(bytes_copied),
                               sum(verified), sum(mismatches)) AS c
              FROM __backfill.task_count WHERE total <> 0 OR done <> 0 OR rows_copied <> 0
                OR bytes_copied <> 0 OR verified <> 0 OR mismatches <> 0
              GROUP BY 1, 2) k) END)");
  if (!kept.ok() || *kept == "none") return;  // a dropped database, or no task table
  absl::StatusOr<std::string> counted = target_->QueryValue(db_, R"(
      SELECT coalesce(string_agg(format('%s.%s:%s', hypertable_schema, hypertable_name, c),
                                 ' ' ORDER BY hypertable_schema, hypertable_name), '')
      FROM (SELECT hypertable_schema, hypertable_name,
                   concat_ws('/', count(*), count(worked), coalesce(sum(rows_copied), 0),
                             coalesce(sum(bytes_copied), 0), count(verified),
                             count(*) FILTER (WHERE verify_matches = false)) AS c
            FROM __backfill.task GROUP BY 1, 2) t)");
  ASSERT_TRUE(counted.ok()) << counted.status();
  EXPECT_EQ(*kept, *counted) << "__backfill.task_count drifted from __backfill.task";
}

void BackfillTest::SetUp() {
  ASSERT_NE(source_, nullptr);
  BACKFILL_REQUIRE_TIMESCALEDB(source_);
  static std::atomic<int> counter{0};
  db_ = absl::StrCat("bf_test_", ++counter);
  ASSERT_TRUE(source_->CreateDatabase(db_).ok());
  ASSERT_TRUE(target_->CreateDatabase(db_).ok());
  static bool reported = false;
  if (!reported) {
    reported = true;
    std::cerr << "[ INFO     ] TimescaleDB "
              << source_
                     ->QueryValue(db_,
                                  "SELECT extversion FROM pg_extension WHERE extname = "
                                  "'timescaledb'")
                     .value_or("?")
              << " on the source, "
              << target_
                     ->QueryValue(db_,
                                  "SELECT extversion FROM pg_extension WHERE extname = "
                                  "'timescaledb'")
                     .value_or("?")
              << " on the target" << std::endl;
  }
}

ProcessResult BackfillTest::Ctl(const std::vector<std::string>& args,
                                const std::map<std::string, std::string>& env,
                                const std::string& program) {
  std::vector<std::string> argv = {BinPath(program)};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult result = RunProcess(argv, env, 300);
  return result;
}

ProcessResult BackfillTest::Stage(const std::string& until, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"stage",     "--source", SourceDsn(), "--target",
                                   TargetDsn(), "--until",  until};
  args.insert(args.end(), extra.begin(), extra.end());
  return Ctl(args);
}

ProcessResult BackfillTest::Copy() {
  return Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn(), "-p", "2"});
}

std::string ChunkStatesQuery(const std::string& hypertable, const std::string& before) {
  return absl::StrCat(
      "SELECT string_agg(to_char(range_start AT TIME ZONE 'UTC', 'DD') || ':' || "
      "_timescaledb_functions.chunk_status_text(format('%I.%I', chunk_schema, "
      "chunk_name)::regclass)::text, ',' ORDER BY range_start) FROM "
      "timescaledb_information.chunks WHERE hypertable_schema = 'public' AND hypertable_name = ",
      "'", hypertable, "'",
      before.empty() ? "" : absl::StrCat(" AND range_start < '", before, "'"));
}

void BackfillTest::ExecSource(const std::string& sql) {
  absl::Status s = source_->Exec(db_, sql);
  ASSERT_TRUE(s.ok()) << s << "\nsql: " << sql;
}

void BackfillTest::ExecTarget(const std::string& sql) {
  absl::Status s = target_->Exec(db_, sql);
  ASSERT_TRUE(s.ok()) << s << "\nsql: " << sql;
}

std::string BackfillTest::SourceValue(const std::string& sql) {
  absl::StatusOr<std::string> v = source_->QueryValue(db_, sql);
  EXPECT_TRUE(v.ok()) << v.status() << "\nsql: " << sql;
  return v.value_or("<error>");
}

std::string BackfillTest::TargetValue(const std::string& sql) {
  absl::StatusOr<std::string> v = target_->QueryValue(db_, sql);
  EXPECT_TRUE(v.ok()) << v.status() << "\nsql: " << sql;
  return v.value_or("<error>");
}

std::string BackfillTest::SourceDigest(const std::string& query) {
  return Digest(source_, db_, query);
}

std::string BackfillTest::TargetDigest(const std::string& query) {
  return Digest(target_, db_, query);
}

void BackfillTest::PrepareTargetByReadmeRecipe() {
  std::ifstream readme(absl::StrCat(BACKFILL_SOURCE_DIR, "/README.md"));
  ASSERT_TRUE(readme.good()) << "cannot read README.md";
  std::string line, script;
  bool marked = false, inside = false;
  while (std::getline(readme, line)) {
    if (line == "<!-- recipe: preparing-the-target -->") marked = true;
    if (!marked) continue;
    if (inside && line == "```") break;
    if (inside) absl::StrAppend(&script, line, "\n");
    if (line == "```sh") inside = true;
  }
  ASSERT_FALSE(script.empty()) << "README.md has no recipe block after its marker";
  char dir_template[] = "/tmp/backfill-recipe-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  ASSERT_NE(dir, nullptr);
  ProcessResult r = RunProcess({"bash", "-euo", "pipefail", "-c", script},
                               {{"SOURCE", SourceDsn()}, {"TARGET", TargetDsn()}}, 300, dir);
  (void)RunProcess({"rm", "-rf", dir});
  ASSERT_EQ(r.exit_code, 0) << "the README's recipe failed:\n" << r.out << r.err;
}

void BackfillTest::CreateMetrics(int days) {
  const std::string ddl =
      "CREATE TABLE public.metrics (time timestamptz NOT NULL, device int, "
      "value double precision, note text);"
      "SELECT create_hypertable('public.metrics', 'time', "
      "chunk_time_interval => interval '1 day');";
  ExecSource(ddl);
  ExecTarget(ddl);
  ExecSource(absl::StrCat(
      "INSERT INTO public.metrics SELECT t, i % 10, i * 0.5, 'row ' || i "
      "FROM generate_series(timestamptz '2024-01-01 00:00+00', "
      "timestamptz '2024-01-01 00:00+00' + interval '",
      days, " days' - interval '1 minute', interval '1 minute') WITH ORDINALITY AS g(t, i)"));
}

void MakeCertificates(const std::string& dir) {
  auto run = [](const std::vector<std::string>& argv) {
    ProcessResult r = RunProcess(argv, {}, 60);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  };
  { std::ofstream(dir + "/server.ext") << "subjectAltName=IP:127.0.0.1\n"; }
  for (const char* ca : {"ca", "other-ca"}) {
    run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
         absl::StrCat(dir, "/", ca, ".key"), "-out", absl::StrCat(dir, "/", ca, ".pem"), "-days",
         "2", "-subj", absl::StrCat("/CN=backfill-test-", ca)});
  }
  for (const char* who : {"server", "client"}) {
    run({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout",
         absl::StrCat(dir, "/", who, ".key"), "-out", absl::StrCat(dir, "/", who, ".csr"), "-subj",
         absl::StrCat("/CN=", who == std::string("server") ? "127.0.0.1" : "client")});
    std::vector<std::string> sign = {"openssl",
                                     "x509",
                                     "-req",
                                     "-in",
                                     absl::StrCat(dir, "/", who, ".csr"),
                                     "-CA",
                                     dir + "/ca.pem",
                                     "-CAkey",
                                     dir + "/ca.key",
                                     "-CAcreateserial",
                                     "-out",
                                     absl::StrCat(dir, "/", who, ".pem"),
                                     "-days",
                                     "2"};
    if (who == std::string("server")) {
      sign.push_back("-extfile");
      sign.push_back(dir + "/server.ext");
    }
    run(sign);
  }
}

}  // namespace backfill::testing
