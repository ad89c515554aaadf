#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/task_store_contract.h"

namespace backfill::testing {
namespace {

class MemoryHarness : public StoreHarness {
 public:
  TaskStore& store() override { return store_; }
  absl::Time start() const override { return absl::FromUnixSeconds(1700000000); }
  int64_t Add(const TaskSpec& spec) override { return store_.Add(spec); }
  bool Complete(int64_t task_id, int64_t epoch, int64_t rows, int64_t bytes) override {
    return store_.Complete(task_id, epoch, rows, bytes);
  }
  bool CompleteVerify(int64_t task_id, int64_t epoch, bool matches) override {
    return store_.CompleteVerify(task_id, epoch, matches, matches ? "{\"matches\":true}" : "");
  }
  TargetSession OpenSession() override { return store_.OpenSession(); }
  void CloseSession(const TargetSession& session) override { store_.CloseSession(session); }
  bool AwaitGone(const TargetSession& session) override { return !store_.SessionAlive(session); }
  bool Alive(const TargetSession& session) override { return store_.SessionAlive(session); }

 private:
  MemoryTaskStore store_;
};

TaskSpec Spec(const std::string& hypertable, const std::string& chunk,
              std::optional<int64_t> bytes) {
  TaskSpec spec;
  spec.hypertable_name = hypertable;
  spec.chunk_name = chunk;
  spec.source_bytes = bytes;
  return spec;
}

LeaseRef Ref(const Grant& grant, const std::string& worker) {
  return LeaseRef{grant.task.task_id(), grant.task.lease_epoch(), worker};
}

}  // namespace

std::unique_ptr<StoreHarness> MakeMemoryHarness() { return std::make_unique<MemoryHarness>(); }

void TaskStoreContract::SetUp() {
  harness_ = GetParam().make();
  ASSERT_NE(harness_, nullptr);
  clock_ = std::make_unique<FakeClock>(harness_->start());
  ASSERT_TRUE(harness_->store().Migrate().ok());
}

LeaseRequest TaskStoreContract::Request(const std::string& worker, Work work) const {
  LeaseRequest request;
  request.worker_id = worker;
  request.work = work;
  request.lease_timeout = timeout_;
  request.max_attempts = max_attempts_;
  request.max_per_hypertable = cap_;
  request.now = clock_->Now();
  return request;
}

std::optional<Grant> TaskStoreContract::LeaseFor(const std::string& worker, Work work) {
  absl::StatusOr<std::optional<Grant>> grant = harness_->store().Lease(Request(worker, work));
  EXPECT_TRUE(grant.ok()) << grant.status();
  return grant.ok() ? *grant : std::nullopt;
}

absl::StatusOr<Sweep> TaskStoreContract::SweepFor(Work work) {
  return harness_->store().SweepLeases(work, max_attempts_, clock_->Now());
}

TEST_P(TaskStoreContract, GrantsLargestFirstThenUnsizedAndBumpsTheEpoch) {
  const int64_t small = harness_->Add(Spec("m", "c1", 10));
  const int64_t unsized = harness_->Add(Spec("m", "c2", std::nullopt));
  const int64_t large = harness_->Add(Spec("m", "c3", 30));
  const int64_t middle = harness_->Add(Spec("m", "c4", 20));
  std::vector<int64_t> order;
  while (std::optional<Grant> g = LeaseFor("w1")) {
    EXPECT_EQ(g->task.lease_epoch(), 1);
    EXPECT_EQ(g->task.hypertable_display(), "public.m");
    order.push_back(g->task.task_id());
  }
  EXPECT_EQ(order, (std::vector<int64_t>{large, middle, small, unsized}));
  absl::StatusOr<TaskCounts> counts = harness_->store().Counts(Work::kCopy, 3, clock_->Now());
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->total, 4);
  EXPECT_EQ(counts->leased, 4);
  EXPECT_EQ(counts->done, 0);
}

