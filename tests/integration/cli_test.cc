// Bad input gets one clear line and a non-zero exit, never a stack trace.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

// The first line of stderr; the rest may only be a hint.
std::string FirstErrorLine(const ProcessResult& r) {
  std::vector<std::string> lines = absl::StrSplit(r.err, '\n', absl::SkipEmpty());
  return lines.empty() ? "" : lines.front();
}

void ExpectNoCrash(const ProcessResult& r) {
  EXPECT_LT(r.exit_code, 128) << "killed by a signal: " << r.err;
  EXPECT_FALSE(absl::StrContains(r.err, "terminate called")) << r.err;
  EXPECT_FALSE(absl::StrContains(r.err, "Check failed")) << r.err;
}

// No TimescaleDB needed: nothing listens on port 1.
TEST(CliTest, UnreachableDatabaseIsOneClearLineWithoutThePassword) {
  ProcessResult r = RunProcess({BinPath("timescaledb-backfill"), "stage", "--source",
                                "host=127.0.0.1 port=1 user=u password=sekrit dbname=d", "--target",
                                "postgresql://u:sekrit@127.0.0.1:1/d", "--until", "2024-01-01"});
  ExpectNoCrash(r);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(
      absl::StartsWith(FirstErrorLine(r),
                       "error: cannot connect to source database (host=127.0.0.1 port=1 dbname=d "
                       "user=u): connection to server at \"127.0.0.1\", port 1 failed"))
      << r.err;
  EXPECT_FALSE(absl::StrContains(r.err + r.out, "sekrit"));
}

TEST(CliTest, MissingRequiredFlagIsAUsageError) {
  ProcessResult r =
      RunProcess({BinPath("timescaledb-backfill"), "stage", "--source", "x", "--target", "y"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "--until is required")) << r.err;
  r = RunProcess({BinPath("backfillctl"), "frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

// A source-side worker's mistakes: each one clear line, before anything listens.
TEST(CliTest, ASourceSideWorkerNeedsItsOwnSourceAnAddressAndOffLoopbackAToken) {
  const std::vector<std::string> base = {BinPath("backfill-worker"), "--coordinator", "127.0.0.1:1",
                                         "--source-side"};
  const auto run = [&base](std::vector<std::string> more) {
    std::vector<std::string> args = base;
    args.insert(args.end(), more.begin(), more.end());
    return RunProcess(args, {{"BACKFILL_TOKEN", ""}});
  };
  const std::string source = "host=127.0.0.1 port=1 dbname=d";
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{"--source", source}, "--source-side needs --listen"},
           {{"--listen", "127.0.0.1:7434"}, "--source-side needs --source"},
           {{"--listen", "0.0.0.0:7434", "--source", source}, "give --advertise HOST:PORT"},
           {{"--listen", "0.0.0.0:7434", "--advertise", "relay:7434", "--source", source},
            "without a bearer token"},
       }) {
    ProcessResult r = run(c.args);
    ExpectNoCrash(r);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(absl::StrContains(FirstErrorLine(r), c.says)) << r.err;
  }
  // All given, but its source does not answer: it says so and never registers.
  ProcessResult r = run(
      {"--listen", "127.0.0.1:0", "--source", "host=127.0.0.1 port=1 dbname=d password=sekrit"});
  ExpectNoCrash(r);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(absl::StrContains(FirstErrorLine(r), "cannot connect to source database")) << r.err;
  EXPECT_FALSE(absl::StrContains(r.err + r.out, "sekrit"));
}

