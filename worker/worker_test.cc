// The worker loop without a database or a coordinator: a scripted coordinator client hands
// out leases and answers heartbeats, and a fake executor stands in for the copy, blocking
// until the test lets it finish or a cancel reaches it. Every wait polls for a condition.
#include "worker/worker.h"

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace backfill {
namespace {

constexpr absl::Duration kPatience = absl::Seconds(10);

class FakeCoordinator : public CoordinatorClient {
 public:
  // Leased in order; then every request is answered "nothing for now".
  void AddTask(int64_t task_id, v1::LeaseTaskResponse::Work work = v1::LeaseTaskResponse::COPY) {
    absl::MutexLock lock(&mu_);
    v1::LeaseTaskResponse lease;
    lease.set_kind(v1::LeaseTaskResponse::TASK);
    lease.set_work(work);
    lease.mutable_task()->set_task_id(task_id);
    lease.mutable_task()->set_lease_epoch(task_id * 10);
    lease.mutable_task()->set_source_chunk_schema("_timescaledb_internal");
    lease.mutable_task()->set_source_chunk_name("_hyper_1_" + std::to_string(task_id) + "_chunk");
    lease.mutable_databases()->set_source("source");
    lease.mutable_databases()->set_target("target");
    pending_.push_back(lease);
  }
  void FailRegistrations(int n) {
    absl::MutexLock lock(&mu_);
    register_failures_ = n;
  }
  // Heartbeats about this task answer that its lease is gone.
  void LoseLease(int64_t task_id) {
    absl::MutexLock lock(&mu_);
    lost_task_ = task_id;
  }

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request) override {
    absl::MutexLock lock(&mu_);
    ++registrations_;
    if (register_failures_ > 0) {
      --register_failures_;
      return absl::UnavailableError("coordinator not reachable");
    }
    v1::RegisterWorkerResponse response;
    response.set_worker_id("w-" + request.worker_name());
    response.set_heartbeat_interval_ms(10);
    return response;
  }
  absl::StatusOr<v1::LeaseTaskResponse> LeaseTask(const v1::LeaseTaskRequest&) override {
    absl::MutexLock lock(&mu_);
    ++lease_calls_;
    auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !lease_gate_closed_; };
    mu_.Await(absl::Condition(&open));
    if (pending_.empty()) {
      v1::LeaseTaskResponse nothing;
      nothing.set_kind(v1::LeaseTaskResponse::WAIT);
      nothing.set_retry_after_ms(1);
      return nothing;
    }
    v1::LeaseTaskResponse lease = pending_.front();
    pending_.pop_front();
    ++granted_;
    return lease;
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) override {
    absl::MutexLock lock(&mu_);
    heartbeats_.push_back(request);
    v1::HeartbeatResponse response;
    response.set_lease_valid(request.task_id() != lost_task_);
    return response;
  }
  absl::Status ReportTask(const v1::ReportTaskRequest& request) override {
    absl::MutexLock lock(&mu_);
    reports_.push_back(request);
    return absl::OkStatus();
  }

  // Lease requests wait until OpenLeaseGate().
  void CloseLeaseGate() {
    absl::MutexLock lock(&mu_);
    lease_gate_closed_ = true;
  }
  void OpenLeaseGate() {
    absl::MutexLock lock(&mu_);
    lease_gate_closed_ = false;
  }
  bool AwaitLeaseCall() {
    absl::MutexLock lock(&mu_);
    auto called = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return lease_calls_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&called), kPatience);
  }

  bool AwaitReports(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return reports_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kPatience);
  }
  std::vector<v1::ReportTaskRequest> reports() {
    absl::MutexLock lock(&mu_);
    return reports_;
  }
  std::vector<v1::HeartbeatRequest> heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  int granted() {
    absl::MutexLock lock(&mu_);
    return granted_;
  }
  int registrations() {
    absl::MutexLock lock(&mu_);
    return registrations_;
  }

 private:
  absl::Mutex mu_;
  std::deque<v1::LeaseTaskResponse> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ReportTaskRequest> reports_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::HeartbeatRequest> heartbeats_ ABSL_GUARDED_BY(mu_);
  int register_failures_ ABSL_GUARDED_BY(mu_) = 0;
  int registrations_ ABSL_GUARDED_BY(mu_) = 0;
  int granted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lost_task_ ABSL_GUARDED_BY(mu_) = -1;
  bool lease_gate_closed_ ABSL_GUARDED_BY(mu_) = false;
  int lease_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// Counts sessions and runs. A held task waits until Release() or a cancel; like a statement,
