// The distributed shape end to end: a real backfill-coordinator process and two
// backfill-worker processes, driven by backfillctl --coordinator.
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/fixture.h"

namespace backfill::testing {
namespace {

class ClusterTest : public BackfillTest {
 protected:
  // Waits until `log` contains `text`; false after `seconds`.
  static bool WaitForLog(const std::string& log, const std::string& text, int seconds) {
    for (int i = 0; i < seconds * 20; ++i) {
      if (absl::StrContains(ReadFile(log), text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
};

TEST_F(ClusterTest, CoordinatorAndTwoWorkerProcessesCopyEveryRowBelowUntilExactlyOnce) {
  CreateMetrics(20);
  // Dual writes at and after --until, in the cut chunk and in later ones.
  ExecTarget(
      "INSERT INTO public.metrics VALUES ('2024-01-15 06:00+00', 100, 1, 'dual a'), "
      "('2024-01-15 23:59+00', 101, 2, 'dual b'), ('2024-01-19 00:00+00', 102, 3, 'dual c')");
  const std::string below = "SELECT * FROM public.metrics WHERE time < '2024-01-15 06:00+00'";
  const std::string at_or_after =
      "SELECT * FROM public.metrics WHERE time >= '2024-01-15 06:00+00'";
  const std::string versions =
      "SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY time) FROM public.metrics "
      "WHERE time >= '2024-01-15 06:00+00'";
  const std::string dual_before = TargetDigest(at_or_after);
  const std::string versions_before = TargetValue(versions);

  const int port = FreeLoopbackPort();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  const std::string dir = source_->dir();
  BackgroundProcess coordinator({BinPath("backfill-coordinator"), "--listen", address,
                                 "--lease-timeout-ms", "5000", "--heartbeat-ms", "500"},
                                dir + "/coordinator-" + db_ + ".log");
  ASSERT_TRUE(WaitForLog(coordinator.log_path(), "listening on port", 30))
      << ReadFile(coordinator.log_path());
  BackgroundProcess worker1({BinPath("backfill-worker"), "--coordinator", address, "--name", "w1"},
                            dir + "/worker1-" + db_ + ".log");
  BackgroundProcess worker2({BinPath("backfill-worker"), "--coordinator", address, "--name", "w2"},
                            dir + "/worker2-" + db_ + ".log");

  // --coordinator after the command name, like every flag.
  ProcessResult staged = Ctl({"stage", "--coordinator", address, "--source", SourceDsn(),
                              "--target", TargetDsn(), "--until", "2024-01-15T06:00:00"},
                             {}, "backfillctl");
  ASSERT_EQ(staged.exit_code, 0) << staged.out << staged.err;
  EXPECT_TRUE(
      absl::StrContains(staged.out, "staged 15 chunks of public.metrics (1 cut at --until)"))
      << staged.out;

  ProcessResult copied =
      Ctl({"copy", "--source", SourceDsn(), "--target", TargetDsn(), "--coordinator", address}, {},
          "backfillctl");
  ASSERT_EQ(copied.exit_code, 0) << copied.out << copied.err << ReadFile(worker1.log_path())
                                 << ReadFile(worker2.log_path());
  EXPECT_TRUE(absl::StrContains(copied.out, "Copied 15 of 15 chunks")) << copied.out;

  EXPECT_EQ(SourceDigest(below).substr(0, 6), "20520|");  // 14.25 days of minutes
  EXPECT_EQ(TargetDigest(below), SourceDigest(below));
  EXPECT_EQ(TargetDigest(at_or_after), dual_before);
  EXPECT_EQ(TargetValue(versions), versions_before);
  // Every chunk was copied by one of the two worker processes.
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE worked IS NOT NULL AND "
                        "(lease_holder LIKE 'w1#%' OR lease_holder LIKE 'w2#%')"),
            "15");

  ProcessResult verified =
      Ctl({"verify", "--coordinator", address, "--source", SourceDsn(), "--target", TargetDsn()},
          {}, "backfillctl");
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_TRUE(absl::StrContains(verified.out, "Verified 15 chunks: 0 differ.")) << verified.out;
  // Verification too was leased to the worker processes, chunk by chunk.
  EXPECT_EQ(TargetValue("SELECT count(*) FROM __backfill.task WHERE verified IS NOT NULL AND "
                        "verify_matches AND (lease_holder LIKE 'w1#%' OR lease_holder LIKE "
                        "'w2#%')"),
            "15");
  ProcessResult cleaned =
      Ctl({"clean", "--coordinator", address, "--target", TargetDsn()}, {}, "backfillctl");
  EXPECT_EQ(cleaned.exit_code, 0) << cleaned.err;

  // SIGTERM: workers and coordinator stop cleanly.
  ASSERT_TRUE(worker1.Signal(SIGTERM));
  ASSERT_TRUE(worker2.Signal(SIGTERM));
  EXPECT_EQ(worker1.Wait(), 0) << ReadFile(worker1.log_path());
  EXPECT_EQ(worker2.Wait(), 0) << ReadFile(worker2.log_path());
  ASSERT_TRUE(coordinator.Signal(SIGTERM));
  EXPECT_EQ(coordinator.Wait(), 0) << ReadFile(coordinator.log_path());
  EXPECT_TRUE(absl::StrContains(ReadFile(coordinator.log_path()), "registered"));
}

TEST_F(ClusterTest, CtlReportsAnUnreachableCoordinatorClearly) {
  const std::string address = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  ProcessResult r = Ctl({"clean", "--target", TargetDsn(), "--coordinator", address});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(
      absl::StartsWith(r.err, absl::StrCat("error: cannot reach the coordinator at ", address)))
      << r.err;
}

}  // namespace
}  // namespace backfill::testing