TEST_P(TaskStoreContract, AnExpiredLeaseIsGrantedAgainAndTheOldHolderIsFencedOut) {
  const int64_t id = harness_->Add(Spec("m", "c1", 10));
  std::optional<Grant> first = LeaseFor("w1");
  ASSERT_TRUE(first.has_value());
  clock_->Advance(absl::Seconds(29));
  EXPECT_FALSE(LeaseFor("w2").has_value()) << "the lease still runs";
  clock_->Advance(absl::Seconds(2));
  TaskStore& store = harness_->store();
  EXPECT_FALSE(LeaseFor("w2").has_value()) << "expired, but held until a sweep gives it up";
  absl::StatusOr<Sweep> sweep = SweepFor(Work::kCopy);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_EQ(sweep->expired.size(), 1u);
  EXPECT_EQ(sweep->expired[0].task_id, id);
  EXPECT_EQ(sweep->expired[0].holder, "w1");
  EXPECT_EQ(sweep->expired[0].chunk, "_timescaledb_internal.c1");
  EXPECT_EQ(sweep->expired[0].attempts, 1) << "an expiry counts as a failed attempt";
  EXPECT_TRUE(sweep->ended.empty()) << "w1 never reported a session";
  EXPECT_TRUE(SweepFor(Work::kCopy)->expired.empty()) << "once";
  EXPECT_FALSE(LeaseFor("w2").has_value()) << "held back as after a failure";
  clock_->Advance(absl::Milliseconds(600));
  std::optional<Grant> second = LeaseFor("w2");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->task.task_id(), id);
  EXPECT_EQ(second->task.lease_epoch(), 2);
  EXPECT_FALSE(*store.HoldsLease(Ref(*first, "w1")));
  EXPECT_FALSE(*store.ExtendLease(Ref(*first, "w1"), timeout_, clock_->Now(), std::nullopt));
  EXPECT_FALSE(*store.RecordFailure(Ref(*first, "w1"), "late", true, 3, clock_->Now()));
  EXPECT_FALSE(*store.ReleaseLease(Ref(*first, "w1")));
  // The old holder's commit finds a newer epoch; the new holder's counts.
  EXPECT_FALSE(harness_->Complete(id, first->task.lease_epoch(), 5, 50));
  EXPECT_TRUE(harness_->Complete(id, second->task.lease_epoch(), 7, 70));
  EXPECT_FALSE(harness_->Complete(id, second->task.lease_epoch(), 7, 70)) << "only once";
  absl::StatusOr<TaskCounts> counts = store.Counts(Work::kCopy, 3, clock_->Now());
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->done, 1);
  EXPECT_EQ(counts->rows, 7);
  EXPECT_EQ(counts->bytes, 70);
  EXPECT_EQ(counts->leased, 0);
}

TEST_P(TaskStoreContract, HeartbeatsKeepALeaseAndACompletedLeaseStaysHeld) {
  const int64_t id = harness_->Add(Spec("m", "c1", 10));
  std::optional<Grant> grant = LeaseFor("w1");
  ASSERT_TRUE(grant.has_value());
  TaskStore& store = harness_->store();
  for (int i = 0; i < 3; ++i) {
    clock_->Advance(absl::Seconds(20));
    EXPECT_TRUE(*store.ExtendLease(Ref(*grant, "w1"), timeout_, clock_->Now(), std::nullopt));
    EXPECT_FALSE(LeaseFor("w2").has_value());
  }
  ASSERT_TRUE(harness_->Complete(id, grant->task.lease_epoch(), 1, 1));
  // A heartbeat that raced the commit is no lost lease.
  EXPECT_TRUE(*store.ExtendLease(Ref(*grant, "w1"), timeout_, clock_->Now(), std::nullopt));
  EXPECT_TRUE(*store.HoldsLease(Ref(*grant, "w1")));
  clock_->Advance(absl::Minutes(5));
  EXPECT_FALSE(LeaseFor("w2").has_value()) << "a done task is never granted";
}

