// backfillctl (also installed as timescaledb-backfill): the user's command line.
#include <iostream>

#include "CLI/CLI.hpp"
#include "common/argv_scrub.h"
#include "common/auth.h"
#include "common/catalog.h"
#include "common/logging.h"
#include "common/rate_limiter.h"
#include "ctl/commands.h"
#include "proto/credentials.h"

namespace {

constexpr char kVersion[] = "0.1.0";

void AddDatabases(CLI::App* command, backfill::CtlOptions* options, bool source) {
  if (source) {
    command
        ->add_option("--source", *options->databases.mutable_source(),
                     "source database: libpq connection string or URI")
        ->required();
  }
  command
      ->add_option("--target", *options->databases.mutable_target(),
                   "target database: libpq connection string or URI")
      ->required();
}

void AddProgressFlags(CLI::App* command, backfill::CtlOptions* options, double* seconds) {
  command->add_flag("-q,--quiet", options->quiet, "print no progress, only the outcome");
  command
      ->add_option("--progress-interval", *seconds,
                   "seconds between progress lines when stderr is not a terminal (on a "
                   "terminal a progress bar is drawn instead)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
}

void AddThrottleFlags(CLI::App* command, backfill::CtlOptions* options) {
  command
      ->add_option_function<std::string>(
          "--max-rate",
          [options](const std::string& text) {
            options->max_rate = backfill::ParseRate(text);
            if (options->max_rate < 0) {
              throw CLI::ValidationError("--max-rate",
                                         "'" + text +
                                             "' is not a rate: give bytes per second, "
                                             "e.g. 1048576, 512k, 50M or 1G (0: none)");
            }
          },
          "bytes per second for all workers together, e.g. 50M (binary multiples); 0 lifts "
          "the limit")
      ->type_name("RATE");
  command
      ->add_option("--max-chunks-per-hypertable", options->max_chunks_per_hypertable,
                   "chunks of one hypertable copied at once; 0 lifts the cap")
      ->check(CLI::Range(0, 100000));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "timescaledb-backfill: copies historic hypertable data between TimescaleDB "
      "databases, chunk by chunk, over any number of workers"};
  app.set_version_flag("-V,--version", std::string("timescaledb-backfill ") + kVersion +
                                           " (TimescaleDB " + backfill::kSupportedTimescaleRange +
                                           ")");
  app.require_subcommand(1);
  app.fallthrough();
  backfill::CtlOptions options;
  int verbosity = 0;
  double progress_seconds = 10;
  app.add_option("--coordinator", options.coordinator,
                 "drive a running backfill-coordinator at HOST:PORT instead of an embedded one");
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file holding the bearer token of a running coordinator (default: "
                 "$BACKFILL_TOKEN)");
  app.add_option("--tls-ca", options.tls_ca,
                 "speak TLS to the coordinator, trusting certificates signed by this CA (PEM)");
  app.add_option("--tls-cert", options.tls_cert,
                 "client certificate (PEM), when the coordinator requires one");
  app.add_option("--tls-key", options.tls_key, "client private key (PEM)");
  app.add_flag("-v,--verbose", verbosity, "log what happens; repeat for more");
  app.add_flag("--check-args", options.check_args,
               "parse and check the arguments, print whether they are valid and exit: nothing is "
               "read, started or connected");

  CLI::App* stage = app.add_subcommand(
      "stage", "find the source chunks to copy and write one task per chunk into the target");
  AddDatabases(stage, &options, true);
  stage
      ->add_option("-u,--until", options.until,
                   "copy rows strictly before this time (or integer) value")
      ->required();
  stage->add_option("--from", options.from,
                    "copy only rows at or after this time (or integer) value: the window "
                    "[--from, --until)");
  stage->add_option("-f,--filter", options.filter,
                    "POSIX regular expression matched against schema-qualified hypertable and "
                    "continuous aggregate names");
  stage->add_flag("-U,--cascade-up", options.cascade_up,
                  "also stage the continuous aggregates built on what the filter matches");
  stage->add_flag("-D,--cascade-down", options.cascade_down,
                  "also stage what the continuous aggregates the filter matches are built on");
  stage->add_flag("--dry-run", options.dry_run,
                  "show what would be staged, with sizes and an estimated copy time; write "
                  "nothing");
  stage
      ->add_option("--throughput", options.throughput_mib,
                   "MiB/s for the --dry-run estimate (default: measured by reading a sample "
                   "chunk from the source)")
      ->check(CLI::PositiveNumber);
  stage->add_flag("--allow-active-jobs", options.allow_active_jobs,
                  "stage even though policies are scheduled on the staged hypertables or "
                  "their continuous aggregates in the target");

  stage->add_flag("--replace-target-rows", options.replace_target_rows,
                  "stage even though the target already holds rows below --until, not copied "
                  "by this tool, in chunks to copy: copy replaces them with the source's");

  CLI::App* copy = app.add_subcommand("copy", "copy the staged chunks");
  AddDatabases(copy, &options, true);
  copy->add_option("-p,--parallelism", options.parallelism,
                   "local workers in embedded mode (each holds two connections)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  AddProgressFlags(copy, &options, &progress_seconds);
  AddThrottleFlags(copy, &options);
  copy->add_flag("--allow-active-jobs", options.allow_active_jobs,
                 "copy even though policies are scheduled on the staged hypertables or their "
                 "continuous aggregates in the target");
  copy->add_flag("--repair", options.repair,
                 "first re-open the copied chunks the last verify found different (damaged in "
                 "the target, or changed in the source since), so they are copied again");
  copy->add_flag("--no-bulk-load", options.no_bulk_load,
                 "copy whole uncompressed chunks row by row into their indexes instead of loading "
                 "them as pg_restore does (TRUNCATE, COPY FREEZE, indexes built after): slower, "
                 "but no reader of the target waits for a chunk being copied");
  copy->add_flag("--json", options.json,
                 "print JSON lines on stdout: one per chunk, one per progress interval, and a "
                 "last one with the outcome");

  CLI::App* verify = app.add_subcommand(
      "verify",
      "compare the copied chunks' rows in source and target; non-zero exit on any "
      "difference");
  AddDatabases(verify, &options, true);
  verify
      ->add_option("-p,--parallelism", options.parallelism,
                   "local workers in embedded mode (each holds two connections)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  verify->add_flag("--row-hash", options.row_hash,
                   "also compare an order-independent hash of every row (catches a changed "
                   "value that keeps count, min, max and sum)");
  verify->add_flag("--json", options.json, "print the report as JSON");
  AddProgressFlags(verify, &options, &progress_seconds);

  CLI::App* refresh = app.add_subcommand(
      "refresh-caggs",
      "refresh the target's continuous aggregates from its watermark to the source's");
  AddDatabases(refresh, &options, true);
  refresh->add_option("-f,--filter", options.filter,
                      "POSIX regular expression matched against schema-qualified continuous "
                      "aggregate view names");
  refresh->add_flag("-U,--cascade-up", options.cascade_up,
                    "also refresh the continuous aggregates built on the matched ones");
  refresh->add_flag("-D,--cascade-down", options.cascade_down,
                    "also refresh the continuous aggregates the matched ones are built on");

  CLI::App* clean =
      app.add_subcommand("clean", "drop the __backfill administrative schema from the target");
  AddDatabases(clean, &options, false);

  CLI::App* status = app.add_subcommand(
      "status",
      "show the migration's progress from the target alone: chunks per hypertable, workers "
      "and their chunks, failing chunks, throughput and ETA");
  AddDatabases(status, &options, false);
  status->add_flag("--json", options.json, "print the status as one JSON object");

  CLI::App* throttle = app.add_subcommand(
      "throttle",
      "change (or show) the throttle of the migration in the target; a running copy follows "
      "within seconds");
  AddDatabases(throttle, &options, false);
  AddThrottleFlags(throttle, &options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? backfill::kExitOk : backfill::kExitUsage;
  }
  backfill::ScrubPasswordsFromArgv(argc, argv);
  // Its own messages say what the user needs; the embedded coordinator's and workers' log
  // lines (warnings included) only with -v.
  backfill::InitLogging(argv[0], verbosity, /*quiet_warnings=*/true);
  backfill::RouteGrpcLogsToGlog();
  // --check-args reads no file: the token's may exist only where the program is deployed.
  absl::StatusOr<std::string> token =
      options.check_args ? std::string() : backfill::LoadToken(token_file);
  if (!token.ok()) {
    std::cerr << "error: " << token.status().message() << std::endl;
    return backfill::kExitUsage;
  }
  options.token = *token;
  options.verbose = verbosity > 0;
  options.progress_interval = absl::Seconds(progress_seconds);
  for (CLI::App* command : {stage, copy, verify, refresh, clean, status, throttle}) {
    if (command->parsed()) options.command = command->get_name();
  }
  return backfill::RunCommand(options);
}
