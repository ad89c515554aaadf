#include "common/cagg_graph.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace backfill {
namespace {

using ::testing::ElementsAre;

// The spec's example: raw_data(1) -> hourly_agg(2) -> daily_agg(3) -> monthly_agg(4), plus an
// unrelated hypertable (5) and a sibling of daily_agg built on hourly_agg (6).
std::vector<HypertableNode> Hierarchy(const std::vector<int32_t>& matched) {
  std::vector<HypertableNode> nodes = {{1, 0, false}, {2, 1, false}, {3, 2, false},
                                       {4, 3, false}, {5, 0, false}, {6, 2, false}};
  for (HypertableNode& n : nodes) {
    for (int32_t m : matched) n.matched = n.matched || n.id == m;
  }
  return nodes;
}

TEST(CaggGraphTest, WithoutCascadeOnlyTheMatchesAreSelected) {
  EXPECT_THAT(SelectHypertables(Hierarchy({1}), false, false), ElementsAre(1));
  EXPECT_THAT(SelectHypertables(Hierarchy({3}), false, false), ElementsAre(3));
  EXPECT_THAT(SelectHypertables(Hierarchy({}), true, true), ElementsAre());
}

TEST(CaggGraphTest, CascadeUpAddsEveryAggregateBuiltOnAMatch) {
  EXPECT_THAT(SelectHypertables(Hierarchy({1}), true, false), ElementsAre(1, 2, 3, 6, 4));
  EXPECT_THAT(SelectHypertables(Hierarchy({3}), true, false), ElementsAre(3, 4));
}

TEST(CaggGraphTest, CascadeDownAddsEverythingAMatchIsBuiltOn) {
  EXPECT_THAT(SelectHypertables(Hierarchy({3}), false, true), ElementsAre(1, 2, 3));
  EXPECT_THAT(SelectHypertables(Hierarchy({1}), false, true), ElementsAre(1));
}

TEST(CaggGraphTest, BothDirectionsFromAMiddleAggregateSkipSiblings) {
  // Down to raw_data and hourly_agg, up to monthly_agg; hourly_agg's other child (6) is a
  // sibling reached only by going down and up again.
  EXPECT_THAT(SelectHypertables(Hierarchy({3}), true, true), ElementsAre(1, 2, 3, 4));
}

TEST(CaggGraphTest, OrdersParentsBeforeChildren) {
  EXPECT_THAT(SelectHypertables(Hierarchy({4, 1, 2, 3}), false, false), ElementsAre(1, 2, 3, 4));
}

TEST(CaggGraphTest, SurvivesACycleInAMalformedCatalog) {
  std::vector<HypertableNode> nodes = {{1, 2, true}, {2, 1, false}};
  EXPECT_THAT(SelectHypertables(nodes, true, true), ElementsAre(1, 2));
}

}  // namespace
}  // namespace backfill
