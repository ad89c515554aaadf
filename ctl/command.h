// What backfillctl's commands share. Each command has its own file (command_<name>.cc);
// RunCommand (commands.cc) checks the arguments, wires the signals and the embedded runtime,
// and calls one of them.
#pragma once

#include "absl/status/status.h"
#include "ctl/commands.h"
#include "ctl/control_client.h"
#include "ctl/progress.h"

namespace backfill {

class Embedded;

// Prints "error: <message>" on stderr; returns kExitError.
int Fail(const absl::Status& status);

// Progress goes to stderr (a bar on a terminal, else a line per interval), JSON to stdout.
ProgressStyle StyleFor(const CtlOptions& options, bool json_progress);

// The counts of a copy or verify progress message, for the display.
ProgressCounts CountsOf(const v1::CopyProgress& progress);

int RunStage(ControlClient& client, const CtlOptions& options);
// `embedded`: the in-process workers to stop when the copy ends; null in cluster mode.
int RunCopy(ControlClient& client, const CtlOptions& options, Embedded* embedded);
int RunVerify(ControlClient& client, const CtlOptions& options);
int RunClean(ControlClient& client, const CtlOptions& options);
int RunRefreshCaggs(ControlClient& client, const CtlOptions& options);
// status and throttle work on the target alone.
int RunStatus(const CtlOptions& options);
int RunThrottle(const CtlOptions& options);

}  // namespace backfill
