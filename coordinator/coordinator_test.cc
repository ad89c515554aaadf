// The coordinator's state machine on a fake clock and an in-memory task store: leases,
// expiry, fencing, back-off, the cap, the rate share and progress accounting, without
// PostgreSQL. Workers are played by the test: lease, complete in the store (the worker's
// commit), report.
#include "coordinator/coordinator.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "coordinator/memory_task_store.h"
#include "gtest/gtest.h"

namespace backfill {
namespace {

// Holds the progress loop's first read of the counts until the test lets it go.
class GatedStore : public MemoryTaskStore {
 public:
  absl::StatusOr<TaskCounts> Counts(Work work, int max_attempts, absl::Time now) override {
    if (++calls_ == gated_call_) gate_.WaitForNotification();
    return MemoryTaskStore::Counts(work, max_attempts, now);
  }
  absl::StatusOr<std::optional<Grant>> Lease(const LeaseRequest& request) override {
    ++leases;
    return MemoryTaskStore::Lease(request);
  }
  void GateCall(int n) { gated_call_ = n; }
  std::atomic<int> leases{0};  // Lease calls that reached the store
  void Open() { gate_.Notify(); }

 private:
  std::atomic<int> calls_{0};
  std::atomic<int> gated_call_{0};
  absl::Notification gate_;
};

struct CopyRun {
  std::thread thread;
  absl::Mutex mu;
  std::vector<v1::CopyProgress> messages ABSL_GUARDED_BY(mu);
  absl::Status status;
  absl::Notification done;

  // A copy still running (a test that failed) is told its client went away.
  std::atomic<bool> cancel{false};
  ~CopyRun() {
    cancel = true;
    if (thread.joinable()) thread.join();
  }
  v1::CopyProgress Last() {
    absl::MutexLock lock(&mu);
    return messages.empty() ? v1::CopyProgress() : messages.back();
  }
  std::vector<v1::TaskEvent> Events() {
    absl::MutexLock lock(&mu);
    std::vector<v1::TaskEvent> events;
    for (const v1::CopyProgress& p : messages) {
      events.insert(events.end(), p.events().begin(), p.events().end());
    }
    return events;
  }
};

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() {
    options_.lease_timeout = absl::Seconds(30);
    options_.idle_retry = absl::Milliseconds(1);
    options_.job_wait = absl::Milliseconds(20);
    options_.progress_interval = absl::Milliseconds(5);
    options_.max_attempts = 3;
  }

  Coordinator& coordinator() {
    if (coordinator_ == nullptr) {
      coordinator_ = std::make_unique<Coordinator>(
          options_, &clock_,
          [this](const v1::Databases&, const JobChecks&) -> absl::StatusOr<JobStore> {
            if (no_schema_) return absl::NotFoundError("no __backfill");
            return JobStore{.store = store_, .source_identity = ""};
          });
    }
    return *coordinator_;
  }

  int64_t AddTask(const std::string& hypertable, const std::string& chunk, int64_t bytes) {
    TaskSpec spec;
    spec.hypertable_name = hypertable;
    spec.chunk_name = chunk;
    spec.source_bytes = bytes;
    return store_->Add(spec);
  }

  std::unique_ptr<CopyRun> StartCopy(
      const v1::CopyRequest& request = {},
      const std::function<bool()>& keep_going = [] { return true; }) {
    auto run = std::make_unique<CopyRun>();
    CopyRun* r = run.get();
    Coordinator* c = &coordinator();  // built here, not on two threads at once
    r->thread = std::thread([c, r, request, keep_going] {
      r->status = c->Copy(request, [r, keep_going](const v1::CopyProgress& p) {
        absl::MutexLock lock(&r->mu);
        r->messages.push_back(p);
        return keep_going() && !r->cancel;
      });
      r->done.Notify();
    });
    return run;
  }

  std::string Register(const std::string& name) {
    v1::RegisterWorkerRequest request;
    request.set_worker_name(name);
    absl::StatusOr<v1::RegisterWorkerResponse> response = coordinator().RegisterWorker(request);
    EXPECT_TRUE(response.ok());
    return response.ok() ? response->worker_id() : "";
  }

