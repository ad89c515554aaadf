#include "common/cagg_graph.h"

#include <algorithm>
#include <map>
#include <set>

namespace backfill {

std::vector<int32_t> SelectHypertables(const std::vector<HypertableNode>& nodes, bool cascade_up,
                                       bool cascade_down) {
  std::map<int32_t, int32_t> parent;                 // cagg -> what it is built on
  std::map<int32_t, std::vector<int32_t>> children;  // hypertable -> caggs built on it
  std::set<int32_t> selected;
  for (const HypertableNode& n : nodes) {
    if (n.raw_hypertable_id != 0) {
      parent[n.id] = n.raw_hypertable_id;
      children[n.raw_hypertable_id].push_back(n.id);
    }
    if (n.matched) selected.insert(n.id);
  }
  const std::set<int32_t> seeds = selected;
  if (cascade_up) {
    std::vector<int32_t> stack(seeds.begin(), seeds.end());
    while (!stack.empty()) {
      int32_t id = stack.back();
      stack.pop_back();
      for (int32_t child : children[id]) {
        if (selected.insert(child).second) stack.push_back(child);
      }
    }
  }
  if (cascade_down) {
    for (int32_t id : seeds) {
      // A chain: each cagg is built on exactly one hypertable or cagg. The visited set guards
      // against a malformed catalog with a cycle.
      std::set<int32_t> visited = {id};
      for (auto it = parent.find(id); it != parent.end(); it = parent.find(it->second)) {
        if (!visited.insert(it->second).second) break;
        selected.insert(it->second);
      }
    }
  }
  // Depth in the hierarchy orders parents first.
  auto depth = [&parent](int32_t id) {
    int d = 0;
    std::set<int32_t> visited = {id};
    for (auto it = parent.find(id); it != parent.end(); it = parent.find(it->second)) {
      if (!visited.insert(it->second).second) break;
      ++d;
    }
    return d;
  };
  std::vector<int32_t> out(selected.begin(), selected.end());
  std::stable_sort(out.begin(), out.end(),
                   [&depth](int32_t a, int32_t b) { return depth(a) < depth(b); });
  return out;
}

}  // namespace backfill