// a cancel reaches it only while it runs.
class FakeExecutor : public TaskExecutor {
 public:
  absl::Status Connect(const v1::LeaseTaskResponse&) override {
    absl::MutexLock lock(&mu_);
    if (connect_failures_ > 0) {
      --connect_failures_;
      return absl::UnavailableError("target: connection refused");
    }
    if (!connected_) ++sessions_opened_;
    connected_ = true;
    return absl::OkStatus();
  }
  int TargetBackendPid() const override { return 4242; }
  void Run(const v1::LeaseTaskResponse& lease, RateLimiter*,
           v1::ReportTaskRequest* report) override {
    absl::MutexLock lock(&mu_);
    running_ = true;
    cancelled_ = false;
    ++runs_;
    auto over = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !hold_ || cancelled_; };
    // A test that never lets the task go fails instead of hanging.
    const bool let_go = mu_.AwaitWithTimeout(absl::Condition(&over), kPatience);
    running_ = false;
    if (!let_go) {
      ADD_FAILURE() << "task " << lease.task().task_id() << " was neither released nor cancelled";
      report->set_outcome(v1::ReportTaskRequest::FAILED);
      return;
    }
    if (cancelled_) {
      report->set_outcome(v1::ReportTaskRequest::FAILED);
      report->set_error("target: canceling statement due to user request");
      return;
    }
    report->set_outcome(lease.work() == v1::LeaseTaskResponse::VERIFY
                            ? v1::ReportTaskRequest::VERIFIED
                            : v1::ReportTaskRequest::COPIED);
    report->set_rows(lease.task().task_id() * 100);
  }
  void Cancel() override {
    absl::MutexLock lock(&mu_);
    if (running_) cancelled_ = true;
  }
  void Disconnect() override {
    absl::MutexLock lock(&mu_);
    connected_ = false;
    ++disconnects_;
  }

  void Hold() {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    hold_ = false;
  }
  void FailConnects(int n) {
    absl::MutexLock lock(&mu_);
    connect_failures_ = n;
  }
  bool AwaitRunning() {
    absl::MutexLock lock(&mu_);
    auto running = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_; };
    return mu_.AwaitWithTimeout(absl::Condition(&running), kPatience);
  }
  int runs() {
    absl::MutexLock lock(&mu_);
    return runs_;
  }
  int sessions_opened() {
    absl::MutexLock lock(&mu_);
    return sessions_opened_;
  }
  int disconnects() {
    absl::MutexLock lock(&mu_);
    return disconnects_;
  }

 private:
  absl::Mutex mu_;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  int connect_failures_ ABSL_GUARDED_BY(mu_) = 0;
  int runs_ ABSL_GUARDED_BY(mu_) = 0;
  int sessions_opened_ ABSL_GUARDED_BY(mu_) = 0;
  int disconnects_ ABSL_GUARDED_BY(mu_) = 0;
};

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() {
    options_.name = "test";
    options_.retry_delay = absl::Milliseconds(1);
  }
  ~WorkerTest() override {
    if (worker_ != nullptr) worker_->Stop();
    if (thread_.joinable()) thread_.join();
  }

  void Start() {
    auto executor = std::make_unique<FakeExecutor>();
    executor_ = executor.get();
    if (hold_) executor_->Hold();
    executor_->FailConnects(connect_failures_);
    worker_ = std::make_unique<Worker>(options_, &coordinator_, nullptr, std::move(executor));
    thread_ = std::thread([this] {
      worker_->Run();
      returned_.Notify();
    });
  }
  // Stop() and wait for Run() to return.
  bool StopAndJoin() {
    worker_->Stop();
    return returned_.WaitForNotificationWithTimeout(kPatience);
  }

  WorkerOptions options_;
  bool hold_ = false;         // the executor holds every task until released
  int connect_failures_ = 0;  // the executor's first sessions that cannot open
  FakeCoordinator coordinator_;
  FakeExecutor* executor_ = nullptr;
  std::unique_ptr<Worker> worker_;
  std::thread thread_;
  absl::Notification returned_;
};