  v1::LeaseTaskResponse Lease(const std::string& worker) {
    v1::LeaseTaskRequest request;
    request.set_worker_id(worker);
    absl::StatusOr<v1::LeaseTaskResponse> response = coordinator().LeaseTask(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::LeaseTaskResponse();
  }

  // Polls until a task is granted (the job may still be opening); fails after 10 s.
  v1::LeaseTaskResponse LeaseWhenOpen(const std::string& worker) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      v1::LeaseTaskResponse response = Lease(worker);
      if (response.kind() == v1::LeaseTaskResponse::TASK) return response;
    }
    ADD_FAILURE() << "no task granted to " << worker;
    return v1::LeaseTaskResponse();
  }

  absl::Status Report(const std::string& worker, const v1::Task& task,
                      v1::ReportTaskRequest::Outcome outcome, const std::string& error = "",
                      bool retryable = false) {
    v1::ReportTaskRequest request;
    request.set_worker_id(worker);
    request.set_task_id(task.task_id());
    request.set_lease_epoch(task.lease_epoch());
    request.set_outcome(outcome);
    request.set_error(error);
    request.set_retryable(retryable);
    if (outcome == v1::ReportTaskRequest::COPIED) {
      request.set_rows(10);
      request.set_bytes(100);
    }
    return coordinator().ReportTask(request);
  }

  // The worker's commit and its report.
  void CopyAndReport(const std::string& worker, const v1::Task& task) {
    ASSERT_TRUE(store_->Complete(task.task_id(), task.lease_epoch(), 10, 100));
    ASSERT_TRUE(Report(worker, task, v1::ReportTaskRequest::COPIED).ok());
  }

  v1::HeartbeatResponse Heartbeat(const std::string& worker, const v1::Task& task) {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker);
    request.set_task_id(task.task_id());
    request.set_lease_epoch(task.lease_epoch());
    absl::StatusOr<v1::HeartbeatResponse> response = coordinator().Heartbeat(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::HeartbeatResponse();
  }

  static void AwaitDone(CopyRun& run) {
    ASSERT_TRUE(run.done.WaitForNotificationWithTimeout(absl::Seconds(30)))
        << "the copy did not finish";
  }

  CoordinatorOptions options_;
  FakeClock clock_;
  std::shared_ptr<GatedStore> store_ = std::make_shared<GatedStore>();
  bool no_schema_ = false;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorTest, ChunksThatCommitBeforeTheFirstReadAreThisRunsAndDoneOnesAreNot) {
  const int64_t before = AddTask("m", "done_before", 30);
  AddTask("m", "early", 20);
  AddTask("m", "later", 10);
  // A task finished by an earlier run.
  {
    LeaseRequest request;
    request.worker_id = "earlier";
    request.now = clock_.Now();
    std::optional<Grant> g = *store_->Lease(request);
    ASSERT_TRUE(g.has_value() && g->task.task_id() == before);
    ASSERT_TRUE(store_->Complete(before, g->task.lease_epoch(), 1, 1));
  }
  // Call 1 is the baseline before the job opens; call 2 the loop's first read.
  store_->GateCall(2);
  std::unique_ptr<CopyRun> run = StartCopy();
  const std::string w = Register("w");
  v1::LeaseTaskResponse early = LeaseWhenOpen(w);
  EXPECT_EQ(early.task().source_chunk_name(), "early");
  CopyAndReport(w, early.task());
  store_->Open();
  v1::LeaseTaskResponse later = LeaseWhenOpen(w);
  CopyAndReport(w, later.task());
  AwaitDone(*run);
  ASSERT_TRUE(run->status.ok()) << run->status;
  const v1::CopyProgress last = run->Last();
  EXPECT_TRUE(last.finished());
  EXPECT_EQ(last.tasks_total(), 3);
  EXPECT_EQ(last.tasks_done(), 3);
  EXPECT_EQ(last.tasks_done_at_start(), 1) << "the chunk done before counts as done before";
  std::vector<std::string> copied;
  for (const v1::TaskEvent& e : run->Events()) {
    if (e.outcome() == v1::ReportTaskRequest::COPIED) copied.push_back(e.chunk());
  }
  EXPECT_EQ(copied, (std::vector<std::string>{"_timescaledb_internal.early",
                                              "_timescaledb_internal.later"}));
}

