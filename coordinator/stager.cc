#include "coordinator/stager.h"

#include <glog/logging.h>

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backfill_coordinator_sql.h"
#include "common/catalog.h"
#include "common/quote.h"

namespace backfill {
namespace {

struct Plan {
  Hypertable hypertable;
  UntilValue until;
  std::vector<Chunk> chunks;
};

// Every problem with one hypertable's columns in the target, as lines for the report.
absl::Status CheckTargetColumns(pg::Connection& source, pg::Connection& target, const Hypertable& h,
                                std::vector<std::string>* problems) {
  absl::StatusOr<std::vector<Column>> source_columns = ListColumns(source, h.QualifiedName());
  if (!source_columns.ok()) return source_columns.status();
  absl::StatusOr<std::vector<Column>> target_columns = ListColumns(target, h.QualifiedName());
  if (!target_columns.ok()) return target_columns.status();
  std::map<std::string, std::string> target_types;
  for (const Column& c : *target_columns) target_types[c.name] = c.type;
  for (const Column& c : *source_columns) {
    auto it = target_types.find(c.name);
    if (it == target_types.end()) {
      problems->push_back(absl::StrCat(h.DisplayName(), ": column ", QuoteIdent(c.name), " (",
                                       c.type, ") is missing in the target"));
    } else if (it->second != c.type) {
      problems->push_back(absl::StrCat(h.DisplayName(), ": column ", QuoteIdent(c.name), " is ",
                                       c.type, " in the source but ", it->second,
                                       " in the target"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EnsureTaskSchema(pg::Connection& target) {
  return target.ExecScript(sql::kCreateSchema);
}

absl::StatusOr<v1::StageResponse> StageTasks(pg::Connection& source, pg::Connection& target,
                                             const v1::StageRequest& request) {
  if (request.cascade_up() || request.cascade_down()) {
    return absl::UnimplementedError(
        "--cascade-up and --cascade-down are not supported yet\n"
        "hint: stage each continuous aggregate with its own --filter");
  }
  absl::StatusOr<Catalog> source_catalog = Catalog::Load(source);
  if (!source_catalog.ok()) return source_catalog.status();
  absl::StatusOr<Catalog> target_catalog = Catalog::Load(target);
  if (!target_catalog.ok()) return target_catalog.status();
  if (source_catalog->version().text != target_catalog->version().text) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the source runs TimescaleDB ", source_catalog->version().text, " and the target runs ",
        target_catalog->version().text,
        "\nhint: update the older one so both run the same version, then stage again"));
  }

  absl::StatusOr<std::vector<Hypertable>> hypertables =
      source_catalog->ListHypertables(request.filter());
  if (!hypertables.ok()) return hypertables.status();
  if (hypertables->empty()) {
    if (request.filter().empty()) {
      return absl::NotFoundError("the source database has no hypertables to stage");
    }
    return absl::NotFoundError(absl::StrCat(
        "no hypertable or continuous aggregate matches --filter '", request.filter(), "'"));
  }

  // Plan everything and collect every problem before writing anything.
  std::vector<std::string> problems;
  std::vector<Plan> plans;
  for (const Hypertable& h : *hypertables) {
    absl::StatusOr<UntilValue> until = source_catalog->ParseUntil(h, request.until());
    if (!until.ok()) {
      if (until.status().code() != absl::StatusCode::kInvalidArgument) return until.status();
      problems.push_back(std::string(until.status().message()));
      continue;
    }
    absl::StatusOr<std::optional<int32_t>> in_target =
        target_catalog->FindHypertable(h.schema, h.name);
    if (!in_target.ok()) return in_target.status();
    if (!in_target->has_value()) {
      problems.push_back(absl::StrCat(h.DisplayName(), " is not a hypertable in the target"));
      continue;
    }
    if (absl::Status s = CheckTargetColumns(source, target, h, &problems); !s.ok()) return s;
    absl::StatusOr<std::vector<Chunk>> chunks = source_catalog->ListChunks(h, until->internal);
    if (!chunks.ok()) return chunks.status();
    plans.push_back(Plan{h, *until, *std::move(chunks)});
  }
  if (problems.size() == 1) {
    const std::string& only = problems.front();
    return absl::FailedPreconditionError(
        absl::StartsWith(only, "cannot stage") ? only : absl::StrCat("cannot stage ", only));
  }
  if (!problems.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot stage: ", problems.size(), " problems\n  ", absl::StrJoin(problems, "\n  ")));
  }

  if (absl::Status s = EnsureTaskSchema(target); !s.ok()) return s;
  v1::StageResponse response;
  int64_t created = 0;
  for (const Plan& plan : plans) {
    const Hypertable& h = plan.hypertable;
    v1::StagedHypertable* staged = response.add_hypertables();
    staged->set_schema(h.schema);
    staged->set_name(h.name);
    if (absl::Status s = target.ExecScript("BEGIN"); !s.ok()) return s;
    auto fail = [&target](absl::Status s) {
      (void)target.ExecScript("ROLLBACK");
      return s;
    };
    absl::StatusOr<pg::Result> existing = target.Exec(sql::kStagedChunks, {h.schema, h.name});
    if (!existing.ok()) return fail(existing.status());
    std::set<std::pair<std::string, std::string>> already;
    for (int i = 0; i < existing->rows(); ++i) {
      already.emplace(existing->Get(i, 0), existing->Get(i, 1));
    }
    for (const Chunk& chunk : plan.chunks) {
      if (already.count({chunk.schema, chunk.name}) > 0) {
        staged->set_chunks_already_staged(staged->chunks_already_staged() + 1);
        continue;
      }
      absl::StatusOr<CreatedChunk> target_chunk =
          target_catalog->CreateChunk(h.schema, h.name, chunk.slices);
      if (!target_chunk.ok()) {
        return fail(
            absl::Status(target_chunk.status().code(),
                         absl::StrCat("cannot create the target chunk for ", chunk.DisplayName(),
                                      ": ", target_chunk.status().message())));
      }
      if (target_chunk->created) ++created;
      const bool cut = chunk.time_end > plan.until.internal;
      pg::Param until_internal, until_literal;
      if (cut) {
        until_internal = absl::StrCat(plan.until.internal);
        until_literal = plan.until.literal;
        staged->set_chunks_cut(staged->chunks_cut() + 1);
      }
      absl::StatusOr<pg::Result> inserted = target.Exec(
          sql::kInsertTask,
          {h.schema, h.name, chunk.schema, chunk.name, target_chunk->schema, target_chunk->name,
           chunk.slices, h.time_column, h.time_type, until_internal, until_literal});
      if (!inserted.ok()) return fail(inserted.status());
      if (inserted->rows() == 1) {
        staged->set_chunks_staged(staged->chunks_staged() + 1);
      } else {
        staged->set_chunks_already_staged(staged->chunks_already_staged() + 1);
      }
    }
    if (absl::Status s = target.ExecScript("COMMIT"); !s.ok()) return fail(s);
    LOG(INFO) << "staged " << staged->chunks_staged() << " chunks of " << h.DisplayName() << " ("
              << staged->chunks_already_staged() << " already staged)";
  }
  response.set_target_chunks_created(created);
  return response;
}

}  // namespace backfill