TEST_P(TaskStoreContract, RetryableFailuresBackOffUntilTheAttemptsAreUsedUp) {
  harness_->Add(Spec("m", "c1", 10));
  TaskStore& store = harness_->store();
  const absl::Duration backoff[] = {absl::Milliseconds(500), absl::Seconds(1)};
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::optional<Grant> grant = LeaseFor("w1");
    ASSERT_TRUE(grant.has_value()) << "attempt " << attempt;
    EXPECT_EQ(grant->task.lease_epoch(), attempt + 1);
    ASSERT_TRUE(*store.RecordFailure(Ref(*grant, "w1"), "connection lost", true, max_attempts_,
                                     clock_->Now()));
    EXPECT_FALSE(LeaseFor("w1").has_value()) << "held back after attempt " << attempt;
    clock_->Advance(backoff[attempt] - absl::Milliseconds(100));
    EXPECT_FALSE(LeaseFor("w1").has_value()) << "still held back after attempt " << attempt;
    clock_->Advance(absl::Milliseconds(200));
  }
  std::optional<Grant> last = LeaseFor("w1");
  ASSERT_TRUE(last.has_value());
  ASSERT_TRUE(*store.RecordFailure(Ref(*last, "w1"), "connection lost again", true, max_attempts_,
                                   clock_->Now()));
  clock_->Advance(absl::Minutes(5));
  EXPECT_FALSE(LeaseFor("w1").has_value()) << "attempts used up";
  absl::StatusOr<TaskCounts> counts = store.Counts(Work::kCopy, max_attempts_, clock_->Now());
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->failed, 1);
  absl::StatusOr<std::vector<FailedTask>> failed = store.FailedTasks(max_attempts_);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].chunk, "_timescaledb_internal.c1");
  EXPECT_EQ((*failed)[0].hypertable, "public.m");
  EXPECT_EQ((*failed)[0].error, "connection lost again");
  // The next copy gives the attempts back.
  ASSERT_TRUE(store.ResetFailed().ok());
  EXPECT_TRUE(LeaseFor("w1").has_value());
}

TEST_P(TaskStoreContract, AFailureRetryingCannotFixUsesUpTheAttemptsAtOnce) {
  harness_->Add(Spec("m", "c1", 10));
  std::optional<Grant> grant = LeaseFor("w1");
  ASSERT_TRUE(grant.has_value());
  ASSERT_TRUE(*harness_->store().RecordFailure(Ref(*grant, "w1"), "permission denied", false,
                                               max_attempts_, clock_->Now()));
  clock_->Advance(absl::Minutes(5));
  EXPECT_FALSE(LeaseFor("w1").has_value());
  EXPECT_EQ(harness_->store().Counts(Work::kCopy, max_attempts_, clock_->Now())->failed, 1);
}

TEST_P(TaskStoreContract, AGivenUpLeaseIsFreeAtOnceAndCountsNoAttempt) {
  harness_->Add(Spec("m", "c1", 10));
  max_attempts_ = 1;
  for (int epoch = 1; epoch <= 3; ++epoch) {
    std::optional<Grant> grant = LeaseFor("w1");
    ASSERT_TRUE(grant.has_value()) << "epoch " << epoch;
    EXPECT_EQ(grant->task.lease_epoch(), epoch);
    ASSERT_TRUE(*harness_->store().ReleaseLease(Ref(*grant, "w1")));
  }
}

