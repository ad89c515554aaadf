#include "coordinator/lease_batcher.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace backfill {
namespace {

// Stands in for the grant statement: each worker "wN" gets task N, and every group is kept.
// The first group waits until Release() when `hold_first` is set, so that others queue.
class FakeGrants {
 public:
  explicit FakeGrants(bool hold_first) : hold_first_(hold_first) {}

  LeaseBatcher::GrantMany Fn() {
    return [this](const LeaseRequest& settings, const std::vector<std::string>& workers)
               -> absl::StatusOr<std::vector<std::optional<Grant>>> {
      const int running = ++running_;
      int most = most_running_.load();
      while (running > most && !most_running_.compare_exchange_weak(most, running)) {
      }
      bool first = false;
      {
        absl::MutexLock lock(&mu_);
        first = groups_.empty();
        groups_.push_back(Group{settings, workers});
      }
      if (first && hold_first_) release_.WaitForNotification();
      --running_;
      if (fail_) return absl::UnavailableError("the target restarts");
      std::vector<std::optional<Grant>> grants(workers.size());
      for (size_t i = 0; i < workers.size() && i < tasks_left_; ++i) {
        int64_t n = 0;
        EXPECT_TRUE(absl::SimpleAtoi(workers[i].substr(1), &n)) << workers[i];
        grants[i].emplace().task.set_task_id(n);
      }
      return grants;
    };
  }

  struct Group {
    LeaseRequest settings;
    std::vector<std::string> workers;
  };
  std::vector<Group> Groups() {
    absl::MutexLock lock(&mu_);
    return groups_;
  }
  void Release() { release_.Notify(); }

  std::atomic<int> running_{0};
  std::atomic<int> most_running_{0};
  std::atomic<bool> fail_{false};
  size_t tasks_left_ = 1000;