TEST_F(WorkerTest, CopiesEachLeasedTaskAndReportsItWithItsEpoch) {
  for (int64_t id = 1; id <= 3; ++id) coordinator_.AddTask(id);
  coordinator_.AddTask(4, v1::LeaseTaskResponse::VERIFY);
  Start();
  ASSERT_TRUE(coordinator_.AwaitReports(4));
  ASSERT_TRUE(StopAndJoin());
  std::vector<v1::ReportTaskRequest> reports = coordinator_.reports();
  ASSERT_EQ(reports.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(reports[i].task_id(), i + 1);
    EXPECT_EQ(reports[i].lease_epoch(), (i + 1) * 10);
    EXPECT_EQ(reports[i].worker_id(), "w-test");
    EXPECT_EQ(reports[i].rows(), (i + 1) * 100);
  }
  EXPECT_EQ(reports[0].outcome(), v1::ReportTaskRequest::COPIED);
  EXPECT_EQ(reports[3].outcome(), v1::ReportTaskRequest::VERIFIED);
  // Every task's first heartbeat says which target session holds its lease.
  std::vector<int64_t> beaten;
  for (const v1::HeartbeatRequest& beat : coordinator_.heartbeats()) {
    EXPECT_EQ(beat.target_backend_pid(), 4242);
    if (beaten.empty() || beaten.back() != beat.task_id()) beaten.push_back(beat.task_id());
  }
  EXPECT_EQ(beaten, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(executor_->sessions_opened(), 1);
}

TEST_F(WorkerTest, RegistersAgainUntilTheCoordinatorAnswers) {
  coordinator_.FailRegistrations(3);
  coordinator_.AddTask(1);
  Start();
  ASSERT_TRUE(coordinator_.AwaitReports(1));
  EXPECT_EQ(coordinator_.registrations(), 4);
  EXPECT_EQ(coordinator_.reports()[0].outcome(), v1::ReportTaskRequest::COPIED);
}

TEST_F(WorkerTest, OpensFreshSessionsAfterEveryNTasks) {
  options_.reconnect_every = 2;
  for (int64_t id = 1; id <= 5; ++id) coordinator_.AddTask(id);
  Start();
  ASSERT_TRUE(coordinator_.AwaitReports(5));
  ASSERT_TRUE(StopAndJoin());
  // Sessions for tasks 1-2, 3-4 and 5: dropped after the second and the fourth.
  EXPECT_EQ(executor_->disconnects(), 2);
  EXPECT_EQ(executor_->sessions_opened(), 3);
}

TEST_F(WorkerTest, StopDuringATaskFinishesItAndLeasesNoMore) {
  hold_ = true;
  coordinator_.AddTask(1);
  coordinator_.AddTask(2);
  Start();
  ASSERT_TRUE(executor_->AwaitRunning());
  worker_->Stop();
  // Still copying: a stop waits for the task in progress.
  EXPECT_FALSE(returned_.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  EXPECT_TRUE(coordinator_.reports().empty());
  executor_->Release();
  ASSERT_TRUE(returned_.WaitForNotificationWithTimeout(kPatience));
  std::vector<v1::ReportTaskRequest> reports = coordinator_.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].task_id(), 1);
  EXPECT_EQ(reports[0].outcome(), v1::ReportTaskRequest::COPIED);
  EXPECT_EQ(coordinator_.granted(), 1);
  EXPECT_EQ(executor_->runs(), 1);
}

TEST_F(WorkerTest, AbortDuringATaskCancelsItAndReportsItAborted) {
  hold_ = true;
  coordinator_.AddTask(1);
  coordinator_.AddTask(2);
  Start();
  ASSERT_TRUE(executor_->AwaitRunning());
  ASSERT_TRUE(worker_->Abort(kPatience));
  ASSERT_TRUE(returned_.WaitForNotificationWithTimeout(kPatience));
  std::vector<v1::ReportTaskRequest> reports = coordinator_.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].task_id(), 1);
  EXPECT_EQ(reports[0].outcome(), v1::ReportTaskRequest::ABORTED);
  EXPECT_EQ(coordinator_.granted(), 1);
}

TEST_F(WorkerTest, ALeaseGrantedAsTheAbortBeganIsGivenBackUnstarted) {
  coordinator_.AddTask(1);
  coordinator_.CloseLeaseGate();
  Start();
  ASSERT_TRUE(coordinator_.AwaitLeaseCall());
  // The abort begins while the request is in flight: with no time to wait, it only marks the
  // worker aborting.
  EXPECT_FALSE(worker_->Abort(absl::ZeroDuration()));
  coordinator_.OpenLeaseGate();
  ASSERT_TRUE(returned_.WaitForNotificationWithTimeout(kPatience));
  std::vector<v1::ReportTaskRequest> reports = coordinator_.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].task_id(), 1);
  EXPECT_EQ(reports[0].lease_epoch(), 10);
  EXPECT_EQ(reports[0].outcome(), v1::ReportTaskRequest::ABORTED);
  EXPECT_EQ(executor_->runs(), 0);
}

TEST_F(WorkerTest, LosingTheLeaseMidChunkCancelsTheCopyAndReportsItFenced) {
  hold_ = true;
  coordinator_.AddTask(1);
  coordinator_.LoseLease(1);
  coordinator_.AddTask(2);
  Start();
  // Task 1 is held until the heartbeat's answer cancels it; task 2 then runs held too.
  ASSERT_TRUE(coordinator_.AwaitReports(1));
  v1::ReportTaskRequest first = coordinator_.reports()[0];
  EXPECT_EQ(first.task_id(), 1);
  EXPECT_EQ(first.outcome(), v1::ReportTaskRequest::FENCED);
  executor_->Release();
  ASSERT_TRUE(coordinator_.AwaitReports(2));
  EXPECT_EQ(coordinator_.reports()[1].outcome(), v1::ReportTaskRequest::COPIED);
}

TEST_F(WorkerTest, ASessionThatCannotOpenFailsTheTaskRetryably) {
  connect_failures_ = 1;
  coordinator_.AddTask(1);
  coordinator_.AddTask(2);
  Start();
  ASSERT_TRUE(coordinator_.AwaitReports(2));
  std::vector<v1::ReportTaskRequest> reports = coordinator_.reports();
  EXPECT_EQ(reports[0].task_id(), 1);
  EXPECT_EQ(reports[0].outcome(), v1::ReportTaskRequest::FAILED);
  EXPECT_TRUE(reports[0].retryable());
  EXPECT_EQ(reports[0].error(), "target: connection refused");
  EXPECT_EQ(reports[1].outcome(), v1::ReportTaskRequest::COPIED);
  EXPECT_EQ(executor_->runs(), 1);
}

}  // namespace
}  // namespace backfill