TEST_F(CoordinatorTest, AnExpiredLeaseIsGrantedAgainAndTheLostHolderIsToldAndRefused) {
  AddTask("m", "c1", 10);
  std::unique_ptr<CopyRun> run = StartCopy();
  const std::string w1 = Register("w1");
  const std::string w2 = Register("w2");
  v1::LeaseTaskResponse first = LeaseWhenOpen(w1);
  EXPECT_EQ(first.task().lease_epoch(), 1);
  EXPECT_EQ(Lease(w2).kind(), v1::LeaseTaskResponse::WAIT);
  EXPECT_TRUE(Heartbeat(w1, first.task()).lease_valid());
  clock_.Advance(absl::Seconds(31));
  // The progress loop's next sweep gives the expired lease up, as a failed attempt with its
  // back-off; then it is granted again.
  v1::LeaseTaskResponse second;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
       second.kind() != v1::LeaseTaskResponse::TASK && absl::Now() < deadline;) {
    second = Lease(w2);
    clock_.Advance(absl::Milliseconds(50));
  }
  ASSERT_EQ(second.kind(), v1::LeaseTaskResponse::TASK);
  EXPECT_EQ(second.task().task_id(), first.task().task_id());
  EXPECT_EQ(second.task().lease_epoch(), 2);
  // w1, mid-chunk, learns it lost the lease; its commit is fenced and its report refused.
  EXPECT_FALSE(Heartbeat(w1, first.task()).lease_valid());
  EXPECT_FALSE(store_->Complete(first.task().task_id(), first.task().lease_epoch(), 1, 1));
  EXPECT_EQ(Report(w1, first.task(), v1::ReportTaskRequest::COPIED).code(),
            absl::StatusCode::kFailedPrecondition);
  CopyAndReport(w2, second.task());
  AwaitDone(*run);
  ASSERT_TRUE(run->status.ok()) << run->status;
  std::vector<std::string> workers;
  for (const v1::TaskEvent& e : run->Events()) workers.push_back(e.worker_id());
  EXPECT_EQ(workers, std::vector<std::string>{w2});
}

TEST_F(CoordinatorTest, RetriesBackOffAndTheCopyEndsWithTheLastError) {
  AddTask("m", "c1", 10);
  std::unique_ptr<CopyRun> run = StartCopy();
  const std::string w = Register("w");
  v1::LeaseTaskResponse lease = LeaseWhenOpen(w);
  const absl::Duration backoff[] = {absl::Milliseconds(500), absl::Seconds(1)};
  for (int attempt = 0; attempt < 2; ++attempt) {
    ASSERT_TRUE(
        Report(w, lease.task(), v1::ReportTaskRequest::FAILED, "target restarting", true).ok());
    EXPECT_EQ(Lease(w).kind(), v1::LeaseTaskResponse::WAIT) << "held back " << attempt;
    clock_.Advance(backoff[attempt] + absl::Milliseconds(10));
    lease = Lease(w);
    ASSERT_EQ(lease.kind(), v1::LeaseTaskResponse::TASK) << "retried " << attempt;
    EXPECT_EQ(lease.task().lease_epoch(), attempt + 2);
  }
  ASSERT_TRUE(Report(w, lease.task(), v1::ReportTaskRequest::FAILED, "disk full", true).ok());
  AwaitDone(*run);
  ASSERT_TRUE(run->status.ok()) << run->status;
  const v1::CopyProgress last = run->Last();
  EXPECT_EQ(last.tasks_failed(), 1);
  ASSERT_GT(last.events_size(), 0);
  const v1::TaskEvent& failed = last.events(last.events_size() - 1);
  EXPECT_EQ(failed.outcome(), v1::ReportTaskRequest::FAILED);
  EXPECT_EQ(failed.error(), "disk full");
  EXPECT_EQ(failed.chunk(), "_timescaledb_internal.c1");
}

TEST_F(CoordinatorTest, TheRateIsSharedByTheWorkersHeardFromWithinALeaseTimeout) {
  AddTask("m", "c1", 10);
  v1::CopyRequest request;
  request.set_max_bytes_per_second(1200);
  std::unique_ptr<CopyRun> run = StartCopy(request);
  const std::string w1 = Register("w1");
  v1::LeaseTaskResponse lease = LeaseWhenOpen(w1);
  EXPECT_EQ(lease.max_bytes_per_second(), 1200);
  const std::string w2 = Register("w2");
  EXPECT_EQ(Heartbeat(w1, lease.task()).max_bytes_per_second(), 600);
  const std::string w3 = Register("w3");
  EXPECT_EQ(Heartbeat(w1, lease.task()).max_bytes_per_second(), 400);
  // w2 and w3 go quiet; after a lease timeout they no longer take a share.
  for (int i = 0; i < 7; ++i) {
    clock_.Advance(absl::Seconds(5));
    EXPECT_TRUE(Heartbeat(w1, lease.task()).lease_valid());
  }
  EXPECT_EQ(Heartbeat(w1, lease.task()).max_bytes_per_second(), 1200);
  CopyAndReport(w1, lease.task());
  AwaitDone(*run);
  (void)w2;
  (void)w3;
}

