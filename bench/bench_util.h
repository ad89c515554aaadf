// What the benchmark's figures share: failing loudly, running SQL and programs, timing.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "tests/harness/pg_cluster.h"
#include "tests/harness/process.h"

namespace backfill::bench {

using testing::PgCluster;
using testing::ProcessResult;
using testing::RunProcess;

// Unwinds to main(), so that the clusters are stopped and removed on the way out.
struct BenchFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void Die(const std::string& message) { throw BenchFailure(message); }

inline std::string Bin(const std::string& name) {
  return absl::StrCat(BACKFILL_BIN_DIR, "/", name);
}

inline void Exec(PgCluster& cluster, const std::string& db, const std::string& sql) {
  absl::Status s = cluster.Exec(db, sql);
  if (!s.ok()) Die(absl::StrCat(s.message(), "\nsql: ", sql));
}

inline std::string Value(PgCluster& cluster, const std::string& db, const std::string& sql) {
  absl::StatusOr<std::string> v = cluster.QueryValue(db, sql);
  if (!v.ok()) Die(absl::StrCat(v.status().message(), "\nsql: ", sql));
  return *v;
}

inline int64_t IntValue(PgCluster& cluster, const std::string& db, const std::string& sql) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(Value(cluster, db, sql), &n)) Die("not an integer: " + sql);
  return n;
}

// Runs `argv` and dies unless it exits 0.
inline ProcessResult RunOrDie(const std::vector<std::string>& argv, int timeout_seconds = 3600) {
  ProcessResult r = RunProcess(argv, {}, timeout_seconds);
  if (r.exit_code != 0) {
    Die(absl::StrCat("`", absl::StrJoin(argv, " "), "` exited with ", r.exit_code, "\n", r.out,
                     r.err));
  }
  return r;
}

inline double Seconds(absl::Time start) { return absl::ToDoubleSeconds(absl::Now() - start); }

inline double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

struct Figures {
  std::vector<std::string> json;  // "key": value entries
  std::vector<std::string> ratios;
  void Add(const std::string& key, double value) {
    json.push_back(absl::StrFormat("\"%s\": %.6g", key, value));
  }
};

}  // namespace backfill::bench