TEST_P(TaskStoreContract, AChunkWhoseLeasesKeepExpiringUsesUpItsAttempts) {
  // A chunk that kills every worker that takes it (out of memory, say) is not retried without
  // end: each expiry is an attempt, with a failure's back-off.
  harness_->Add(Spec("m", "poison", 30));
  const int64_t other = harness_->Add(Spec("m", "fine", 10));
  for (int attempt = 1; attempt <= max_attempts_; ++attempt) {
    std::optional<Grant> grant = LeaseFor(absl::StrCat("w", attempt));
    ASSERT_TRUE(grant.has_value()) << "attempt " << attempt;
    ASSERT_NE(grant->task.task_id(), other) << "attempt " << attempt << ": the largest first";
    clock_->Advance(absl::Seconds(31));
    absl::StatusOr<Sweep> sweep = SweepFor(Work::kCopy);
    ASSERT_TRUE(sweep.ok()) << sweep.status();
    ASSERT_EQ(sweep->expired.size(), 1u);
    EXPECT_EQ(sweep->expired[0].attempts, attempt);
    clock_->Advance(absl::Minutes(1));  // past any back-off
  }
  std::optional<Grant> next = LeaseFor("w9");
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->task.task_id(), other) << "the poison chunk is not granted again";
  TaskStore& store = harness_->store();
  EXPECT_EQ(store.Counts(Work::kCopy, max_attempts_, clock_->Now())->failed, 1);
  absl::StatusOr<std::vector<FailedTask>> failed = store.FailedTasks(max_attempts_);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].chunk, "_timescaledb_internal.poison");
  EXPECT_EQ((*failed)[0].error,
            absl::StrCat("the lease expired: worker w", max_attempts_, " stopped answering"));
  // The next copy gives the attempts back.
  ASSERT_TRUE(store.ResetFailed().ok());
  std::optional<Grant> again = LeaseFor("w10");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->task.source_chunk_name(), "poison");
}

TEST_P(TaskStoreContract, AnAbortedVerificationIsFreeAtOnce) {
  const int64_t id = harness_->Add(Spec("m", "c1", 10));
  std::optional<Grant> copy = LeaseFor("w1");
  ASSERT_TRUE(copy.has_value());
  ASSERT_TRUE(harness_->Complete(id, copy->task.lease_epoch(), 1, 1));
  ASSERT_EQ(*harness_->store().ResetVerify(), 1);
  std::optional<Grant> v = LeaseFor("v1", Work::kVerify);
  ASSERT_TRUE(v.has_value());
  EXPECT_FALSE(LeaseFor("v2", Work::kVerify).has_value());
  ASSERT_TRUE(*harness_->store().ReleaseLease(Ref(*v, "v1")));
  std::optional<Grant> again = LeaseFor("v2", Work::kVerify);
  ASSERT_TRUE(again.has_value()) << "not after the lease's expiry: now";
  EXPECT_EQ(again->task.task_id(), id);
  ASSERT_TRUE(harness_->CompleteVerify(id, again->task.lease_epoch(), true));
  EXPECT_FALSE(*harness_->store().ReleaseLease(Ref(*again, "v2"))) << "a verified task";
}

TEST_P(TaskStoreContract, TheCapLimitsLeasesPerHypertable) {
  cap_ = 2;
  for (int i = 0; i < 4; ++i) {
    harness_->Add(Spec("a", absl::StrCat("a", i), 100 - i));
    harness_->Add(Spec("b", absl::StrCat("b", i), 10 - i));
  }
  std::map<std::string, std::vector<Grant>> held;
  while (std::optional<Grant> g = LeaseFor("w")) held[g->task.hypertable_name()].push_back(*g);
  ASSERT_EQ(held["a"].size(), 2u);
  ASSERT_EQ(held["b"].size(), 2u);
  EXPECT_EQ(held["a"][0].task.source_chunk_name(), "a0") << "largest first within the cap";
  // A finished one makes room for one more of its hypertable, not of the other.
  const Grant& done = held["b"][0];
  ASSERT_TRUE(harness_->Complete(done.task.task_id(), done.task.lease_epoch(), 1, 1));
  std::optional<Grant> next = LeaseFor("w");
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->task.hypertable_name(), "b");
  EXPECT_FALSE(LeaseFor("w").has_value());
  // An expired lease no longer counts against the cap.
  clock_->Advance(absl::Seconds(31));
  EXPECT_TRUE(LeaseFor("w").has_value());
}

