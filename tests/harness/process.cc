#include "tests/harness/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace backfill::testing {
namespace {

constexpr int kExecFailedExitCode = 127;

// Owns the storage behind a NULL-terminated char* array (argv / envp style).
class CStringArray {
 public:
  explicit CStringArray(const std::vector<std::string>& strings) : strings_(strings) {
    for (std::string& s : strings_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  char* const* get() { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

// The current environ with `extra_env` added/overriding, as "KEY=VALUE" strings.
std::vector<std::string> BuildEnvironment(const std::map<std::string, std::string>& extra_env) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const char* eq = std::strchr(*entry, '=');
    std::string key = eq == nullptr ? std::string(*entry) : std::string(*entry, eq - *entry);
    if (extra_env.count(key) == 0) env.emplace_back(*entry);
  }
  for (const auto& [key, value] : extra_env) env.push_back(absl::StrCat(key, "=", value));
  return env;
}

int ExitCodeFromStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Async-signal-safe write of a NUL-terminated string (best effort).
void WriteString(int fd, const char* s) {
  size_t left = std::strlen(s);
  while (left > 0) {
    ssize_t n = write(fd, s, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s += n;
    left -= static_cast<size_t>(n);
  }
}

// Runs in the forked child: only async-signal-safe calls from here on. Never returns.
[[noreturn]] void ExecChild(char* const* argv, char** envp, int stdin_fd, int stdout_fd,
                            int stderr_fd, const char* working_dir) {
  // Move the fds above 2 first so the dup2()s below cannot clobber one another.
  int in = fcntl(stdin_fd, F_DUPFD_CLOEXEC, 3);
  int out = fcntl(stdout_fd, F_DUPFD_CLOEXEC, 3);
  int err = fcntl(stderr_fd, F_DUPFD_CLOEXEC, 3);
  if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
    _exit(kExecFailedExitCode);
  }
  // Give the child default signal handling regardless of what the test process set up.
  sigset_t empty_set;
  sigemptyset(&empty_set);
  sigprocmask(SIG_SETMASK, &empty_set, nullptr);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) signal(sig, SIG_DFL);

  if (working_dir != nullptr && working_dir[0] != '\0' && chdir(working_dir) != 0) {
    int saved_errno = errno;
    WriteString(2, "harness: chdir ");
    WriteString(2, working_dir);
    WriteString(2, " failed: ");
    WriteString(2, strerrordesc_np(saved_errno));
    WriteString(2, "\n");
    _exit(kExecFailedExitCode);
  }
  environ = envp;
  execvp(argv[0], argv);
  int saved_errno = errno;
  WriteString(2, "harness: execvp ");
  WriteString(2, argv[0]);
  WriteString(2, " failed: ");
  WriteString(2, strerrordesc_np(saved_errno));
  WriteString(2, "\n");
  _exit(kExecFailedExitCode);
}

// Reads everything currently available from non-blocking `*fd` into `sink`. Closes the fd and
// sets it to -1 on EOF or error.
void ReadAvailable(int* fd, std::string* sink) {
  char buffer[65536];
  while (*fd >= 0) {
    ssize_t n = read(*fd, buffer, sizeof(buffer));
    if (n > 0) {
      sink->append(buffer, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else {
      close(*fd);
      *fd = -1;
    }
  }
}

void CloseIfOpen(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

pid_t WaitPidRetry(pid_t pid, int* status, int options) {
  pid_t r;
  do {
    r = waitpid(pid, status, options);
  } while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& extra_env, int timeout_seconds,
                         const std::string& working_dir) {
  ProcessResult result;
  if (argv.empty()) {
    result.exit_code = kExecFailedExitCode;
    result.err = "harness: RunProcess called with empty argv\n";
    return result;
  }
  CStringArray c_argv(argv);
  CStringArray c_env(BuildEnvironment(extra_env));

  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.exit_code = kExecFailedExitCode;
    result.err = std::string("harness: pipe2 failed: ") + std::strerror(errno) + "\n";
    return result;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.exit_code = kExecFailedExitCode;
    result.err = std::string("harness: pipe2 failed: ") + std::strerror(errno) + "\n";
    close(out_pipe[0]);
    close(out_pipe[1]);
    return result;
  }
  int dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);

  pid_t pid = fork();
  if (pid == 0) {
    ExecChild(c_argv.get(), const_cast<char**>(c_env.get()), dev_null, out_pipe[1], err_pipe[1],
              working_dir.c_str());
  }
  int fork_errno = errno;
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (dev_null >= 0) close(dev_null);
  int out_fd = out_pipe[0];
  int err_fd = err_pipe[0];
  if (pid < 0) {
    close(out_fd);
    close(err_fd);
    result.exit_code = kExecFailedExitCode;
    result.err = std::string("harness: fork failed: ") + std::strerror(fork_errno) + "\n";
    return result;
  }
  fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
  fcntl(err_fd, F_SETFL, fcntl(err_fd, F_GETFL) | O_NONBLOCK);

  using Clock = std::chrono::steady_clock;
  const bool has_deadline = timeout_seconds > 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(timeout_seconds);
  int status = 0;
  bool timed_out = false;
  while (true) {
    if (WaitPidRetry(pid, &status, WNOHANG) == pid) {
      // The child is gone: whatever it wrote is in the pipes already.
      ReadAvailable(&out_fd, &result.out);
      ReadAvailable(&err_fd, &result.err);
      break;
    }
    int poll_ms = (out_fd >= 0 || err_fd >= 0) ? 100 : 5;
    if (has_deadline) {
      auto remaining =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (remaining <= 0) {
        kill(pid, SIGKILL);
        WaitPidRetry(pid, &status, 0);
        ReadAvailable(&out_fd, &result.out);
        ReadAvailable(&err_fd, &result.err);
        timed_out = true;
        break;
      }
      if (remaining < poll_ms) poll_ms = static_cast<int>(remaining);
    }
    pollfd fds[2];
    nfds_t nfds = 0;
    if (out_fd >= 0) fds[nfds++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[nfds++] = {err_fd, POLLIN, 0};
    int ready = poll(fds, nfds, poll_ms);
    if (ready < 0 && errno != EINTR) {
      std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
    }
    if (ready > 0) {
      ReadAvailable(&out_fd, &result.out);
      ReadAvailable(&err_fd, &result.err);
    }
  }
  CloseIfOpen(&out_fd);
  CloseIfOpen(&err_fd);

  if (timed_out) {
    result.exit_code = 128 + SIGKILL;
    if (!result.err.empty() && result.err.back() != '\n') result.err += "\n";
    result.err += "[harness: timed out]";
  } else {
    result.exit_code = ExitCodeFromStatus(status);
  }
  return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv,
                                     const std::string& log_path,
                                     const std::map<std::string, std::string>& extra_env)
    : log_path_(log_path) {
  if (argv.empty()) {
    std::fprintf(stderr, "harness: BackgroundProcess called with empty argv\n");
    exit_code_ = kExecFailedExitCode;
    return;
  }
  CStringArray c_argv(argv);
  CStringArray c_env(BuildEnvironment(extra_env));
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    std::fprintf(stderr, "harness: cannot open log %s for %s: %s\n", log_path.c_str(),
                 argv[0].c_str(), std::strerror(errno));
    exit_code_ = kExecFailedExitCode;
    return;
  }
  int dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    ExecChild(c_argv.get(), const_cast<char**>(c_env.get()), dev_null, log_fd, log_fd, nullptr);
  }
  int fork_errno = errno;
  close(log_fd);
  if (dev_null >= 0) close(dev_null);
  if (pid < 0) {
    std::fprintf(stderr, "harness: fork failed for %s: %s\n", argv[0].c_str(),
                 std::strerror(fork_errno));
    exit_code_ = kExecFailedExitCode;
    return;
  }
  pid_ = pid;
}

BackgroundProcess::~BackgroundProcess() {
  if (pid_ > 0 && !exit_code_.has_value()) Kill();
}

BackgroundProcess::BackgroundProcess(BackgroundProcess&& other) noexcept
    : pid_(other.pid_), exit_code_(other.exit_code_), log_path_(std::move(other.log_path_)) {
  other.pid_ = -1;
  other.exit_code_ = kExecFailedExitCode;
}

BackgroundProcess& BackgroundProcess::operator=(BackgroundProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !exit_code_.has_value()) Kill();
    pid_ = other.pid_;
    exit_code_ = other.exit_code_;
    log_path_ = std::move(other.log_path_);
    other.pid_ = -1;
    other.exit_code_ = kExecFailedExitCode;
  }
  return *this;
}

