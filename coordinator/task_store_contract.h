// The contract every TaskStore keeps, as a parameterized test: the unit tests run it on
// MemoryTaskStore, the integration tests on PgTaskStore in a throwaway PostgreSQL, so the
// in-memory store the coordinator's unit tests use behaves as the target's statements do.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "common/clock.h"
#include "coordinator/memory_task_store.h"
#include "coordinator/task_store.h"
#include "gtest/gtest.h"

namespace backfill::testing {

// A store to test, with the parts of the target the coordinator does not own: the stager's
// inserts, the worker's completing statements and database sessions.
class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  virtual TaskStore& store() = 0;
  // Where the test's clock starts (PostgreSQL: its own now, so timestamps are sane).
  virtual absl::Time start() const = 0;
  virtual int64_t Add(const TaskSpec& spec) = 0;
  virtual bool Complete(int64_t task_id, int64_t epoch, int64_t rows, int64_t bytes) = 0;
  virtual bool CompleteVerify(int64_t task_id, int64_t epoch, bool matches) = 0;
  virtual TargetSession OpenSession() = 0;
  virtual void CloseSession(const TargetSession& session) = 0;
  // Waits (a while) for the session to be gone; false if it is still there.
  virtual bool AwaitGone(const TargetSession& session) = 0;
  virtual bool Alive(const TargetSession& session) = 0;
};

struct StoreKind {
  std::string name;
  std::function<std::unique_ptr<StoreHarness>()> make;
};
inline void PrintTo(const StoreKind& kind, std::ostream* os) { *os << kind.name; }

class TaskStoreContract : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override;
  LeaseRequest Request(const std::string& worker, Work work = Work::kCopy) const;
  // Leases for `worker`; the granted task, or nullopt.
  std::optional<Grant> LeaseFor(const std::string& worker, Work work = Work::kCopy);
  // Sweeps `work`'s leases at the clock's time.
  absl::StatusOr<Sweep> SweepFor(Work work);

  std::unique_ptr<StoreHarness> harness_;
  std::unique_ptr<FakeClock> clock_;
  int max_attempts_ = 3;
  int cap_ = 0;
  absl::Duration timeout_ = absl::Seconds(30);
};

// A harness on MemoryTaskStore.
std::unique_ptr<StoreHarness> MakeMemoryHarness();

}  // namespace backfill::testing