TEST_P(TaskStoreContract, ConcurrentLeasesEachGetATaskOfTheirOwnAndTheCapHolds) {
  for (const char* h : {"a", "b", "c", "d"}) {
    for (int i = 0; i < 10; ++i) harness_->Add(Spec(h, absl::StrCat(h, i), 100 + i));
  }
  // Asked all at once: a store may grant them together (PgTaskStore does).
  const auto lease_all = [this](int callers, const std::string& round) {
    std::vector<std::optional<Grant>> grants(static_cast<size_t>(callers));
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(callers));
    for (int i = 0; i < callers; ++i) {
      threads.emplace_back([&, i] {
        LeaseRequest request = Request(absl::StrCat(round, i));
        absl::StatusOr<std::optional<Grant>> g = harness_->store().Lease(request);
        EXPECT_TRUE(g.ok()) << g.status();
        if (g.ok()) grants[static_cast<size_t>(i)] = *g;
      });
    }
    for (std::thread& t : threads) t.join();
    return grants;
  };
  std::set<int64_t> held;
  std::map<std::string, int> per_hypertable;
  for (const std::optional<Grant>& g : lease_all(24, "w")) {
    ASSERT_TRUE(g.has_value()) << "40 tasks for 24 workers";
    EXPECT_EQ(g->task.lease_epoch(), 1);
    EXPECT_TRUE(held.insert(g->task.task_id()).second) << "task " << g->task.task_id() << " twice";
    ++per_hypertable[g->task.hypertable_name()];
  }
  // Largest first: 6 of each hypertable. Then, under a cap of 8, room for 2 more of each.
  cap_ = 8;
  int granted = 0;
  for (const std::optional<Grant>& g : lease_all(24, "x")) {
    if (!g.has_value()) continue;
    ++granted;
    EXPECT_TRUE(held.insert(g->task.task_id()).second) << "task " << g->task.task_id() << " twice";
    ++per_hypertable[g->task.hypertable_name()];
  }
  EXPECT_EQ(granted, 8);
  for (const auto& [hypertable, n] : per_hypertable) EXPECT_EQ(n, 8) << hypertable;
  absl::StatusOr<TaskCounts> counts = harness_->store().Counts(Work::kCopy, 3, clock_->Now());
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->leased, 32);
}

TEST_P(TaskStoreContract, ASweepReleasesTheLeaseOfASessionThatIsGone) {
  harness_->Add(Spec("m", "c1", 10));
  std::optional<Grant> grant = LeaseFor("w1");
  ASSERT_TRUE(grant.has_value());
  TargetSession session = harness_->OpenSession();
  ASSERT_TRUE(
      *harness_->store().ExtendLease(Ref(*grant, "w1"), timeout_, clock_->Now(), session.pid));
  absl::StatusOr<Sweep> sweep = SweepFor(Work::kCopy);
  ASSERT_TRUE(sweep.ok());
  EXPECT_EQ(sweep->released, 0) << "its session is alive";
  EXPECT_TRUE(sweep->expired.empty());
  EXPECT_FALSE(LeaseFor("w2").has_value());
  harness_->CloseSession(session);
  ASSERT_TRUE(harness_->AwaitGone(session));
  sweep = SweepFor(Work::kCopy);
  ASSERT_TRUE(sweep.ok());
  EXPECT_EQ(sweep->released, 1);
  EXPECT_TRUE(sweep->expired.empty()) << "the holder has until the next sweep to report";
  // Its failure report still counts (an attempt, a back-off).
  clock_->Advance(absl::Milliseconds(100));
  EXPECT_FALSE(LeaseFor("w2").has_value());
  sweep = SweepFor(Work::kCopy);
  ASSERT_EQ(sweep->expired.size(), 1u) << "given up by the next sweep";
  EXPECT_EQ(sweep->expired[0].holder, "w1");
  EXPECT_TRUE(sweep->ended.empty()) << "that session is gone already";
  clock_->Advance(absl::Milliseconds(600));  // the back-off of a first failed attempt
  std::optional<Grant> again = LeaseFor("w2");
  ASSERT_TRUE(again.has_value()) << "granted long before the lease's own expiry";
}