 private:
  const bool hold_first_;
  absl::Notification release_;
  absl::Mutex mu_;
  std::vector<Group> groups_ ABSL_GUARDED_BY(mu_);
};

LeaseRequest Ask(int worker, Work work = Work::kCopy) {
  LeaseRequest r;
  r.worker_id = absl::StrCat("w", worker);
  r.work = work;
  r.now = absl::FromUnixSeconds(1700000000 + worker);
  return r;
}

// Lease calls on threads of their own, each result kept by worker number.
class Callers {
 public:
  explicit Callers(LeaseBatcher* batcher) : batcher_(batcher) {}
  ~Callers() { Join(); }
  void Start(const LeaseRequest& request) {
    // Each thread writes through its own pointer: results_ grows while threads run.
    auto* slot =
        results_.emplace_back(std::make_unique<absl::StatusOr<std::optional<Grant>>>()).get();
    threads_.emplace_back([this, request, slot] { *slot = batcher_->Lease(request); });
  }
  void Join() {
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  const absl::StatusOr<std::optional<Grant>>& Result(int i) const { return *results_[i]; }

 private:
  LeaseBatcher* batcher_;
  std::vector<std::unique_ptr<absl::StatusOr<std::optional<Grant>>>> results_;
  std::vector<std::thread> threads_;
};

// Polls (10 s at most) until `n` requests wait for a group.
bool AwaitWaiting(LeaseBatcher& batcher, size_t n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (batcher.Waiting() != n) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

TEST(LeaseBatcherTest, ALoneRequestIsGrantedAtOnceUnderItsOwnSettings) {
  FakeGrants fake(false);
  LeaseBatcher batcher(fake.Fn(), 2, 64);
  LeaseRequest request = Ask(7);
  request.max_per_hypertable = 3;
  absl::StatusOr<std::optional<Grant>> grant = batcher.Lease(request);
  ASSERT_TRUE(grant.ok() && grant->has_value());
  EXPECT_EQ((*grant)->task.task_id(), 7);
  std::vector<FakeGrants::Group> groups = fake.Groups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].workers, std::vector<std::string>{"w7"});
  EXPECT_EQ(groups[0].settings.max_per_hypertable, 3);
  EXPECT_EQ(groups[0].settings.now, request.now);
}

TEST(LeaseBatcherTest, RequestsArrivingWhileAGroupRunsAreGrantedTogetherEachItsOwn) {
  FakeGrants fake(true);
  LeaseBatcher batcher(fake.Fn(), 1, 64);
  Callers callers(&batcher);
  callers.Start(Ask(0));
  ASSERT_TRUE(AwaitWaiting(batcher, 0));
  while (fake.Groups().empty()) absl::SleepFor(absl::Milliseconds(1));
  for (int i = 1; i <= 10; ++i) callers.Start(Ask(i));
  ASSERT_TRUE(AwaitWaiting(batcher, 10));
  fake.Release();
  callers.Join();
  std::vector<FakeGrants::Group> groups = fake.Groups();
  ASSERT_EQ(groups.size(), 2u) << "one statement for the ten that queued";
  EXPECT_EQ(groups[1].workers.size(), 10u);
  absl::Time latest = absl::InfinitePast();
  for (int i = 0; i <= 10; ++i) {
    ASSERT_TRUE(callers.Result(i).ok() && callers.Result(i)->has_value()) << i;
    EXPECT_EQ((*callers.Result(i))->task.task_id(), i) << "each gets the grant made for it";
    if (i > 0) latest = std::max(latest, Ask(i).now);
  }
  EXPECT_EQ(groups[1].settings.now, latest) << "a group grants at its latest clock";
}

TEST(LeaseBatcherTest, OnlyRequestsUnderTheSameSettingsGroupAndGroupsStayUnderTheirSize) {
  FakeGrants fake(true);
  LeaseBatcher batcher(fake.Fn(), 1, 4);
  Callers callers(&batcher);
  callers.Start(Ask(0));
  while (fake.Groups().empty()) absl::SleepFor(absl::Milliseconds(1));
  // Queued in this order: copies 1-6 (among themselves in any order), verifications 7-8, a
  // copy under a cap 9.
  for (int i = 1; i <= 6; ++i) callers.Start(Ask(i));
  ASSERT_TRUE(AwaitWaiting(batcher, 6));
  for (int i = 7; i <= 8; ++i) callers.Start(Ask(i, Work::kVerify));
  ASSERT_TRUE(AwaitWaiting(batcher, 8));
  LeaseRequest capped = Ask(9);
  capped.max_per_hypertable = 2;
  callers.Start(capped);
  ASSERT_TRUE(AwaitWaiting(batcher, 9));
  fake.Release();
  callers.Join();
  std::vector<FakeGrants::Group> groups = fake.Groups();
  ASSERT_EQ(groups.size(), 5u);
  EXPECT_EQ(groups[1].workers.size(), 4u) << "at most max_group";
  EXPECT_EQ(groups[1].settings.work, Work::kCopy);
  EXPECT_EQ(groups[2].workers.size(), 2u) << "the oldest waiting request's group comes next";
  EXPECT_EQ(groups[2].settings.work, Work::kCopy);
  std::vector<std::string> copies = groups[1].workers;
  copies.insert(copies.end(), groups[2].workers.begin(), groups[2].workers.end());
  std::sort(copies.begin(), copies.end());
  EXPECT_EQ(copies, (std::vector<std::string>{"w1", "w2", "w3", "w4", "w5", "w6"}));
  std::vector<std::string> verifications = groups[3].workers;
  std::sort(verifications.begin(), verifications.end());
  EXPECT_EQ(verifications, (std::vector<std::string>{"w7", "w8"}));
  EXPECT_EQ(groups[3].settings.work, Work::kVerify);
  EXPECT_EQ(groups[4].workers, std::vector<std::string>{"w9"});
  EXPECT_EQ(groups[4].settings.max_per_hypertable, 2);
  for (int i = 0; i <= 9; ++i) {
    ASSERT_TRUE(callers.Result(i).ok() && callers.Result(i)->has_value()) << i;
    EXPECT_EQ((*callers.Result(i))->task.task_id(), i);
  }
}

TEST(LeaseBatcherTest, TheOldestAreServedWhenTasksRunShortAndAnErrorReachesItsWholeGroup) {
  FakeGrants fake(true);
  fake.tasks_left_ = 2;
  LeaseBatcher batcher(fake.Fn(), 1, 64);
  Callers callers(&batcher);
  callers.Start(Ask(0));
  while (fake.Groups().empty()) absl::SleepFor(absl::Milliseconds(1));
  for (int i = 1; i <= 3; ++i) callers.Start(Ask(i));
  ASSERT_TRUE(AwaitWaiting(batcher, 3));
  fake.Release();
  callers.Join();
  std::vector<FakeGrants::Group> groups = fake.Groups();
  ASSERT_EQ(groups.size(), 2u);
  ASSERT_EQ(groups[1].workers.size(), 3u);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(callers.Result(i).ok()) << i;
    const bool youngest = groups[1].workers.back() == absl::StrCat("w", i);
    EXPECT_EQ(callers.Result(i)->has_value(), !youngest) << "no task left for the youngest";
  }

  fake.fail_ = true;
  Callers failing(&batcher);
  for (int i = 0; i < 3; ++i) failing.Start(Ask(i));
  failing.Join();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(failing.Result(i).status().code(), absl::StatusCode::kUnavailable) << i;
  }
}

TEST(LeaseBatcherTest, NoMoreThanMaxRunningGroupsAtOnceAndEveryRequestIsServed) {
  FakeGrants fake(false);
  LeaseBatcher batcher(fake.Fn(), 2, 8);
  constexpr int kCallers = 64;
  constexpr int kRounds = 50;
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  threads.reserve(kCallers);
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < kRounds; ++r) {
        absl::StatusOr<std::optional<Grant>> g = batcher.Lease(Ask(i));
        if (g.ok() && g->has_value() && (*g)->task.task_id() == i) ++granted;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(granted.load(), kCallers * kRounds);
  EXPECT_LE(fake.most_running_.load(), 2);
  EXPECT_EQ(batcher.Waiting(), 0u);
}

}  // namespace
}  // namespace backfill