void BackgroundProcess::RecordStatus(int status) { exit_code_ = ExitCodeFromStatus(status); }

bool BackgroundProcess::Signal(int sig) {
  if (pid_ <= 0 || exit_code_.has_value()) return false;
  return kill(pid_, sig) == 0;
}

int BackgroundProcess::Wait() {
  if (exit_code_.has_value()) return *exit_code_;
  int status = 0;
  if (WaitPidRetry(pid_, &status, 0) == pid_) {
    RecordStatus(status);
  } else {
    exit_code_ = -1;  // Not our child any more (someone else reaped it).
  }
  return *exit_code_;
}

std::optional<int> BackgroundProcess::WaitFor(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (!IsRunning()) return *exit_code_;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int BackgroundProcess::Kill() {
  if (exit_code_.has_value()) return *exit_code_;
  kill(pid_, SIGKILL);
  return Wait();
}

bool BackgroundProcess::IsRunning() {
  if (pid_ <= 0 || exit_code_.has_value()) return false;
  int status = 0;
  pid_t r = WaitPidRetry(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    RecordStatus(status);
  } else {
    exit_code_ = -1;
  }
  return false;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = -1;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request =
        absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[8192];
      for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) response.append(buffer, n);
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || response.find(" 200 ") > response.find('\n') ||
      body == std::string::npos) {
    return "";
  }
  return response.substr(body + 4);
}

}  // namespace backfill::testing
