// Which hypertables a stage or refresh covers, given the filter's matches and the cascade
// flags, over the hierarchy of continuous aggregates (raw hypertable -> cagg -> cagg on cagg).
//
// Cascading is directional from the matched objects, as the spec describes: --cascade-up
// adds every continuous aggregate built (directly or not) on a match; --cascade-down adds
// everything a matched continuous aggregate is built on. Siblings reached only by going down
// and then up again are not added.
#pragma once

#include <cstdint>
#include <vector>

namespace backfill {

struct HypertableNode {
  int32_t id = 0;
  int32_t raw_hypertable_id = 0;  // for a continuous aggregate's materialization; else 0
  bool matched = false;
};

// Ids of the selected hypertables, parents before the aggregates built on them (ties by id).
std::vector<int32_t> SelectHypertables(const std::vector<HypertableNode>& nodes, bool cascade_up,
                                       bool cascade_down);

}  // namespace backfill
