// The `wan` figure: a copy across a slow link, with and without a source-side worker.
//
// Two hosts, network namespaces on a bridge (tests/harness/netns.h):
//   src: the source PostgreSQL; in the split, the source-side worker;
//   dst: the target PostgreSQL, the coordinator, the worker next to the target, the psql pipe,
//        and two delay lines.
// The link: each host's egress limited by tc tbf (100mbit), and 20 ms each way added by a
// backfill_delay_line in dst (this kernel has no netem), one in front of the source's
// PostgreSQL and one in front of the source-side worker: whatever in dst reads the source goes
// through one of them. Not delayed: the source-side worker's calls to the coordinator (control
// traffic, small) and staging (not timed).
//
// The plain figure's table (rows over daily chunks, two secondary indexes) is copied three
// ways into the same pre-created empty target chunks, side by side in each round, in an order
// that rotates:
//   1. pipe: per chunk, one after another, in dst: psql through the delay line
//      `COPY chunk TO STDOUT (FORMAT binary)` | psql `COPY chunk FROM STDIN (FORMAT binary)`
//      into the target, as the plain figure's pipe;
//   2. single: `backfillctl copy` with a coordinator and one backfill-worker in dst, which
//      reads the source through the delay line (the job's source connection string is the
//      delay line's: so does the coordinator);
//   3. split: the same with a source-side worker in src (reading its source directly) that the
//      target-side worker reaches through the other delay line (its --advertise); the
//      target-side worker's own way to the source leads nowhere, so that every chunk is read
//      through the source-side worker or the run fails.
// With --wan-parallel P, P pipes at a time and P workers next to the target (still one
// source-side worker).
// After each run the target must hold the source's rows (count and digest), else the bench
// fails. Reported per run: seconds, MB/s of binary COPY data (MB = 10^6 bytes, the size of
// `COPY chunk TO STDOUT (FORMAT binary)`) and the CPU seconds of each process; then medians of
// the rounds' times and of the rounds' ratios.
#include "bench/wan.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "tests/harness/netns.h"

