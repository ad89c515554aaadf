// The TaskStore contract on MemoryTaskStore (the same tests run on PgTaskStore in the
// integration tests), and what only the memory store offers tests.
#include "coordinator/memory_task_store.h"

#include "coordinator/task_store_contract.h"
#include "gtest/gtest.h"

namespace backfill::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Memory, TaskStoreContract,
                         ::testing::Values(StoreKind{"memory", &MakeMemoryHarness}),
                         [](const ::testing::TestParamInfo<StoreKind>& info) {
                           return info.param.name;
                         });

TEST(MemoryTaskStoreTest, RefusesASchemaFromANewerRelease) {
  MemoryTaskStore store;
  store.SetSchemaVersion(99);
  EXPECT_EQ(store.Migrate().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace backfill::testing