TEST_P(TaskStoreContract, ASweepEndsTheSessionsOfExpiredLeasesAndGivesThemUp) {
  const int64_t a_id = harness_->Add(Spec("m", "a", 20));
  const int64_t b_id = harness_->Add(Spec("m", "b", 10));
  TaskStore& store = harness_->store();
  std::optional<Grant> a = LeaseFor("w1");
  std::optional<Grant> b = LeaseFor("w2");
  ASSERT_TRUE(a.has_value() && b.has_value());
  TargetSession sa = harness_->OpenSession();
  TargetSession sb = harness_->OpenSession();
  ASSERT_TRUE(*store.ExtendLease(Ref(*a, "w1"), timeout_, clock_->Now(), sa.pid));
  clock_->Advance(absl::Seconds(20));
  ASSERT_TRUE(*store.ExtendLease(Ref(*b, "w2"), timeout_, clock_->Now(), sb.pid));
  clock_->Advance(absl::Seconds(11));  // a expired, b runs
  absl::StatusOr<Sweep> sweep = SweepFor(Work::kCopy);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_EQ(sweep->ended.size(), 1u);
  EXPECT_EQ(sweep->ended[0].task_id, a_id);
  EXPECT_EQ(sweep->ended[0].holder, "w1");
  EXPECT_TRUE(harness_->AwaitGone(sa));
  ASSERT_EQ(sweep->expired.size(), 1u);
  EXPECT_EQ(sweep->expired[0].task_id, a_id);
  EXPECT_EQ(sweep->expired[0].holder, "w1");
  EXPECT_TRUE(harness_->Alive(sb));
  clock_->Advance(absl::Milliseconds(600));
  std::optional<Grant> again = LeaseFor("w3");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->task.task_id(), a_id);
  EXPECT_FALSE(LeaseFor("w3").has_value()) << "b is still held";
  // Verification leases are swept by a verify job's sweep, copies' by a copy job's.
  ASSERT_TRUE(harness_->Complete(b_id, b->task.lease_epoch(), 1, 1));
  ASSERT_TRUE(harness_->Complete(a_id, again->task.lease_epoch(), 1, 1));
  ASSERT_EQ(*store.ResetVerify(), 2);
  std::optional<Grant> v = LeaseFor("v", Work::kVerify);
  ASSERT_TRUE(v.has_value());
  clock_->Advance(absl::Seconds(31));
  EXPECT_TRUE(SweepFor(Work::kCopy)->expired.empty());
  sweep = SweepFor(Work::kVerify);
  ASSERT_EQ(sweep->expired.size(), 1u);
  EXPECT_EQ(sweep->expired[0].holder, "v");
  clock_->Advance(absl::Milliseconds(600));
  std::optional<Grant> v2 = LeaseFor("v2", Work::kVerify);
  ASSERT_TRUE(v2.has_value());
  EXPECT_EQ(v2->task.task_id(), v->task.task_id());
  harness_->CloseSession(sb);
}