TEST_F(CoordinatorTest, AStoppedTaskIsFreeAtOnceWithoutUsingAnAttempt) {
  options_.max_attempts = 1;
  AddTask("m", "c1", 10);
  std::unique_ptr<CopyRun> run = StartCopy();
  const std::string w1 = Register("w1");
  const std::string w2 = Register("w2");
  v1::LeaseTaskResponse first = LeaseWhenOpen(w1);
  ASSERT_TRUE(Report(w1, first.task(), v1::ReportTaskRequest::ABORTED).ok());
  v1::LeaseTaskResponse second = Lease(w2);
  ASSERT_EQ(second.kind(), v1::LeaseTaskResponse::TASK) << "no expiry to wait for";
  EXPECT_EQ(second.task().lease_epoch(), 2);
  CopyAndReport(w2, second.task());
  AwaitDone(*run);
  EXPECT_EQ(run->Last().tasks_done(), 1);
  EXPECT_EQ(run->Last().tasks_failed(), 0);
}

TEST_F(CoordinatorTest, IdlePollsReachTheStoreOncePerIntervalUntilAReportMayHaveFreedATask) {
  AddTask("m", "c1", 10);
  std::unique_ptr<CopyRun> run = StartCopy();
  const std::string w1 = Register("w1");
  const std::string w2 = Register("w2");
  v1::LeaseTaskResponse lease = LeaseWhenOpen(w1);
  const int before = store_->leases;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Lease(w2).kind(), v1::LeaseTaskResponse::WAIT);
  EXPECT_EQ(store_->leases - before, 1) << "one look, then WAIT without asking";
  clock_.Advance(options_.progress_interval);
  EXPECT_EQ(Lease(w2).kind(), v1::LeaseTaskResponse::WAIT);
  EXPECT_EQ(store_->leases - before, 2) << "an interval later, one more look";
  // A failure gives the task back (after its back-off): the next poll looks at once.
  ASSERT_TRUE(Report(w1, lease.task(), v1::ReportTaskRequest::FAILED, "lost", true).ok());
  EXPECT_EQ(Lease(w2).kind(), v1::LeaseTaskResponse::WAIT);
  EXPECT_EQ(store_->leases - before, 3);
  EXPECT_EQ(Lease(w2).kind(), v1::LeaseTaskResponse::WAIT);
  EXPECT_EQ(store_->leases - before, 3) << "one look per task a report may have freed";
  clock_.Advance(absl::Milliseconds(600));
  v1::LeaseTaskResponse again = Lease(w2);
  ASSERT_EQ(again.kind(), v1::LeaseTaskResponse::TASK) << "granted when its back-off ended";
  CopyAndReport(w2, again.task());
  AwaitDone(*run);
}

TEST_F(CoordinatorTest, TheCapHoldsAcrossWorkers) {
  AddTask("a", "a1", 30);
  AddTask("a", "a2", 20);
  AddTask("b", "b1", 10);
  v1::CopyRequest request;
  request.set_max_chunks_per_hypertable(1);
  std::unique_ptr<CopyRun> run = StartCopy(request);
  const std::string w1 = Register("w1");
  const std::string w2 = Register("w2");
  const std::string w3 = Register("w3");
  v1::LeaseTaskResponse a = LeaseWhenOpen(w1);
  EXPECT_EQ(a.task().source_chunk_name(), "a1");
  v1::LeaseTaskResponse b = Lease(w2);
  EXPECT_EQ(b.task().source_chunk_name(), "b1") << "a2 waits for a1";
  EXPECT_EQ(Lease(w3).kind(), v1::LeaseTaskResponse::WAIT);
  CopyAndReport(w1, a.task());
  v1::LeaseTaskResponse a2 = Lease(w3);
  EXPECT_EQ(a2.task().source_chunk_name(), "a2");
  CopyAndReport(w2, b.task());
  CopyAndReport(w3, a2.task());
  AwaitDone(*run);
  EXPECT_EQ(run->Last().tasks_done(), 3);
}

