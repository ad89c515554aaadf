#include "coordinator/cagg_refresher.h"

#include <glog/logging.h>

#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/cagg_graph.h"
#include "common/catalog.h"
#include "common/quote.h"

namespace backfill {

absl::StatusOr<v1::RefreshCaggsResponse> RefreshContinuousAggregates(
    pg::Connection& source, pg::Connection& target, const v1::RefreshCaggsRequest& request) {
  absl::StatusOr<Catalog> source_catalog = Catalog::Load(source);
  if (!source_catalog.ok()) return source_catalog.status();
  absl::StatusOr<Catalog> target_catalog = Catalog::Load(target);
  if (!target_catalog.ok()) return target_catalog.status();
  if (absl::Status s = CheckSameVersion(source_catalog->version(), target_catalog->version());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::vector<ContinuousAggregate>> source_caggs =
      source_catalog->ListContinuousAggregates(request.filter());
  if (!source_caggs.ok()) return source_caggs.status();
  absl::StatusOr<std::vector<ContinuousAggregate>> target_caggs =
      target_catalog->ListContinuousAggregates("");
  if (!target_caggs.ok()) return target_caggs.status();

  // The hierarchy is the source's; aggregates are matched to the target's by view name.
  std::vector<HypertableNode> nodes;
  std::map<int32_t, const ContinuousAggregate*> by_id;
  for (const ContinuousAggregate& c : *source_caggs) {
    nodes.push_back(HypertableNode{c.mat_hypertable_id, c.raw_hypertable_id, c.matched});
    by_id[c.mat_hypertable_id] = &c;
  }
  std::map<std::pair<std::string, std::string>, const ContinuousAggregate*> in_target;
  for (const ContinuousAggregate& c : *target_caggs) {
    in_target[{c.view_schema, c.view_name}] = &c;
  }

  v1::RefreshCaggsResponse response;
  for (int32_t id : SelectHypertables(nodes, request.cascade_up(), request.cascade_down())) {
    auto source_it = by_id.find(id);
    if (source_it == by_id.end()) continue;  // a raw hypertable reached by --cascade-down
    const ContinuousAggregate& from = *source_it->second;
    auto target_it = in_target.find({from.view_schema, from.view_name});
    if (target_it == in_target.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "continuous aggregate ", from.DisplayName(), " does not exist in the target",
          "\nhint: create it in the target (the same definition, WITH NO DATA) and run "
          "refresh-caggs again"));
    }
    const ContinuousAggregate& to = *target_it->second;
    v1::RefreshedCagg* refreshed = response.add_caggs();
    refreshed->set_view(from.DisplayName());
    absl::StatusOr<std::optional<std::string>> end =
        source_catalog->InternalToLiteral(from.watermark, from.time_type);
    if (!end.ok()) return end.status();
    absl::StatusOr<std::optional<std::string>> start =
        target_catalog->InternalToLiteral(to.watermark, to.time_type);
    if (!start.ok()) return start.status();
    if (!end->has_value() || to.watermark >= from.watermark) {
      // The source never materialized it, or the target is already as far.
      refreshed->set_window_start(start->value_or(""));
      refreshed->set_window_end(end->value_or(""));
      continue;
    }
    refreshed->set_window_start(start->value_or(""));
    refreshed->set_window_end(**end);
    const std::string statement = absl::StrCat(
        "CALL public.refresh_continuous_aggregate(",
        QuoteLiteral(QuoteQualified(to.view_schema, to.view_name)), "::regclass, ",
        start->has_value() ? absl::StrCat(QuoteLiteral(**start), "::", to.time_type) : "NULL", ", ",
        QuoteLiteral(**end), "::", to.time_type, ")");
    LOG(INFO) << "refreshing " << from.DisplayName() << ": " << statement;
    if (absl::Status s = target.ExecScript(statement); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("cannot refresh ", from.DisplayName(), ": ", s.message()));
    }
    refreshed->set_refreshed(true);
  }
  return response;
}

}  // namespace backfill
