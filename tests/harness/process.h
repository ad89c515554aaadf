// Process helpers for integration tests: run a command to completion with captured output, run a
// long-lived command in the background with its output sent to a log file, and a few small
// filesystem/network utilities.
//
// Exit codes everywhere follow the shell convention: the exit status when the child exited
// normally, or 128 + signal number when it was killed by a signal. A command that cannot be
// executed at all (execvp failure) exits with 127 and a message on its stderr.

#ifndef BACKFILL_TESTS_HARNESS_PROCESS_H_
#define BACKFILL_TESTS_HARNESS_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace backfill::testing {

struct ProcessResult {
  int exit_code = -1;  // Exit status, or 128+signal if killed by a signal.
  std::string out;     // Everything the child wrote to stdout.
  std::string err;     // Everything the child wrote to stderr.
};

// Runs `argv` (argv[0] looked up in PATH, via execvp) to completion and returns its exit code and
// captured stdout/stderr (read concurrently, so neither pipe can fill up and block the child).
// stdin is /dev/null. The environment is the current environ with `extra_env` entries added or
// overriding. If the child is still running after `timeout_seconds` (<= 0: no limit), it is
// killed with SIGKILL, exit_code is 128+SIGKILL and "[harness: timed out]" is appended to err.
// If fork() fails, exit_code is 127 and err says why. If `working_dir` is
// non-empty the child chdirs there before exec (failure to do so exits 127).
// Output written by grandchildren after the child itself has exited is not waited for.
// Thread-safe; may be called from several threads at once.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& extra_env = {},
                         int timeout_seconds = 300, const std::string& working_dir = "");

// A child process running in the background with stdout and stderr appended to a log file. The
// child stays in the parent's process group, so Signal() targets exactly that process (not any
// grandchildren). The destructor SIGKILLs and reaps the child if it is still running.
// Not thread-safe: use one object from one thread at a time. Movable, not copyable.
class BackgroundProcess {
 public:
  // Starts `argv` (execvp) with stdin from /dev/null, stdout+stderr appended to `log_path`
  // (created if missing) and the environment built as for RunProcess(). If the log file cannot
  // be opened or fork() fails, no process is started: a message goes to our stderr, pid() is -1,
  // IsRunning() is false and Wait() returns 127. An execvp failure yields exit code 127 with the
  // reason written to the log.
  BackgroundProcess(const std::vector<std::string>& argv, const std::string& log_path,
                    const std::map<std::string, std::string>& extra_env = {});
  ~BackgroundProcess();

  BackgroundProcess(BackgroundProcess&& other) noexcept;
  BackgroundProcess& operator=(BackgroundProcess&& other) noexcept;
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  // The child's pid (still valid after it has been reaped), or -1 if it never started.
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // Sends `sig` to the child. Returns false (and sends nothing) if the child has already been
  // reaped or never started, or if kill() fails.
  bool Signal(int sig);

  // Blocks until the child exits and returns its exit code (128+sig when signalled). Idempotent:
  // later calls return the same code.
  int Wait();

  // Waits at most `timeout_ms` for the child to exit. Returns its exit code, or nullopt if it is
  // still running at the deadline.
  std::optional<int> WaitFor(int timeout_ms);

  // SIGKILLs the child (if still running) and reaps it; returns the exit code.
  int Kill();

  // True if the child has been started and has not exited yet. Reaps it if it has exited.
  bool IsRunning();

 private:
  // Records `status` from waitpid() as the exit code.
  void RecordStatus(int status);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;  // Set once the child has been reaped (or never started).
  std::string log_path_;
};

// Returns the whole content of `path`, or "" if it cannot be read.
std::string ReadFile(const std::string& path);

// Returns a TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read it back, close
// the socket), or -1 on failure. Another process may grab it before the caller binds it.
int FreeLoopbackPort();

// GET http://127.0.0.1:<port><path> (HTTP/1.0); the body of a 200 response, else "".
std::string HttpGet(int port, const std::string& path);

}  // namespace backfill::testing

#endif  // BACKFILL_TESTS_HARNESS_PROCESS_H_
