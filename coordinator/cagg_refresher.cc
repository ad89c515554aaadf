#include "coordinator/cagg_refresher.h"

#include <glog/logging.h>

#include <algorithm>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backfill_coordinator_sql.h"
#include "common/cagg_graph.h"
#include "common/catalog.h"
#include "common/quote.h"

namespace backfill {
namespace {

// How far this tool copied each materialization, by view name, in internal units; empty when
// nothing was staged in this target.
absl::StatusOr<std::map<std::string, int64_t>> CopiedUntil(pg::Connection& target) {
  std::map<std::string, int64_t> out;
  absl::StatusOr<pg::Result> exists = target.Exec(sql::kSchemaExists);
  if (!exists.ok()) return exists.status();
  if (!exists->GetBool(0, 0)) return out;
  absl::StatusOr<pg::Result> rows = target.Exec(sql::kCopiedCaggs);
  if (!rows.ok()) return rows.status();
  for (int i = 0; i < rows->rows(); ++i) {
    if (!rows->IsNull(i, 1)) out[rows->Get(i, 0)] = rows->GetInt(i, 1);
  }
  return out;
}

}  // namespace

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

  absl::StatusOr<std::map<std::string, int64_t>> copied = CopiedUntil(target);
  if (!copied.ok()) return copied.status();

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
    // Where the refresh starts: the target's watermark; or, when this tool copied the
    // materialization, the end of what it copied, which is the source's own and is kept (its
    // pending invalidations were carried with it). The range past the copy is recomputed with
    // force, whatever the target's log says of it (a restored catalog can call it done).
    int64_t start_internal = to.watermark;
    bool force = false;
    auto copied_it = copied->find(from.DisplayName());
    if (copied_it != copied->end()) {
      start_internal = copied_it->second;
      if (to.watermark < from.watermark) {
        force = true;
        // At least the last two buckets: TimescaleDB refreshes whole buckets only, and moves
        // the watermark only when it refreshes one.
        const int64_t margin = std::max<int64_t>(to.bucket_margin, 1);
        const int64_t last_buckets = from.watermark < std::numeric_limits<int64_t>::min() + margin
                                         ? std::numeric_limits<int64_t>::min()
                                         : from.watermark - margin;
        start_internal = std::min(copied_it->second, last_buckets);
      }
    }
    absl::StatusOr<std::optional<std::string>> start =
        target_catalog->InternalToLiteral(start_internal, to.time_type);
    if (!start.ok()) return start.status();
    if (copied_it != copied->end()) refreshed->set_copied_until(start->value_or(""));
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
        QuoteLiteral(**end), "::", to.time_type, force ? ", force => true" : "", ")");
    LOG(INFO) << "refreshing " << from.DisplayName() << ": " << statement;
    if (absl::Status s = target.ExecScript(statement); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("cannot refresh ", from.DisplayName(), " over [",
                                       start->value_or("start"), ", ", **end, "): ", s.message()));
    }
    refreshed->set_refreshed(true);
  }
  return response;
}

}  // namespace backfill