namespace backfill::bench {
namespace {

using testing::BackgroundProcess;
using testing::VirtualNetwork;

constexpr char kDb[] = "bench_wan";
constexpr char kTable[] = "public.plain";
constexpr char kToken[] = "bench-wan-token";
constexpr int kCoordinatorPort = 7433;    // on dst
constexpr int kSourceSidePort = 7434;     // on src
constexpr int kDelayToSourceSide = 7441;  // on dst
constexpr int kDelayToPostgres = 7442;    // on dst
// Where the target-side worker of the split would read the source itself: nowhere.
constexpr char kNowhere[] = "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2";

enum Way { kPipe = 0, kSingle = 1, kSplit = 2 };
constexpr const char* kWayNames[] = {"psql pipe", "single worker", "split"};
constexpr const char* kWayKeys[] = {"pipe", "single", "split"};

// "psql -X -q -v ON_ERROR_STOP=1 '<dsn>' -c '<sql>'" for a shell pipeline.
std::string Psql(const std::string& dsn, const std::string& sql) {
  auto quote = [](const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  };
  return absl::StrCat(testing::PgBinDir(), "/psql -X -q -v ON_ERROR_STOP=1 ", quote(dsn), " -c ",
                      quote(sql));
}

// utime + stime of `pid`, plus with `reaped` those of the children it has waited for; 0 when
// it is gone. Its parent into `ppid` when given.
double ProcessCpuSeconds(int64_t pid, bool reaped, int64_t* ppid = nullptr) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return 0;
  const std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
  // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
  if (f.size() < 15) return 0;
  if (ppid != nullptr) (void)absl::SimpleAtoi(f[1], ppid);
  int64_t ticks[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < 4; ++i) (void)absl::SimpleAtoi(f[11 + i], &ticks[i]);
  const int64_t sum = ticks[0] + ticks[1] + (reaped ? ticks[2] + ticks[3] : 0);
  return static_cast<double>(sum) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU seconds of a cluster: its postmaster, the postmaster's live children and the children
// it has reaped (the backends of ended sessions).
double ClusterCpuSeconds(const PgCluster& cluster) {
  std::ifstream pidfile(cluster.data_dir() + "/postmaster.pid");
  int64_t postmaster = 0;
  pidfile >> postmaster;
  if (postmaster <= 0) return 0;
  double total = ProcessCpuSeconds(postmaster, true);
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
       it.increment(ec)) {
    int64_t pid = 0, ppid = 0;
    if (!absl::SimpleAtoi(it->path().filename().string(), &pid)) continue;
    const double cpu = ProcessCpuSeconds(pid, true, &ppid);
    if (ppid == postmaster) total += cpu;
  }
  return total;
}

// The machine's CPU time since boot (/proc/stat, in ticks): busy, softirq (busy too) and total.
struct MachineTicks {
  double busy = 0, softirq = 0, total = 0;
};
MachineTicks MachineCpu() {
  std::ifstream in("/proc/stat");
  std::string label;
  in >> label;
  double v[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // user nice system idle iowait irq softirq steal
  MachineTicks t;
  for (double& x : v) {
    in >> x;
    t.total += x;
  }
  t.busy = t.total - v[3] - v[4];
  t.softirq = v[6];
  return t;
}

// What this process's waited-for children (psql pipes, backfillctl) have used.
double ChildrenCpuSeconds() {
  struct rusage usage {};
  getrusage(RUSAGE_CHILDREN, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Ends `p` with SIGTERM, SIGKILL after 10 s.
void Stop(BackgroundProcess* p) {
  if (p == nullptr || !p->IsRunning()) return;
  p->Signal(SIGTERM);
  if (!p->WaitFor(10000).has_value()) p->Kill();
}

// The sum of L over a worker's log lines "task N: L bytes crossed the link for R bytes of COPY
// data", and of R.
std::pair<int64_t, int64_t> LinkBytes(const std::string& log) {
  int64_t link = 0, raw = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    const absl::string_view marker = " bytes crossed the link for ";
    const size_t at = line.find(marker);
    if (at == absl::string_view::npos || at == 0) continue;
    const size_t start = line.rfind(' ', at - 1) + 1;
    absl::string_view rest = line.substr(at + marker.size());
    int64_t l = 0, r = 0;
    if (absl::SimpleAtoi(line.substr(start, at - start), &l) &&
        absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &r)) {
      link += l;
      raw += r;
    }
  }
  return {link, raw};
}

int64_t CountOf(const std::string& text, const std::string& needle) {
  int64_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string JoinRatios(const std::vector<double>& values) {
  return absl::StrJoin(values, " ",
                       [](std::string* out, double v) { absl::StrAppendFormat(out, "%.2f", v); });
}

// One timed run of one way.
struct RunResult {
  double seconds = 0;
  std::vector<std::pair<std::string, double>> cpu;  // CPU seconds by process, in order
  double busy_cores = 0;                            // the machine's, averaged over the run
  double rest_cores = 0;                            // of which not ours
  int64_t link_bytes = 0;                           // split: what crossed the link (zstd)
  int64_t link_raw_bytes = 0;                       // split: the COPY data it carried
};

class WanBench {
 public:
  WanBench(const WanOptions& options, Figures* figures) : options_(options), figures_(figures) {}

  ~WanBench() {
    for (auto& p : delay_lines_) Stop(p.get());
  }

  void Run() {
    if (std::string why = SkipReason(); !why.empty()) return Skip(why);
    absl::StatusOr<std::unique_ptr<VirtualNetwork>> net = VirtualNetwork::Create({"src", "dst"});
    if (!net.ok()) return Skip(std::string(net.status().message()));
    net_ = *std::move(net);
    for (const char* host : {"src", "dst"}) {
      if (absl::Status s = net_->LimitEgress(host, options_.rate); !s.ok()) {
        return Skip(absl::StrCat("cannot limit the link with tc tbf: ", s.message()));
      }
    }
    StartClusters();
    StartDelayLines();
    BuildSource();
    Measure();
    WriteResults();
  }

 private:
  static std::string SkipReason() {
    if (geteuid() != 0) return "not running as root (network namespaces need it)";
    for (const char* tool : {"ip", "tc"}) {
      if (RunProcess({tool, "-V"}, {}, 30).exit_code == 127) return absl::StrCat(tool, " missing");
    }
    return "";
  }

  static void Skip(const std::string& why) {
    std::cerr << "*** SKIPPING wan: " << why
              << "; the slow-link figure is not measured on this machine ***" << std::endl;
  }

  // Prints `line` and keeps it for the .txt results.
  void Say(const std::string& line) {
    std::cout << line << std::endl;
    lines_.push_back(line);
  }

  static std::map<std::string, std::string> Env() { return {{"BACKFILL_TOKEN", kToken}}; }

  std::vector<std::string> On(const std::string& host, const std::vector<std::string>& argv) {
    std::vector<std::string> full = net_->On(host);
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
  }

  std::string Log(const std::string& name) const {
    return absl::StrCat(target_->dir(), "/", name, ".log");
  }

  std::string At(const std::string& host, int port) const {
    return absl::StrCat(net_->Address(host), ":", port);
  }

  // The source as dst reaches it: through the delay line.
  std::string DelayedSourceDsn() const {
    return absl::StrCat("host=", net_->Address("dst"), " port=", kDelayToPostgres,
                        " user=postgres dbname=", kDb);
  }

  // Runs `argv` on `host`; dies unless it exits 0.
  ProcessResult RunOn(const std::string& host, const std::vector<std::string>& argv) {
    ProcessResult r = RunProcess(On(host, argv), Env(), 3600);
    if (r.exit_code != 0) {
      Die(absl::StrCat("`", absl::StrJoin(argv, " "), "` on ", host, " exited with ", r.exit_code,
                       "\n", r.out, r.err));
    }
    return r;
  }

  // Starts `argv` on `host` and waits (at most 60 s) for `ready` in its log.
  std::unique_ptr<BackgroundProcess> Start(const std::string& host, const std::string& name,
                                           const std::vector<std::string>& argv,
                                           const std::string& ready) {
    auto p = std::make_unique<BackgroundProcess>(On(host, argv), Log(name), Env());
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!absl::StrContains(testing::ReadFile(p->log_path()), ready)) {
      if (!p->IsRunning() || absl::Now() > deadline) {
        Die(absl::StrCat(name, " on ", host, " did not say \"", ready, "\":\n",
                         testing::ReadFile(p->log_path())));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return p;
  }

  void StartClusters() {
    for (auto [host, slot] : {std::pair{"src", &source_}, {"dst", &target_}}) {
      testing::PgClusterOptions options;
      options.name = absl::StrCat("bench-wan-", host);
      options.netns = net_->Namespace(host);
      options.listen_address = net_->Address(host);
      options.trusted_network = VirtualNetwork::kSubnet;
      absl::StatusOr<std::unique_ptr<PgCluster>> cluster = PgCluster::Start(options);
      if (!cluster.ok()) Die(std::string(cluster.status().message()));
      if (!(*cluster)->has_timescaledb()) Die("TimescaleDB is not installed for PostgreSQL 15");
      *slot = *std::move(cluster);
    }
    timescaledb_ = Value(*source_, "postgres",
                         "SELECT default_version FROM pg_available_extensions WHERE name = "
                         "'timescaledb'");
    Say(absl::StrFormat(
        "wan machine: %d cores; PostgreSQL 15, TimescaleDB %s; two hosts (network namespaces "
        "src and dst on a bridge), each one's egress limited by tc tbf rate %s (burst 32kbit, "
        "latency 500ms); %d ms each way (%d ms round trip) added by backfill_delay_line in dst "
        "in front of the source's PostgreSQL and of the source-side worker: this kernel has no "
        "netem. The delay line relays at once and holds the bytes (up to 8 MiB a direction), so "
        "a stream's TCP window does not see the round trip; requests and answers do",
        std::thread::hardware_concurrency(), timescaledb_, options_.rate, options_.delay_ms,
        2 * options_.delay_ms));
  }

  void StartDelayLines() {
    const std::pair<int, std::string> lines[] = {
        {kDelayToPostgres, At("src", source_->port())},
        {kDelayToSourceSide, At("src", kSourceSidePort)},
    };
    for (const auto& [port, to] : lines) {
      delay_lines_.push_back(Start("dst", absl::StrCat("delay-line-", port),
                                   {Bin("backfill_delay_line"), "--listen", At("dst", port), "--to",
                                    to, "--delay-ms", absl::StrCat(options_.delay_ms)},
                                   "delay line listening"));
    }
  }

  // The plain figure's table on both sides (bench.cc, CreateTable and PlainCopy), its rows on
  // the source, staged.
  void BuildSource() {
    if (!source_->CreateDatabase(kDb).ok() || !target_->CreateDatabase(kDb).ok()) {
      Die(absl::StrCat("cannot create database ", kDb));
    }
    const absl::Time start = absl::Now();
    const std::string ddl = absl::StrCat(
        "CREATE TABLE ", kTable,
        " (time timestamptz NOT NULL, device int NOT NULL, v1 float8, v2 float8, note text);"
        "SELECT create_hypertable('",
        kTable,
        "', 'time', chunk_time_interval => interval '1 day');"
        "CREATE INDEX plain_device_time_idx ON ",
        kTable, " (device, time DESC)");
    Exec(*source_, kDb, ddl);
    Exec(*target_, kDb, ddl);
    const double step = 86400.0 * options_.chunks / static_cast<double>(options_.rows);
    Exec(*source_, kDb,
         absl::StrFormat("INSERT INTO %s SELECT timestamptz '2024-01-01 00:00+00' + "
                         "(i * %.9f) * interval '1 second', i %% 100, random(), i * 0.25, "
                         "'note ' || (i %% 1000) FROM generate_series(0, %d) i",
                         kTable, step, options_.rows - 1));
    Exec(*source_, kDb, absl::StrCat("ANALYZE ", kTable));
    // Staged from dst, straight to the source (not timed).
    RunOn("dst", {Bin("timescaledb-backfill"), "stage", "--until", "2030-01-01", "--source",
                  source_->Dsn(kDb), "--target", target_->Dsn(kDb)});
    absl::StatusOr<testing::QueryRows> rows = target_->Query(
        kDb,
        "SELECT format('%I.%I', chunk_schema, chunk_name), format('%I.%I', "
        "target_chunk_schema, target_chunk_name) FROM __backfill.task ORDER BY task_id");
    if (!rows.ok()) Die(std::string(rows.status().message()));
    for (const auto& row : *rows) tasks_.emplace_back(*row[0], *row[1]);
    // The binary COPY data, measured on src.
    for (const auto& task : tasks_) {
      const ProcessResult r = RunOn(
          "src", {"bash", "-c",
                  absl::StrCat("set -o pipefail; ",
                               Psql(source_->Dsn(kDb), absl::StrCat("COPY ", task.first,
                                                                    " TO STDOUT (FORMAT binary)")),
                               " | wc -c")});
      int64_t bytes = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(r.out), &bytes)) Die("wc -c: " + r.out);
      copy_bytes_ += bytes;
    }
    source_digest_ = Digest(*source_);
    const int64_t size = IntValue(
        *source_, kDb,
        absl::StrCat("SELECT sum(total_bytes) FROM hypertable_detailed_size('", kTable, "')"));
    Say(absl::StrFormat(
        "wan hypertable: %d rows in %d chunks, %.0f MiB with its indexes (time; device, time), "
        "%.1f MB of binary COPY data (built in %.0fs)",
        options_.rows, tasks_.size(), size / 1048576.0, copy_bytes_ / 1e6, Seconds(start)));
  }

  // Row count and an order-independent digest of the table's rows.
  std::string Digest(PgCluster& cluster) {
    return Value(cluster, kDb,
                 absl::StrCat("SELECT count(*) || '|' || coalesce(sum(hashtextextended(r::text, "
                              "0)::numeric), 0) FROM (SELECT extract(epoch FROM time) AS t, "
                              "device, v1, v2, note FROM ",
                              kTable, ") r"));
  }

  // Empties the target chunks and makes every task pending again, as after stage.
  void ResetTarget() {
    std::vector<std::string> chunks;
    for (const auto& task : tasks_) chunks.push_back(task.second);
    Exec(*target_, kDb,
         absl::StrCat("TRUNCATE ", absl::StrJoin(chunks, ", "),
                      "; UPDATE __backfill.task SET worked = NULL, rows_copied = NULL, "
                      "bytes_copied = NULL, lease_holder = NULL, lease_expires_at = NULL, "
                      "attempts = 0, last_error = NULL; CHECKPOINT"));
  }

  void Verify(Way way) {
    const std::string target = Digest(*target_);
    if (target != source_digest_ || !absl::StartsWith(target, absl::StrCat(options_.rows, "|"))) {
      Die(absl::StrCat("wan ", kWayNames[way], ": the target's rows differ from the source's ",
                       "(count|digest: target ", target, ", source ", source_digest_, ", expected ",
                       options_.rows, " rows)"));
    }
  }

  // CPU seconds so far of the clusters, the delay lines, `procs` (each group named, its
  // processes summed) and our children.
  using ProcessGroups = std::vector<std::pair<std::string, std::vector<BackgroundProcess*>>>;
  std::vector<std::pair<std::string, double>> CpuNow(const ProcessGroups& procs) {
    std::vector<std::pair<std::string, double>> cpu = {
        {"source postgres", ClusterCpuSeconds(*source_)},
        {"target postgres", ClusterCpuSeconds(*target_)},
    };
    double delay = 0;
    for (auto& p : delay_lines_) delay += ProcessCpuSeconds(p->pid(), false);
    cpu.emplace_back("delay lines", delay);
    for (const auto& [name, group] : procs) {
      double sum = 0;
      for (BackgroundProcess* p : group) sum += ProcessCpuSeconds(p->pid(), false);
      cpu.emplace_back(name, sum);
    }
    cpu.emplace_back("psql/backfillctl", ChildrenCpuSeconds());
    return cpu;
  }

  // Times `copy` with `procs` running, and what they all spent meanwhile.
  template <typename Copy>
  RunResult Timed(const ProcessGroups& procs, Copy copy) {
    const auto cpu_before = CpuNow(procs);
    const auto machine_before = MachineCpu();
    const absl::Time start = absl::Now();
    copy();
    RunResult result;
    result.seconds = Seconds(start);
    const auto machine_after = MachineCpu();
    const auto cpu_after = CpuNow(procs);
    for (size_t i = 0; i < cpu_after.size(); ++i) {
      result.cpu.emplace_back(cpu_after[i].first, cpu_after[i].second - cpu_before[i].second);
    }
    const double total = machine_after.total - machine_before.total;
    const double cores = std::thread::hardware_concurrency();
    if (total > 0) {
      result.busy_cores = (machine_after.busy - machine_before.busy) / total * cores;
      // The rest of the machine's busy time: other processes, and kernel work charged to none
      // (softirq on an idle CPU). Softirq time is shown on its own, but with tick accounting
      // (no CONFIG_IRQ_TIME_ACCOUNTING) a tick in softirq is also charged to the process it
      // interrupted: it overlaps the others.
      double ours = 0;
      for (const auto& [name, seconds] : result.cpu) ours += seconds;
      const double softirq =
          (machine_after.softirq - machine_before.softirq) / total * cores * result.seconds;
      result.rest_cores = std::max(0.0, result.busy_cores * result.seconds - ours) / result.seconds;
      result.cpu.emplace_back("the rest of the machine", result.rest_cores * result.seconds);
      result.cpu.emplace_back("(softirq, overlapping)", softirq);
    }
    return result;
  }

  // Per chunk, a psql pipe; --wan-parallel of them at a time.
  RunResult RunPipe() {
    return Timed({}, [&] {
      std::atomic<size_t> next{0};
      std::mutex mu;
      std::string failure;
      std::vector<std::thread> threads;
      for (int i = 0; i < options_.parallel; ++i) {
        threads.emplace_back([&] {
          for (size_t j; (j = next++) < tasks_.size();) {
            const auto& [source_chunk, target_chunk] = tasks_[j];
            try {
              RunOn("dst",
                    {"bash", "-c",
                     absl::StrCat(
                         "set -o pipefail; ",
                         Psql(DelayedSourceDsn(),
                              absl::StrCat("COPY ", source_chunk, " TO STDOUT (FORMAT binary)")),
                         " | ",
                         Psql(target_->Dsn(kDb), absl::StrCat("COPY ", target_chunk,
                                                              " FROM STDIN (FORMAT binary)")))});
            } catch (const BenchFailure& e) {
              std::lock_guard<std::mutex> lock(mu);
              failure = e.what();
              next = tasks_.size();
            }
          }
        });
      }
      for (std::thread& t : threads) t.join();
      if (!failure.empty()) Die(failure);
    });
  }

  // `backfillctl copy` through a fresh coordinator and --wan-parallel workers in dst, and with
  // `split` a source-side worker in src.
  RunResult RunOurs(bool split, const std::string& prefix) {
    const std::string coordinator_address = At("dst", kCoordinatorPort);
    std::unique_ptr<BackgroundProcess> coordinator =
        Start("dst", prefix + "coordinator",
              {Bin("backfill-coordinator"), "--listen", coordinator_address}, "listening on port");
    std::unique_ptr<BackgroundProcess> source_side;
    if (split) {
      source_side =
          Start("src", prefix + "source-side",
                {Bin("backfill-worker"), "--source-side", "--listen", At("src", kSourceSidePort),
                 "--advertise", At("dst", kDelayToSourceSide), "--coordinator", coordinator_address,
                 "--name", "s1", "--source", source_->Dsn(kDb)},
                "registered; target-side workers");
    }
    std::vector<std::unique_ptr<BackgroundProcess>> workers;
    for (int i = 1; i <= options_.parallel; ++i) {
      std::vector<std::string> argv = {Bin("backfill-worker"),
                                       "--coordinator",
                                       coordinator_address,
                                       "-v",
                                       "--name",
                                       absl::StrCat(split ? "t" : "w", i)};
      if (split) {
        argv.push_back("--source");
        argv.push_back(kNowhere);
      }
      workers.push_back(Start("dst", absl::StrCat(prefix, split ? "target-side" : "worker", i),
                              argv, "registered"));
    }
    ProcessGroups procs = {{"coordinator", {coordinator.get()}},
                           {split ? "target-side worker" : "worker next to the target", {}}};
    for (auto& w : workers) procs.back().second.push_back(w.get());
    if (split) procs.push_back({"source-side worker", {source_side.get()}});
    auto logs = [&] {
      std::string text =
          absl::StrCat("\ncoordinator:\n", testing::ReadFile(coordinator->log_path()));
      for (auto& w : workers) {
        absl::StrAppend(&text, "\n", w->log_path(), ":\n", testing::ReadFile(w->log_path()));
      }
      if (split) {
        absl::StrAppend(&text, "\nsource-side worker:\n",
                        testing::ReadFile(source_side->log_path()));
      }
      return text;
    };
    RunResult result = Timed(procs, [&] {
      const std::vector<std::string> argv = {Bin("backfillctl"),
                                             "copy",
                                             "-q",
                                             "--coordinator",
                                             coordinator_address,
                                             "--source",
                                             DelayedSourceDsn(),
                                             "--target",
                                             target_->Dsn(kDb)};
      ProcessResult r = RunProcess(On("dst", argv), Env(), 3600);
      if (r.exit_code != 0) {
        Die(absl::StrCat("`", absl::StrJoin(argv, " "), "` exited with ", r.exit_code, "\n", r.out,
                         r.err, logs()));
      }
    });
    for (auto& w : workers) Stop(w.get());
    Stop(source_side.get());
    Stop(coordinator.get());
    // Every chunk read as this way means: through the source-side worker, or not.
    const std::string log = testing::ReadFile(coordinator->log_path());
    const int64_t leased = CountOf(log, "leased chunk ");
    const int64_t through = CountOf(log, "reading through source-side worker ");
    if (leased != static_cast<int64_t>(tasks_.size()) || through != (split ? leased : 0)) {
      Die(absl::StrCat("wan ", split ? "split" : "single", ": ", leased, " leases for ",
                       tasks_.size(), " chunks, ", through,
                       " of them read through a source-side worker:", logs()));
    }
    for (auto& w : workers) {
      const auto [link, raw] = LinkBytes(testing::ReadFile(w->log_path()));
      result.link_bytes += link;
      result.link_raw_bytes += raw;
    }
    return result;
  }

  void Measure() {
    const double rows = static_cast<double>(options_.rows);
    std::vector<double> times[3];
    std::vector<double> split_vs_pipe, split_vs_single, single_vs_pipe;
    int64_t link_bytes = 0, link_raw_bytes = 0;
    for (int round = 0; round < options_.rounds; ++round) {
      double seconds[3] = {0, 0, 0};
      for (int turn = 0; turn < 3; ++turn) {
        const Way way = static_cast<Way>((round + turn) % 3);
        ResetTarget();
        const std::string prefix = absl::StrCat("round", round + 1, "-", kWayKeys[way], "-");
        RunResult r = way == kPipe ? RunPipe() : RunOurs(way == kSplit, prefix);
        Verify(way);
        seconds[way] = r.seconds;
        times[way].push_back(r.seconds);
        std::string cpu = absl::StrJoin(
            r.cpu, ", ", [](std::string* out, const std::pair<std::string, double>& c) {
              absl::StrAppendFormat(out, "%s %.1f", c.first, c.second);
            });
        std::string link;
        // Another's build or tests on this small machine take cores from the run: flagged.
        if (r.rest_cores > 0.25) {
          link =
              absl::StrFormat(" [DISTURBED: other work took %.2f cores on average]", r.rest_cores);
        }
        if (way == kSplit) {
          link_bytes = r.link_bytes;
          link_raw_bytes = r.link_raw_bytes;
          link += absl::StrFormat("; %.1f MB crossed the link for %.1f MB of COPY data (%.1fx)",
                                  r.link_bytes / 1e6, r.link_raw_bytes / 1e6,
                                  r.link_bytes > 0 ? static_cast<double>(r.link_raw_bytes) /
                                                         static_cast<double>(r.link_bytes)
                                                   : 0.0);
        }
        Say(absl::StrFormat(
            "wan round %d, %s, P=%d: %.2fs, %d rows (verified), %.2f MB/s of COPY data; CPU "
            "seconds: %s; the machine busy %.2f of %d cores%s",
            round + 1, kWayNames[way], options_.parallel, r.seconds, options_.rows,
            copy_bytes_ / 1e6 / r.seconds, cpu, r.busy_cores, std::thread::hardware_concurrency(),
            link));
      }
      split_vs_pipe.push_back(seconds[kPipe] / seconds[kSplit]);
      split_vs_single.push_back(seconds[kSingle] / seconds[kSplit]);
      single_vs_pipe.push_back(seconds[kPipe] / seconds[kSingle]);
    }
    double median[3];
    for (int way = 0; way < 3; ++way) median[way] = Median(times[way]);
    const double vs_pipe = Median(split_vs_pipe), vs_single = Median(split_vs_single),
                 single_pipe = Median(single_vs_pipe);
    auto rate = [&](double s) {
      return absl::StrFormat("%.2fs (%.0f rows/s, %.2f MB/s)", s, rows / s, copy_bytes_ / 1e6 / s);
    };
    Say(absl::StrFormat(
        "wan copy across %s with %d ms each way, P=%d, medians of %d rounds: psql pipe %s, "
        "single worker next to the target %s, split (source-side worker + target-side worker) "
        "%s; split/pipe throughput %.2f (rounds: %s), split/single %.2f (rounds: %s), "
        "single/pipe %.2f (rounds: %s)",
        options_.rate, options_.delay_ms, options_.parallel, options_.rounds, rate(median[kPipe]),
        rate(median[kSingle]), rate(median[kSplit]), vs_pipe, JoinRatios(split_vs_pipe), vs_single,
        JoinRatios(split_vs_single), single_pipe, JoinRatios(single_vs_pipe)));
    const std::string verdict =
        absl::StrFormat("wan P=%d split/pipe %.2f (target >= 3.0)", options_.parallel, vs_pipe);
    Say("wan ratio: " + verdict);

    auto add = [&](const std::string& key, double value) {
      wan_json_.push_back(absl::StrFormat("\"%s\": %.6g", key, value));
      figures_->Add(key, value);
    };
    auto add_list = [&](const std::string& key, const std::vector<double>& values) {
      const std::string entry = absl::StrFormat(
          "\"%s\": [%s]", key, absl::StrJoin(values, ", ", [](std::string* out, double v) {
            absl::StrAppendFormat(out, "%.6g", v);
          }));
      wan_json_.push_back(entry);
      figures_->json.push_back(entry);
    };
    auto add_text = [&](const std::string& key, const std::string& value) {
      const std::string entry = absl::StrFormat("\"%s\": \"%s\"", key, value);
      wan_json_.push_back(entry);
      figures_->json.push_back(entry);
    };
    add_text("wan_machine",
             absl::StrFormat("%d cores; PostgreSQL 15, TimescaleDB %s; hosts src and dst are "
                             "network namespaces on one machine",
                             std::thread::hardware_concurrency(), timescaledb_));
    add_text("wan_tbf_rate", options_.rate);
    add_text("wan_tbf", "tc qdisc tbf on each host's egress, burst 32kbit, latency 500ms");
    add("wan_delay_ms_each_way", options_.delay_ms);
    add_text("wan_delay", "backfill_delay_line in dst (userspace proxy; this kernel has no netem)");
    add("wan_rounds", options_.rounds);
    add("wan_parallel", options_.parallel);
    add("wan_rows", rows);
    add("wan_chunks", static_cast<double>(tasks_.size()));
    add("wan_copy_bytes", static_cast<double>(copy_bytes_));
    for (int way = 0; way < 3; ++way) {
      add(absl::StrCat("wan_", kWayKeys[way], "_seconds"), median[way]);
      add(absl::StrCat("wan_", kWayKeys[way], "_mb_per_second"), copy_bytes_ / 1e6 / median[way]);
      add_list(absl::StrCat("wan_", kWayKeys[way], "_seconds_rounds"), times[way]);
    }
    add("wan_split_vs_pipe", vs_pipe);
    add("wan_split_vs_single", vs_single);
    add("wan_single_vs_pipe", single_pipe);
    add_list("wan_split_vs_pipe_rounds", split_vs_pipe);
    add("wan_split_link_bytes", static_cast<double>(link_bytes));
    add("wan_split_link_raw_bytes", static_cast<double>(link_raw_bytes));
    figures_->ratios.push_back(verdict);
  }

  void WriteResults() {
    if (options_.results_prefix.empty()) return;
    const std::string json_path = options_.results_prefix + ".json";
    const std::string txt_path = options_.results_prefix + ".txt";
    std::ofstream json(json_path);
    json << "{\n  " << absl::StrJoin(wan_json_, ",\n  ") << "\n}\n";
    std::ofstream txt(txt_path);
    for (const std::string& line : lines_) txt << line << "\n";
    if (!json || !txt) Die(absl::StrCat("cannot write ", json_path, " or ", txt_path));
    std::cout << "wan results written to " << json_path << " and " << txt_path << std::endl;
  }

  const WanOptions options_;
  Figures* figures_;
  // Destroyed in reverse: the delay lines, then the clusters, then the namespaces.
  std::unique_ptr<VirtualNetwork> net_;
  std::unique_ptr<PgCluster> source_, target_;
  std::vector<std::unique_ptr<BackgroundProcess>> delay_lines_;
  std::vector<std::pair<std::string, std::string>> tasks_;  // (source chunk, target chunk)
  int64_t copy_bytes_ = 0;
  std::string source_digest_;
  std::string timescaledb_;  // its default version
  std::vector<std::string> lines_;
  std::vector<std::string> wan_json_;
};

}  // namespace

void WanFigures(const WanOptions& options, Figures* figures) { WanBench(options, figures).Run(); }

}  // namespace backfill::bench
