// Self-test of the test harness: subprocess helpers and throwaway PostgreSQL clusters.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/harness/pg_cluster.h"
#include "tests/harness/process.h"

namespace backfill::testing {
namespace {

PgClusterOptions Options(bool preload_timescaledb, const std::string& name) {
  PgClusterOptions options;
  options.preload_timescaledb = preload_timescaledb;
  options.name = name;
  return options;
}

TEST(RunProcessTest, CapturesStdoutStderrAndExitCode) {
  ProcessResult result = RunProcess({"sh", "-c", "echo to-out; echo to-err >&2; exit 3"});
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.out, "to-out\n");
  EXPECT_EQ(result.err, "to-err\n");
}

TEST(RunProcessTest, LargeOutputOnBothStreamsDoesNotBlock) {
  ProcessResult result = RunProcess(
      {"sh", "-c", "head -c 1000000 /dev/zero; head -c 700000 /dev/zero >&2; echo done >&2"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out.size(), 1000000u);
  EXPECT_EQ(result.err.size(), 700005u);
}

TEST(RunProcessTest, ExtraEnvOverridesEnvironment) {
  ProcessResult result =
      RunProcess({"sh", "-c", "printf '%s/%s' \"$HARNESS_X\" \"$PATH\""}, {{"HARNESS_X", "hello"}});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out.substr(0, 6), "hello/");
  EXPECT_GT(result.out.size(), 6u);  // PATH inherited.
}

TEST(RunProcessTest, TimeoutKillsChild) {
  auto start = std::chrono::steady_clock::now();
  ProcessResult result = RunProcess({"sh", "-c", "echo started; exec sleep 30"}, {}, 1);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.exit_code, 128 + SIGKILL);
  EXPECT_EQ(result.out, "started\n");
  EXPECT_NE(result.err.find("[harness: timed out]"), std::string::npos) << result.err;
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST(RunProcessTest, SignalledChildReports128PlusSignal) {
  ProcessResult result = RunProcess({"sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(result.exit_code, 128 + SIGTERM);
}

TEST(RunProcessTest, MissingBinaryExits127) {
  ProcessResult result = RunProcess({"/nonexistent/definitely-not-here"});
  EXPECT_EQ(result.exit_code, 127);
  EXPECT_NE(result.err.find("execvp"), std::string::npos) << result.err;
}

TEST(RunProcessTest, WorkingDir) {
  ProcessResult result = RunProcess({"pwd"}, {}, 10, "/tmp");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "/tmp\n");
}

TEST(BackgroundProcessTest, SignalWaitAndLog) {
  std::string log = ::testing::TempDir() + "harness_bg_" + std::to_string(getpid()) + ".log";
  std::filesystem::remove(log);
  BackgroundProcess process({"sh", "-c", "echo hello; echo oops >&2; exec sleep 30"}, log,
                            {{"HARNESS_Y", "1"}});
  ASSERT_GT(process.pid(), 0);
  EXPECT_TRUE(process.IsRunning());
  EXPECT_FALSE(process.WaitFor(100).has_value());
  // Wait for the output before signalling.
  for (int i = 0; i < 200 && ReadFile(log) != "hello\noops\n"; ++i) usleep(10000);
  EXPECT_TRUE(process.Signal(SIGTERM));
  EXPECT_EQ(process.Wait(), 128 + SIGTERM);
  EXPECT_FALSE(process.IsRunning());
  EXPECT_EQ(process.Wait(), 128 + SIGTERM);
  EXPECT_FALSE(process.Signal(SIGTERM));
  EXPECT_EQ(ReadFile(log), "hello\noops\n");
  std::filesystem::remove(log);
}

TEST(BackgroundProcessTest, ExitCodeKillMoveAndDestructor) {
  std::string log = ::testing::TempDir() + "harness_bg2_" + std::to_string(getpid()) + ".log";
  BackgroundProcess quick({"sh", "-c", "exit 7"}, log);
  EXPECT_EQ(quick.Wait(), 7);

  BackgroundProcess sleeper({"sleep", "30"}, log);
  pid_t pid = sleeper.pid();
  BackgroundProcess moved(std::move(sleeper));
  EXPECT_EQ(moved.pid(), pid);
  EXPECT_TRUE(moved.IsRunning());
  EXPECT_EQ(moved.Kill(), 128 + SIGKILL);

  pid_t orphan_pid;
  {
    BackgroundProcess scoped({"sleep", "30"}, log);
    orphan_pid = scoped.pid();
    ASSERT_EQ(kill(orphan_pid, 0), 0);
  }
  EXPECT_NE(kill(orphan_pid, 0), 0);  // Killed and reaped by the destructor.

  BackgroundProcess missing({"/nonexistent/definitely-not-here"}, log);
  EXPECT_EQ(missing.Wait(), 127);
  std::filesystem::remove(log);
}

TEST(FreeLoopbackPortTest, ReturnsBindablePort) {
  int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
}

// --- backfill_delay_line -------------------------------------------------------------------

// Writes all of `data` to `fd`; false on error.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Everything `fd` yields until EOF (or an error).
std::string ReadToEof(int fd) {
  std::string out;
  char buffer[65536];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

// A TCP connection to 127.0.0.1:`port` with TCP_NODELAY, or -1.
int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Echoes every connection on 127.0.0.1:port() back until EOF, then half-closes it; a thread per
// connection.
class EchoServer {
 public:
  EchoServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        listen(listen_fd_, 64) == 0 &&
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
      port_ = ntohs(addr.sin_port);
    }
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~EchoServer() {
    shutdown(listen_fd_, SHUT_RDWR);  // Wakes accept().
    accept_thread_.join();
    close(listen_fd_);
    for (std::thread& connection : connections_) connection.join();
  }

  int port() const { return port_; }

 private:
  void AcceptLoop() {
    while (true) {
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      connections_.emplace_back([fd] {
        char buffer[65536];
        ssize_t n;
        while ((n = read(fd, buffer, sizeof(buffer))) > 0) {
          if (!WriteAll(fd, buffer, static_cast<size_t>(n))) break;
        }
        shutdown(fd, SHUT_WR);
        close(fd);
      });
    }
  }

  int listen_fd_ = -1;
  int port_ = -1;
  std::thread accept_thread_;
  std::vector<std::thread> connections_;  // Touched by accept_thread_ only, until it ends.
};

// backfill_delay_line on a free 127.0.0.1 port, forwarding to 127.0.0.1:`to_port`.
class DelayLine {
 public:
  DelayLine(int to_port, const std::vector<std::string>& flags)
      : port_(FreeLoopbackPort()),
        log_(::testing::TempDir() + "harness_delay_line_" + std::to_string(getpid()) + "_" +
             std::to_string(port_) + ".log") {
    std::filesystem::remove(log_);
    std::vector<std::string> argv = {BACKFILL_DELAY_LINE_BIN, "--listen",
                                     "127.0.0.1:" + std::to_string(port_), "--to",
                                     "127.0.0.1:" + std::to_string(to_port)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    process_ = std::make_unique<BackgroundProcess>(argv, log_);
  }
  ~DelayLine() {
    process_.reset();
    std::filesystem::remove(log_);
  }

  // Polls the log for the "listening" line for up to 10 s; whether it came.
  bool WaitListening() {
    const std::string line = "delay line listening on 127.0.0.1:" + std::to_string(port_) + "\n";
    for (int i = 0; i < 1000; ++i) {
      if (ReadFile(log_).find(line) != std::string::npos) return true;
      if (!process_->IsRunning()) return false;
      usleep(10000);
    }
    return false;
  }

  int port() const { return port_; }
  BackgroundProcess& process() { return *process_; }
  std::string Log() const { return ReadFile(log_); }

 private:
  int port_;
  std::string log_;
  std::unique_ptr<BackgroundProcess> process_;
};

std::string RandomBytes(size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

// Sends `data` through a new connection to `port` (then half-closes), reads the echo to EOF and
// returns it; `elapsed` gets the time from connect to EOF.
std::string EchoThrough(int port, const std::string& data, std::chrono::duration<double>* elapsed) {
  const auto start = std::chrono::steady_clock::now();
  const int fd = ConnectLoopback(port);
  if (fd < 0) return "[connect failed]";
  std::thread sender([&] {
    WriteAll(fd, data.data(), data.size());
    shutdown(fd, SHUT_WR);
  });
  std::string echoed = ReadToEof(fd);
  sender.join();
  close(fd);
  if (elapsed != nullptr) *elapsed = std::chrono::steady_clock::now() - start;
  return echoed;
}

TEST(DelayLineTest, DelaysEachRoundTripAndPassesBytesIntact) {
  EchoServer echo;
  ASSERT_GT(echo.port(), 0);
  DelayLine line(echo.port(), {"--delay-ms", "50"});
  ASSERT_TRUE(line.WaitListening()) << line.Log();

  const int fd = ConnectLoopback(line.port());
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(WriteAll(fd, "x", 1));
    char c = 0;
    ASSERT_EQ(read(fd, &c, 1), 1);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(c, 'x');
    EXPECT_GE(elapsed.count(), 0.100) << "round trip " << i;
    EXPECT_LT(elapsed.count(), 2.0) << "round trip " << i;
  }
  // A half-close passes through both ways: the echo server sees EOF and closes, so do we.
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(ReadToEof(fd), "");
  close(fd);

  const std::string data = RandomBytes(4 << 20, 1);
  std::chrono::duration<double> elapsed{};
  const std::string echoed = EchoThrough(line.port(), data, &elapsed);
  EXPECT_EQ(echoed.size(), data.size());
  EXPECT_TRUE(echoed == data) << "4 MiB came back altered";
  EXPECT_GE(elapsed.count(), 0.100);

  EXPECT_TRUE(line.process().Signal(SIGTERM));
  EXPECT_EQ(line.process().Wait(), 0) << line.Log();
}

TEST(DelayLineTest, RateLimitPacesEachDirection) {
  EchoServer echo;
  ASSERT_GT(echo.port(), 0);
  DelayLine line(echo.port(), {"--delay-ms", "0", "--rate-mbit", "80"});
  ASSERT_TRUE(line.WaitListening()) << line.Log();

  // 4 MiB at 80 Mbit/s is 0.42 s each way (pipelined, so about that in all).
  const std::string data = RandomBytes(4 << 20, 2);
  std::chrono::duration<double> elapsed{};
  const std::string echoed = EchoThrough(line.port(), data, &elapsed);
  EXPECT_EQ(echoed.size(), data.size());
  EXPECT_TRUE(echoed == data) << "4 MiB came back altered";
  EXPECT_GE(elapsed.count(), 0.35);
  EXPECT_LT(elapsed.count(), 30.0);
}

TEST(DelayLineTest, ConcurrentConnections) {
  EchoServer echo;
  ASSERT_GT(echo.port(), 0);
  DelayLine line(echo.port(), {"--delay-ms", "20"});
  ASSERT_TRUE(line.WaitListening()) << line.Log();

  constexpr int kConnections = 16;
  std::vector<std::string> sent(kConnections);
  std::vector<std::string> echoed(kConnections);
  std::vector<std::thread> clients;
  for (int i = 0; i < kConnections; ++i) {
    sent[i] = RandomBytes(256 << 10, 100 + i);
    clients.emplace_back([&, i] { echoed[i] = EchoThrough(line.port(), sent[i], nullptr); });
  }
  for (std::thread& client : clients) client.join();
  for (int i = 0; i < kConnections; ++i) {
    EXPECT_TRUE(echoed[i] == sent[i]) << "connection " << i << ": " << echoed[i].size() << " of "
                                      << sent[i].size() << " bytes, or altered";
  }
}

TEST(DelayLineTest, UnreachableUpstreamClosesClient) {
  const int closed_port = FreeLoopbackPort();  // Nothing listens there.
  DelayLine line(closed_port, {"--delay-ms", "10"});
  ASSERT_TRUE(line.WaitListening()) << line.Log();
  const int fd = ConnectLoopback(line.port());
  ASSERT_GE(fd, 0);
  char c;
  EXPECT_LE(read(fd, &c, 1), 0);  // Reset (or EOF), not a hang.
  close(fd);
  EXPECT_TRUE(line.process().IsRunning());
  EXPECT_NE(line.Log().find("cannot connect to 127.0.0.1:" + std::to_string(closed_port)),
            std::string::npos)
      << line.Log();
}

TEST(DelayLineTest, RefusesBadFlags) {
  ProcessResult result = RunProcess({BACKFILL_DELAY_LINE_BIN, "--listen", "127.0.0.1:1"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("usage: backfill_delay_line"), std::string::npos) << result.err;
  result = RunProcess(
      {BACKFILL_DELAY_LINE_BIN, "--listen", "127.0.0.1", "--to", "127.0.0.1:2", "--delay-ms", "5"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("bad value for --listen"), std::string::npos) << result.err;
}

TEST(PgClusterTest, StartQueryRestart) {
  absl::StatusOr<std::unique_ptr<PgCluster>> started = PgCluster::Start(Options(true, "selftest"));
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<PgCluster> cluster = std::move(*started);
  const std::string dir = cluster->dir();
  const int port = cluster->port();
  EXPECT_EQ(dir.rfind("/tmp/backfill-test-selftest-", 0), 0u) << dir;
  EXPECT_EQ(cluster->Dsn("app"),
            "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=app");
  EXPECT_EQ(cluster->Uri(),
            "postgresql://postgres@127.0.0.1:" + std::to_string(port) + "/postgres");

  EXPECT_EQ(cluster->has_timescaledb(), TimescaleMissingReason().empty())
      << "missing reason: " << TimescaleMissingReason();
  if (!cluster->has_timescaledb()) {
    std::fprintf(stderr, "*** harness_selftest: TimescaleDB absent (%s) ***\n",
                 TimescaleMissingReason().c_str());
  }

  ASSERT_TRUE(cluster->CreateDatabase("app").ok());
  absl::Status created = cluster->Exec(
      "app", "create table t (id int, v text); insert into t values (1, 'a'), (2, null)");
  ASSERT_TRUE(created.ok()) << created;
  absl::StatusOr<QueryRows> rows = cluster->Query("app", "select id, v from t order by id");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0][0], "1");
  EXPECT_EQ((*rows)[0][1], "a");
  EXPECT_EQ((*rows)[1][1], std::nullopt);
  EXPECT_EQ(cluster->QueryValue("app", "select v from t where id = 2").value_or("x"), "");
  EXPECT_FALSE(cluster->QueryValue("app", "select 1 where false").ok());

  absl::StatusOr<std::string> ext =
      cluster->QueryValue("app", "select count(*) from pg_extension where extname='timescaledb'");
  ASSERT_TRUE(ext.ok()) << ext.status();
  EXPECT_EQ(*ext, cluster->has_timescaledb() ? "1" : "0");
  if (cluster->has_timescaledb()) {
    absl::Status hypertable = cluster->Exec(
        "app",
        "create table m (ts timestamptz not null, x int); select create_hypertable('m', 'ts')");
    EXPECT_TRUE(hypertable.ok()) << hypertable;
  }

  absl::StatusOr<QueryRows> bad = cluster->Query("app", "select * from no_such_table");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no_such_table"), std::string::npos) << bad.status();

  ASSERT_TRUE(cluster->CreateDatabaseWithoutTimescale("plain").ok());
  const std::string count_ext = "select count(*) from pg_extension where extname='timescaledb'";
  EXPECT_EQ(cluster->QueryValue("plain", count_ext).value_or("?"), "0");

  absl::Status restarted = cluster->Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_EQ(cluster->QueryValue("app", "select count(*) from t").value_or("?"), "2");
  EXPECT_EQ(cluster->QueryValue("postgres", "show fsync").value_or("?"), "off");

  ASSERT_TRUE(cluster->Stop().ok());
  EXPECT_FALSE(cluster->QueryValue("app", "select 1").ok());
  ASSERT_TRUE(cluster->Restart().ok());
  EXPECT_EQ(cluster->QueryValue("app", "select 1").value_or("?"), "1");
  if (cluster->has_timescaledb()) {
    EXPECT_EQ(cluster->QueryValue("app", "select count(*) from timescaledb_information.hypertables")
                  .value_or("?"),
              "1");
  }

  cluster.reset();
  EXPECT_FALSE(std::filesystem::exists(dir));
  ProcessResult ready = RunProcess(
      {PgBinDir() + "/pg_isready", "-h", "127.0.0.1", "-p", std::to_string(port)}, {}, 30);
  EXPECT_NE(ready.exit_code, 0) << "server still accepting on port " << port;
}

TEST(PgClusterTest, WithoutPreloadHasNoTimescale) {
  absl::StatusOr<std::unique_ptr<PgCluster>> cluster =
      PgCluster::Start(Options(false, "nopreload"));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_FALSE((*cluster)->has_timescaledb());
  EXPECT_EQ((*cluster)->QueryValue("postgres", "show shared_preload_libraries").value_or("?"), "");
}

// The shape integration suites use: one cluster per suite, skipped loudly without TimescaleDB.
class SharedClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<PgCluster>> started = PgCluster::Start(Options(true, "shared"));
    ASSERT_TRUE(started.ok()) << started.status();
    cluster_ = std::move(*started).release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { BACKFILL_REQUIRE_TIMESCALEDB(cluster_); }

  static PgCluster* cluster_;
};

PgCluster* SharedClusterTest::cluster_ = nullptr;

TEST_F(SharedClusterTest, TimescaleVersionFromEnvironmentOrDefault) {
  ASSERT_TRUE(cluster_->CreateDatabase("versioned").ok());
  absl::StatusOr<std::string> version = cluster_->QueryValue(
      "versioned", "select extversion from pg_extension where extname='timescaledb'");
  ASSERT_TRUE(version.ok()) << version.status();
  const char* wanted = std::getenv("BACKFILL_TEST_TIMESCALEDB_VERSION");
  if (wanted != nullptr && wanted[0] != '\0') {
    EXPECT_EQ(*version, wanted);
  }
  EXPECT_FALSE(version->empty());
}

}  // namespace
}  // namespace backfill::testing