TEST_F(CoordinatorTest, WhenTheClientGoesAwayNoMoreLeasesAreGranted) {
  AddTask("m", "c1", 20);
  AddTask("m", "c2", 10);
  std::atomic<bool> client_there{true};
  std::unique_ptr<CopyRun> run =
      StartCopy(v1::CopyRequest(), [&client_there] { return client_there.load(); });
  const std::string w = Register("w");
  v1::LeaseTaskResponse lease = LeaseWhenOpen(w);
  client_there = false;
  AwaitDone(*run);
  EXPECT_EQ(run->status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(Lease(w).kind(), v1::LeaseTaskResponse::WAIT);
  // The chunk in progress still commits and reports.
  CopyAndReport(w, lease.task());
}

TEST_F(CoordinatorTest, AVerifyRefusedOrJoiningKeepsTheLastVerificationsResults) {
  const std::string w = Register("w");
  AddTask("m", "c1", 20);
  AddTask("m", "c2", 10);
  {
    std::unique_ptr<CopyRun> copy = StartCopy();
    CopyAndReport(w, LeaseWhenOpen(w).task());
    CopyAndReport(w, LeaseWhenOpen(w).task());
    AwaitDone(*copy);
  }
  // A verification that finds c2 different, with a second verify joining it half-way.
  auto verify = [this](absl::Notification* following = nullptr) {
    return coordinator().Verify(v1::VerifyRequest(), [following](const v1::CopyProgress&) {
      if (following != nullptr && !following->HasBeenNotified()) following->Notify();
      return true;
    });
  };
  absl::StatusOr<v1::VerifyResponse> first, joined;
  std::thread opener([&] { first = verify(); });
  v1::LeaseTaskResponse v1 = LeaseWhenOpen(w);
  ASSERT_EQ(v1.work(), v1::LeaseTaskResponse::VERIFY);
  ASSERT_TRUE(store_->CompleteVerify(v1.task().task_id(), v1.task().lease_epoch(), true,
                                     R"({"matches":true})"));
  ASSERT_TRUE(Report(w, v1.task(), v1::ReportTaskRequest::VERIFIED).ok());
  absl::Notification joiner_follows;
  std::thread joiner([&] { joined = verify(&joiner_follows); });
  ASSERT_TRUE(joiner_follows.WaitForNotificationWithTimeout(absl::Seconds(10)));
  v1::LeaseTaskResponse v2 = LeaseWhenOpen(w);
  ASSERT_TRUE(store_->CompleteVerify(v2.task().task_id(), v2.task().lease_epoch(), false,
                                     R"({"matches":false})"));
  ASSERT_TRUE(Report(w, v2.task(), v1::ReportTaskRequest::VERIFIED).ok());
  opener.join();
  joiner.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(joined.ok()) << joined.status();
  // The joiner did not start the verification again: both saw both chunks, one different.
  EXPECT_EQ(first->chunks_size(), 2);
  EXPECT_EQ(first->mismatches(), 1);
  EXPECT_EQ(joined->mismatches(), 1);

  // A verify refused while a copy runs leaves those results as they were.
  AddTask("m", "c3", 5);
  std::unique_ptr<CopyRun> copy = StartCopy();
  v1::LeaseTaskResponse c3 = LeaseWhenOpen(w);
  absl::StatusOr<v1::VerifyResponse> refused = verify();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  absl::StatusOr<std::vector<VerifyRecord>> records = store_->VerifyRecords();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].report_json, R"({"matches":true})");
  EXPECT_EQ((*records)[1].report_json, R"({"matches":false})");
  // And the copy's holder keeps its lease.
  EXPECT_TRUE(Heartbeat(w, c3.task()).lease_valid());
  CopyAndReport(w, c3.task());
  AwaitDone(*copy);
}

TEST_F(CoordinatorTest, ATargetWithoutTheSchemaSaysWhatToRunFirst) {
  no_schema_ = true;
  absl::Status status =
      coordinator().Copy(v1::CopyRequest(), [](const v1::CopyProgress&) { return true; });
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("run stage first"), std::string::npos) << status;
}

}  // namespace
}  // namespace backfill