TEST_P(TaskStoreContract, VerifyLeasesCopiedTasksAndRepairReopensTheMismatches) {
  TaskStore& store = harness_->store();
  absl::StatusOr<std::vector<std::string>> nothing = store.ReopenMismatched();
  EXPECT_EQ(nothing.status().code(), absl::StatusCode::kFailedPrecondition);
  const int64_t t1 = harness_->Add(Spec("m", "c1", 10));
  const int64_t t2 = harness_->Add(Spec("m", "c2", 20));
  harness_->Add(Spec("m", "c3", 30));
  for (int i = 0; i < 2; ++i) {
    std::optional<Grant> g = LeaseFor("w");
    ASSERT_TRUE(g.has_value());
    ASSERT_TRUE(harness_->Complete(g->task.task_id(), g->task.lease_epoch(), 1, 1));
  }
  ASSERT_EQ(*store.ResetVerify(), 2);
  EXPECT_EQ(store.Counts(Work::kVerify, 3, clock_->Now())->total, 2);
  std::vector<int64_t> verified;
  while (std::optional<Grant> g = LeaseFor("v", Work::kVerify)) {
    verified.push_back(g->task.task_id());
    const bool matches = g->task.task_id() != t2;
    ASSERT_TRUE(harness_->CompleteVerify(g->task.task_id(), g->task.lease_epoch(), matches));
  }
  // Task order; the copied ones only (c3 was largest, so c2 and c3 were copied).
  const int64_t t3 = t2 + 1;
  EXPECT_EQ(verified, (std::vector<int64_t>{t2, t3}));
  absl::StatusOr<TaskCounts> counts = store.Counts(Work::kVerify, 3, clock_->Now());
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->total, 2);
  EXPECT_EQ(counts->done, 2);
  EXPECT_EQ(counts->mismatches, 1);
  absl::StatusOr<std::vector<VerifyRecord>> records = store.VerifyRecords();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].source_chunk, "_timescaledb_internal.c2");
  absl::StatusOr<std::vector<std::string>> reopened = store.ReopenMismatched();
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(*reopened, std::vector<std::string>{"_timescaledb_internal.c2"});
  counts = store.Counts(Work::kCopy, 3, clock_->Now());
  EXPECT_EQ(counts->done, 1);
  EXPECT_EQ(counts->rows, 1) << "the re-opened task's rows no longer count";
  // Re-opened and the never-copied one are granted again, largest first.
  std::optional<Grant> g = LeaseFor("w");
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->task.task_id(), t2);
  EXPECT_EQ(g->task.lease_epoch(), 4) << "copy 1, verify 2, the repair 3: past any old lease";
  // A new verify forgets every verification (and the counts with them).
  ASSERT_EQ(*store.ResetVerify(), 1) << "c3 is the one copied task left";
  counts = store.Counts(Work::kVerify, 3, clock_->Now());
  EXPECT_EQ(counts->total, 1);
  EXPECT_EQ(counts->done, 0);
  EXPECT_EQ(counts->mismatches, 0);
  (void)t1;
}

TEST_P(TaskStoreContract, ACopyThatCommitsAfterVerifyBeganIsVerifiedToo) {
  const int64_t early = harness_->Add(Spec("m", "early", 20));
  const int64_t late = harness_->Add(Spec("m", "late", 10));
  std::optional<Grant> e = LeaseFor("w1");
  std::optional<Grant> l = LeaseFor("w2");
  ASSERT_TRUE(e.has_value() && l.has_value());
  ASSERT_TRUE(harness_->Complete(early, e->task.lease_epoch(), 1, 1));
  TaskStore& store = harness_->store();
  ASSERT_EQ(*store.ResetVerify(), 1);
  // w2's copy was still running (a copy stopped with one Ctrl-C) and commits now.
  ASSERT_TRUE(harness_->Complete(late, l->task.lease_epoch(), 1, 1));
  std::vector<int64_t> verified;
  while (std::optional<Grant> g = LeaseFor("v", Work::kVerify)) {
    verified.push_back(g->task.task_id());
    ASSERT_TRUE(harness_->CompleteVerify(g->task.task_id(), g->task.lease_epoch(), true));
  }
  EXPECT_EQ(verified, (std::vector<int64_t>{early, late}));
  absl::StatusOr<TaskCounts> counts = store.Counts(Work::kVerify, 3, clock_->Now());
  EXPECT_EQ(counts->total, 2);
  EXPECT_EQ(counts->done, 2) << "nothing left that no lease can reach";
}

TEST_P(TaskStoreContract, TheThrottleKeepsWhatIsNotGiven) {
  TaskStore& store = harness_->store();
  absl::StatusOr<std::optional<Throttle>> t = store.ReadThrottle();
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->has_value());
  EXPECT_EQ((*t)->max_bytes_per_second, 0);
  ASSERT_TRUE(store.SetThrottle(1000, std::nullopt).ok());
  ASSERT_TRUE(store.SetThrottle(std::nullopt, 4).ok());
  t = store.ReadThrottle();
  EXPECT_EQ((*t)->max_bytes_per_second, 1000);
  EXPECT_EQ((*t)->max_chunks_per_hypertable, 4);
}

}  // namespace backfill::testing