TEST(CliTest, VersionNamesTheSupportedTimescaleRange) {
  ProcessResult r = RunProcess({BinPath("backfillctl"), "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "(TimescaleDB 2.22 to 2.28)")) << r.out;
}

TEST(CliTest, BackfillctlAndTimescaledbBackfillBehaveTheSame) {
  std::vector<std::string> args = {"clean", "--target", "host=127.0.0.1 port=1 dbname=d"};
  std::vector<std::string> a = {BinPath("backfillctl")};
  std::vector<std::string> b = {BinPath("timescaledb-backfill")};
  a.insert(a.end(), args.begin(), args.end());
  b.insert(b.end(), args.begin(), args.end());
  ProcessResult ra = RunProcess(a);
  ProcessResult rb = RunProcess(b);
  EXPECT_EQ(ra.exit_code, 1);
  EXPECT_EQ(ra.exit_code, rb.exit_code);
  EXPECT_EQ(ra.out, rb.out);
  EXPECT_EQ(ra.err, rb.err);
}

class CliDatabaseTest : public BackfillTest {};

TEST_F(CliDatabaseTest, UnparseableUntilNamesTheHypertableColumnAndType) {
  CreateMetrics(1);
  ProcessResult r =
      Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-13-45"});
  ExpectNoCrash(r);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: cannot stage public.metrics: --until '2024-13-45' is not a valid timestamp "
            "with time zone for column \"time\"\n");
  EXPECT_EQ(TargetValue("SELECT count(*) FROM pg_namespace WHERE nspname = '__backfill'"), "0");
}

TEST_F(CliDatabaseTest, SourceWithoutTimescaleIsRefused) {
  ASSERT_TRUE(source_->CreateDatabaseWithoutTimescale(db_ + "_plain").ok());
  ProcessResult r = Ctl({"stage", "--source", source_->Dsn(db_ + "_plain"), "--target", TargetDsn(),
                         "--until", "2024-01-01"});
  ExpectNoCrash(r);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(FirstErrorLine(r),
            "error: the source database does not have the timescaledb extension");
}

TEST_F(CliDatabaseTest, CopyBeforeStageSaysToStageFirst) {
  CreateMetrics(1);
  ProcessResult r = Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn()});
  ExpectNoCrash(r);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: nothing to copy: the target has no __backfill schema\n"
            "hint: run stage first to choose what to copy\n");
}

TEST_F(CliDatabaseTest, VerifyBeforeCopySaysWhatToRun) {
  ProcessResult r = Ctl({"verify", "--source", SourceDsn(), "--target", TargetDsn()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(FirstErrorLine(r), "error: nothing to verify: the target has no __backfill schema");
}

TEST_F(CliDatabaseTest, FilterMatchingNothingAndInvalidRegexAreErrors) {
  CreateMetrics(1);
  ProcessResult r = Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until",
                         "2024-01-02", "--filter", "^nope\\."});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: no hypertable or continuous aggregate matches --filter '^nope\\.'\n");
  r = Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-02",
           "--filter", "(unclosed"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(
      absl::StartsWith(r.err, "error: --filter '(unclosed' is not a valid regular expression"))
      << r.err;
}

TEST_F(CliDatabaseTest, HypertableMissingInTheTargetIsReportedBeforeWritingAnything) {
  CreateMetrics(1);
  ExecSource(
      "CREATE TABLE public.other (ts timestamptz NOT NULL, v int);"
      "SELECT create_hypertable('public.other', 'ts');"
      "INSERT INTO public.other VALUES ('2024-01-01 10:00+00', 1)");  // a chunk to stage
  ExecTarget("ALTER TABLE public.metrics DROP COLUMN note");
  ProcessResult r =
      Ctl({"stage", "--source", SourceDsn(), "--target", TargetDsn(), "--until", "2024-01-02"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: cannot stage: 2 problems\n"
            "  public.metrics: column \"note\" (text) is missing in the target\n"
            "  public.other is not a hypertable in the target\n"
            "hint: restore the source's schema and TimescaleDB catalog into the target first: see "
            "\"Preparing the target\" in the README\n");
  EXPECT_EQ(TargetValue("SELECT count(*) FROM pg_namespace WHERE nspname = '__backfill'"), "0");
}

}  // namespace
}  // namespace backfill::testing
