#include "coordinator/stager.h"

#include <glog/logging.h>

#include <algorithm>
#include <climits>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "backfill_coordinator_sql.h"
#include "common/cagg_graph.h"
#include "common/catalog.h"
#include "common/json.h"
#include "common/quote.h"
#include "coordinator/pg_task_store.h"
#include "coordinator/preflight.h"

namespace backfill {
namespace {

// Chunks per target transaction. create_chunk holds a self-conflicting lock on the hypertable
// until commit, which blocks the application's inserts that need a new chunk; short batches
// keep that wait short while still creating many chunks per round trip.
constexpr size_t kBatchSize = 500;

// A task already in __backfill.task.
struct StagedTask {
  int64_t task_id = 0;
  bool cut = false;
  int64_t until_internal = 0;
  std::string until_literal;
  bool cut_from = false;  // stage --from left out the chunk's start
  int64_t from_internal = 0;
  std::string from_literal;
  // The range this tool copied into the target chunk, if it ever did ("": the chunk's edge);
  // kept when the task is re-opened.
  bool copied = false;
  std::string copied_from, copied_until;
  int64_t range_start = 0, range_end = 0;  // the chunk's time range, internal units
};

enum class Action { kInsert, kWiden, kKeep };

struct PlannedChunk {
  Chunk chunk;
  bool cut = false;       // copy only rows before --until
  bool cut_from = false;  // copy only rows at or after --from
  Action action = Action::kInsert;
  int64_t task_id = 0;  // for kWiden
  // For kWiden of a copied task: the range this tool copied ("" bounds: the chunk's edges).
  bool copied = false;
  std::string copied_from, copied_until;
};

struct Plan {
  Hypertable hypertable;
  TargetHypertable target;
  UntilValue until;
  std::optional<UntilValue> from;  // stage --from
  std::vector<PlannedChunk> chunks;
  std::vector<std::string> notes;  // for the user, not problems
};

std::string Name(const Hypertable& h) {
  return h.is_cagg() ? DisplayName(h.view_schema, h.view_name) : h.DisplayName();
}

// Every problem with the target hypertable's columns, as lines for the report; columns only
// the target has, which copied rows leave to their defaults, go to `notes`.
absl::Status CheckTargetColumns(pg::Connection& source, pg::Connection& target, const Hypertable& h,
                                const TargetHypertable& t, std::vector<std::string>* problems,
                                std::vector<std::string>* notes) {
  absl::StatusOr<std::vector<Column>> source_columns = ListColumns(source, h.QualifiedName());
  if (!source_columns.ok()) return source_columns.status();
  absl::StatusOr<std::vector<Column>> target_columns =
      ListColumns(target, QuoteQualified(t.schema, t.name));
  if (!target_columns.ok()) return target_columns.status();
  std::map<std::string, std::string> target_types, source_types;
  for (const Column& c : *target_columns) target_types[c.name] = c.type;
  for (const Column& c : *source_columns) {
    source_types[c.name] = c.type;
    auto it = target_types.find(c.name);
    if (it == target_types.end()) {
      problems->push_back(absl::StrCat(Name(h), ": column ", QuoteIdent(c.name), " (", c.type,
                                       ") is missing in the target"));
    } else if (it->second != c.type) {
      problems->push_back(absl::StrCat(Name(h), ": column ", QuoteIdent(c.name), " is ", c.type,
                                       " in the source but ", it->second, " in the target"));
    }
  }
  for (const Column& c : *target_columns) {
    if (source_types.count(c.name) > 0) continue;
    if (c.not_null && !c.has_default) {
      problems->push_back(absl::StrCat(
          Name(h), ": column ", QuoteIdent(c.name), " (", c.type,
          ") is only in the target and is NOT NULL without a default: copied rows cannot fill "
          "it (give it a default in the target, or add it to the source)"));
    } else {
      notes->push_back(absl::StrCat("column ", QuoteIdent(c.name), " (", c.type,
                                    ") is only in the target: copied rows get its ",
                                    c.has_default ? "default" : "default, NULL"));
    }
  }
  return absl::OkStatus();
}

// Decides, for each chunk, whether to insert a task, widen the staged one, or keep it; a
// staged range that --until or --from would narrow is a problem.
void Reconcile(const std::map<std::pair<std::string, std::string>, StagedTask>& staged, Plan* plan,
               std::vector<std::string>* problems) {
  for (PlannedChunk& p : plan->chunks) {
    auto it = staged.find({p.chunk.schema, p.chunk.name});
    if (it == staged.end()) continue;
    const StagedTask& task = it->second;
    p.task_id = task.task_id;
    if (task.copied) {
      p.copied = true;
      p.copied_from = task.copied_from;
      p.copied_until = task.copied_until;
    }
    // Each range is [low, high) within the chunk; an uncut side is the chunk's own edge.
    const int64_t old_low = task.cut_from ? task.from_internal : INT64_MIN;
    const int64_t new_low = p.cut_from ? plan->from->internal : INT64_MIN;
    const int64_t old_high = task.cut ? task.until_internal : INT64_MAX;
    const int64_t new_high = p.cut ? plan->until.internal : INT64_MAX;
    const std::string chunk =
        absl::StrCat(Name(plan->hypertable), ": chunk ", p.chunk.DisplayName());
    if (new_high < old_high) {
      problems->push_back(
          absl::StrCat(chunk, " is already staged ",
                       task.cut ? absl::StrCat("up to '", task.until_literal, "'") : "whole",
                       "; --until '", plan->until.literal,
                       "' would narrow it (run clean to start over with a narrower range)"));
    } else if (new_low > old_low) {
      problems->push_back(absl::StrCat(
          chunk, " is already staged ",
          task.cut_from ? absl::StrCat("from '", task.from_literal, "'") : "from its start",
          "; --from '", plan->from->literal,
          "' would narrow it (run clean to start over with a narrower range)"));
    }
    p.action = new_low < old_low || new_high > old_high ? Action::kWiden : Action::kKeep;
  }
  // A staged chunk the new window leaves out entirely narrows the staged range as much (a
  // chunk missing from the plan for another reason, dropped in the source, is not one).
  std::set<std::pair<std::string, std::string>> planned;
  for (const PlannedChunk& p : plan->chunks) planned.insert({p.chunk.schema, p.chunk.name});
  for (const auto& [name, task] : staged) {
    if (planned.count(name) > 0) continue;
    const std::string chunk =
        absl::StrCat(Name(plan->hypertable), ": chunk ", DisplayName(name.first, name.second));
    if (task.range_start >= plan->until.internal) {
      problems->push_back(
          absl::StrCat(chunk, " is already staged; --until '", plan->until.literal,
                       "' would leave it out (run clean to start over with a narrower range)"));
    } else if (plan->from.has_value() && task.range_end <= plan->from->internal) {
      problems->push_back(
          absl::StrCat(chunk, " is already staged; --from '", plan->from->literal,
                       "' would leave it out (run clean to start over with a narrower range)"));
    }
  }
}

absl::StatusOr<std::map<std::pair<std::string, std::string>, StagedTask>> ReadStaged(
    pg::Connection& target, bool schema_exists, const Hypertable& h) {
  std::map<std::pair<std::string, std::string>, StagedTask> staged;
  if (!schema_exists) return staged;
  absl::StatusOr<pg::Result> rows = target.Exec(sql::kStagedChunks, {h.schema, h.name});
  if (!rows.ok()) return rows.status();
  for (int i = 0; i < rows->rows(); ++i) {
    staged[{rows->Get(i, 0), rows->Get(i, 1)}] = StagedTask{
        rows->GetInt(i, 2),  rows->GetBool(i, 3), rows->GetInt(i, 4),  rows->Get(i, 5),
        rows->GetBool(i, 6), rows->GetInt(i, 7),  rows->Get(i, 8),     rows->GetBool(i, 9),
        rows->Get(i, 10),    rows->Get(i, 11),    rows->GetInt(i, 12), rows->GetInt(i, 13)};
  }
  return staged;
}

// The task's range as the task table stores it: until_* and from_* (null: the chunk's edge).
std::string RangeJson(const Plan& plan, const PlannedChunk& p) {
  return absl::StrCat(p.cut ? absl::StrCat("\"until_internal\":", plan.until.internal,
                                           ",\"until_literal\":", JsonQuote(plan.until.literal))
                            : "\"until_internal\":null,\"until_literal\":null",
                      ",",
                      p.cut_from ? absl::StrCat("\"from_internal\":", plan.from->internal,
                                                ",\"from_literal\":", JsonQuote(plan.from->literal))
                                 : "\"from_internal\":null,\"from_literal\":null");
}

// A bound of the plan as the user should read it: in UTC for timestamptz, else with its type.
std::string ForUser(const Plan& plan, const UntilValue& value) {
  return plan.hypertable.time_type == "timestamp with time zone"
             ? absl::StrCat(value.literal, " (UTC)")
             : absl::StrCat(value.literal, " (", plan.hypertable.time_type, ")");
}
std::string UntilForUser(const Plan& plan) { return ForUser(plan, plan.until); }

// The dual-write guard: rows the copy of `plan` would replace in the target that this tool
// did not copy there (a --until that reaches into the application's writes, or rows copied
// by other means) are a problem each, per target chunk. One statement for the hypertable.
absl::Status CheckTargetRows(pg::Connection& target, const Plan& plan, Findings* findings) {
  std::vector<std::string> planned;
  for (const PlannedChunk& p : plan.chunks) {
    if (p.action == Action::kKeep) continue;
    auto literal = [](bool set, const std::string& value) {
      return set ? JsonQuote(value) : std::string("null");
    };
    planned.push_back(absl::StrCat(
        "{\"chunk\":", JsonQuote(p.chunk.DisplayName()), ",\"slices\":", p.chunk.slices,
        ",\"from\":", literal(p.cut_from, p.cut_from ? plan.from->literal : ""), ",\"until\":",
        literal(p.cut, plan.until.literal), ",\"copied\":", p.copied ? "true" : "false",
        ",\"copied_from\":", literal(!p.copied_from.empty(), p.copied_from),
        ",\"copied_until\":", literal(!p.copied_until.empty(), p.copied_until), "}"));
  }
  if (planned.empty()) return absl::OkStatus();
  // Counting stops after kShown + 1 chunks: enough to name the problem without reading a
  // target that holds the whole range (copied before a clean) end to end.
  constexpr int kShown = 10;
  absl::StatusOr<pg::Result> rows = target.Exec(
      sql::kTargetRows,
      {absl::StrCat(plan.target.id), absl::StrCat("[", absl::StrJoin(planned, ","), "]"),
       plan.hypertable.time_column, plan.hypertable.time_type, absl::StrCat(kShown + 1)});
  if (!rows.ok()) return rows.status();
  std::vector<std::string> found;
  for (int i = 0; i < std::min(rows->rows(), kShown); ++i) {
    found.push_back(absl::StrCat(Name(plan.hypertable), ": chunk ", rows->Get(i, 0), " (",
                                 rows->Get(i, 1), " in the target) already holds ", rows->Get(i, 2),
                                 " rows that copy would replace, from ", rows->Get(i, 3), " to ",
                                 rows->Get(i, 4)));
  }
  std::sort(found.begin(), found.end());
  findings->problems.insert(findings->problems.end(), found.begin(), found.end());
  if (rows->rows() > kShown) {
    findings->problems.push_back(absl::StrCat(
        Name(plan.hypertable), ": more chunks hold such rows (counting stopped at ", kShown, ")"));
  }
  if (rows->rows() > 0) {
    findings->Hint(absl::StrCat(
        "copy replaces the target's rows below --until in every staged chunk; these rows were "
        "not copied by this tool. If --until is wrong (it must be where dual writes began), "
        "stage again with the right one; if they are rows copied before a clean, or you mean "
        "to replace them with the source's, stage again with --replace-target-rows"));
    findings->Hint(absl::StrCat("for ", Name(plan.hypertable), " --until resolves to rows before ",
                                UntilForUser(plan)));
  }
  return absl::OkStatus();
}

void CountCuts(const PlannedChunk& p, v1::StagedHypertable* staged) {
  if (p.cut) staged->set_chunks_cut(staged->chunks_cut() + 1);
  if (p.cut_from) staged->set_chunks_cut_from(staged->chunks_cut_from() + 1);
}

// Writes one batch in one short target transaction: creates the missing target chunks,
// inserts the new tasks, widens the widened ones.
absl::Status WriteBatch(pg::Connection& target, Catalog& target_catalog, const Plan& plan,
                        const std::vector<const PlannedChunk*>& batch, v1::StagedHypertable* staged,
                        int64_t* created) {
  std::vector<const PlannedChunk*> inserts;
  std::vector<const PlannedChunk*> widens;
  for (const PlannedChunk* p : batch) {
    if (p->action == Action::kInsert) inserts.push_back(p);
    if (p->action == Action::kWiden) widens.push_back(p);
  }
  if (inserts.empty() && widens.empty()) return absl::OkStatus();
  const Hypertable& h = plan.hypertable;
  if (absl::Status s = target.ExecScript("BEGIN"); !s.ok()) return s;
  auto fail = [&target](absl::Status s) {
    (void)target.ExecScript("ROLLBACK");
    return s;
  };
  if (!inserts.empty()) {
    std::vector<std::string> slices;
    slices.reserve(inserts.size());
    for (const PlannedChunk* p : inserts) slices.push_back(p->chunk.slices);
    absl::StatusOr<std::vector<CreatedChunk>> chunks =
        target_catalog.CreateChunks(plan.target.schema, plan.target.name, slices);
    if (!chunks.ok()) {
      return fail(absl::Status(chunks.status().code(),
                               absl::StrCat("cannot create target chunks for ", Name(h), ": ",
                                            chunks.status().message())));
    }
    if (chunks->size() != inserts.size()) {
      return fail(absl::InternalError("create_chunk returned fewer chunks than asked for"));
    }
    std::vector<std::string> tasks;
    tasks.reserve(inserts.size());
    for (size_t i = 0; i < inserts.size(); ++i) {
      const PlannedChunk& p = *inserts[i];
      const CreatedChunk& c = (*chunks)[i];
      if (c.created) ++*created;
      tasks.push_back(absl::StrCat(
          "{\"hypertable_schema\":", JsonQuote(h.schema), ",\"hypertable_name\":",
          JsonQuote(h.name), ",\"chunk_schema\":", JsonQuote(p.chunk.schema), ",\"chunk_name\":",
          JsonQuote(p.chunk.name), ",\"target_chunk_schema\":", JsonQuote(c.schema),
          ",\"target_chunk_name\":", JsonQuote(c.name), ",\"dimensions\":", p.chunk.slices,
          ",\"time_column\":", JsonQuote(h.time_column), ",\"time_type\":", JsonQuote(h.time_type),
          ",", RangeJson(plan, p), ",\"source_bytes\":", p.chunk.bytes,
          ",\"display_name\":", JsonQuote(Name(h)), "}"));
    }
    absl::StatusOr<pg::Result> inserted =
        target.Exec(sql::kInsertTasks, {absl::StrCat("[", absl::StrJoin(tasks, ","), "]")});
    if (!inserted.ok()) return fail(inserted.status());
    // A concurrent stage may have inserted some of them first; those count as already staged.
    staged->set_chunks_staged(staged->chunks_staged() + inserted->rows());
    staged->set_chunks_already_staged(staged->chunks_already_staged() +
                                      static_cast<int64_t>(inserts.size()) - inserted->rows());
    for (const PlannedChunk* p : inserts) {
      CountCuts(*p, staged);
    }
  }
  if (!widens.empty()) {
    std::vector<std::string> rows;
    rows.reserve(widens.size());
    for (const PlannedChunk* p : widens) {
      rows.push_back(absl::StrCat("{\"task_id\":", p->task_id, ",", RangeJson(plan, *p), "}"));
      CountCuts(*p, staged);
    }
    absl::StatusOr<pg::Result> widened =
        target.Exec(sql::kWidenTasks, {absl::StrCat("[", absl::StrJoin(rows, ","), "]")});
    if (!widened.ok()) return fail(widened.status());
    staged->set_chunks_widened(staged->chunks_widened() + widened->affected_rows());
  }
  if (absl::Status s = target.ExecScript("COMMIT"); !s.ok()) return fail(s);
  return absl::OkStatus();
}

// The response's entry for a plan's hypertable, named as the user knows it, with the cutoff
// as parsed and the notes.
v1::StagedHypertable* AddHypertable(const Plan& plan, v1::StageResponse* response) {
  const Hypertable& h = plan.hypertable;
  v1::StagedHypertable* staged = response->add_hypertables();
  staged->set_schema(h.schema);
  staged->set_name(h.name);
  if (h.is_cagg()) staged->set_cagg_view(DisplayName(h.view_schema, h.view_name));
  staged->set_until(UntilForUser(plan));
  if (plan.from.has_value()) staged->set_from(ForUser(plan, *plan.from));
  for (const std::string& note : plan.notes) staged->add_notes(note);
  return staged;
}

// What stage would do, with sizes, and the source's read rate on one sample chunk; writes
// nothing.
absl::StatusOr<v1::StageResponse> DryRun(pg::Connection& source, const std::vector<Plan>& plans) {
  v1::StageResponse response;
  const Chunk* sample = nullptr;
  for (const Plan& plan : plans) {
    v1::StagedHypertable* staged = AddHypertable(plan, &response);
    for (const PlannedChunk& p : plan.chunks) {
      v1::PlannedChunk* out = staged->add_planned();
      out->set_chunk(p.chunk.DisplayName());
      out->set_compressed(p.chunk.compressed);
      out->set_bytes(p.chunk.bytes);
      out->set_uncompressed_bytes(p.chunk.uncompressed_bytes);
      out->set_cut(p.cut);
      out->set_cut_from(p.cut_from);
      switch (p.action) {
        case Action::kInsert:
          out->set_action("stage");
          staged->set_chunks_staged(staged->chunks_staged() + 1);
          break;
        case Action::kWiden:
          out->set_action("widen");
          staged->set_chunks_widened(staged->chunks_widened() + 1);
          break;
        case Action::kKeep:
          out->set_action("already staged");
          staged->set_chunks_already_staged(staged->chunks_already_staged() + 1);
          break;
      }
      CountCuts(p, staged);
      // The largest uncompressed chunk up to 256 MiB: big enough to time, quick to read.
      const bool candidate = p.action != Action::kKeep && !p.chunk.compressed &&
                             p.chunk.bytes > 0 && p.chunk.bytes <= (int64_t{256} << 20);
      if (candidate && (sample == nullptr || p.chunk.bytes > sample->bytes)) sample = &p.chunk;
    }
  }
  if (sample != nullptr) {
    const absl::Time start = absl::Now();
    absl::StatusOr<int64_t> read = source.CopyOutDiscard(
        absl::StrCat("COPY ", sample->QualifiedName(), " TO STDOUT (FORMAT binary)"));
    if (!read.ok()) return read.status();
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (seconds > 0) {
      response.set_sampled_bytes_per_second(static_cast<double>(sample->bytes) / seconds);
    }
  }
  return response;
}

}  // namespace

absl::StatusOr<v1::StageResponse> StageTasks(pg::Connection& source, pg::Connection& target,
                                             const v1::StageRequest& request) {
  if (absl::Status s = CheckAbsoluteTime("--until", request.until()); !s.ok()) return s;
  if (!request.from().empty()) {
    if (absl::Status s = CheckAbsoluteTime("--from", request.from()); !s.ok()) return s;
  }
  absl::StatusOr<Catalog> source_catalog = Catalog::Load(source);
  if (!source_catalog.ok()) return source_catalog.status();
  absl::StatusOr<Catalog> target_catalog = Catalog::Load(target);
  if (!target_catalog.ok()) return target_catalog.status();
  if (absl::Status s = CheckSameVersion(source_catalog->version(), target_catalog->version());
      !s.ok()) {
    return s;
  }

  absl::StatusOr<std::vector<Hypertable>> all = source_catalog->ListHypertables(request.filter());
  if (!all.ok()) return all.status();
  std::vector<HypertableNode> nodes;
  std::map<int32_t, const Hypertable*> by_id;
  for (const Hypertable& h : *all) {
    nodes.push_back(HypertableNode{h.id, h.raw_hypertable_id, h.matched});
    by_id[h.id] = &h;
  }
  std::vector<int32_t> selected =
      SelectHypertables(nodes, request.cascade_up(), request.cascade_down());
  if (selected.empty() && !request.filter().empty()) {
    // Most likely a mistyped filter: say so rather than stage nothing.
    return absl::NotFoundError(absl::StrCat(
        "no hypertable or continuous aggregate matches --filter '", request.filter(), "'"));
  }

  absl::StatusOr<pg::Result> schema = target.Exec(sql::kSchemaExists);
  if (!schema.ok()) return schema.status();
  const bool schema_exists = schema->GetBool(0, 0);

  // Plan everything and collect every problem before writing anything.
  std::vector<std::string> problems;
  std::vector<Plan> plans;
  Findings findings;
  for (int32_t id : selected) {
    const Hypertable& h = *by_id.at(id);
    absl::StatusOr<UntilValue> until = source_catalog->ParseUntil(h, request.until());
    if (!until.ok()) {
      if (until.status().code() != absl::StatusCode::kInvalidArgument) return until.status();
      problems.push_back(std::string(until.status().message()));
      continue;
    }
    std::optional<UntilValue> from;
    if (!request.from().empty()) {
      absl::StatusOr<UntilValue> parsed = source_catalog->ParseTime(h, "--from", request.from());
      if (!parsed.ok()) {
        if (parsed.status().code() != absl::StatusCode::kInvalidArgument) return parsed.status();
        problems.push_back(std::string(parsed.status().message()));
        continue;
      }
      if (parsed->internal >= until->internal) {
        problems.push_back(absl::StrCat("cannot stage ", Name(h), ": --from '", parsed->literal,
                                        "' is not before --until '", until->literal, "'"));
        continue;
      }
      from = *std::move(parsed);
    }
    absl::StatusOr<std::vector<Chunk>> chunks =
        source_catalog->ListChunks(h, until->internal, from ? from->internal : INT64_MIN);
    if (!chunks.ok()) return chunks.status();
    absl::StatusOr<std::optional<TargetHypertable>> in_target = target_catalog->FindHypertable(h);
    if (!in_target.ok()) return in_target.status();
    if (!in_target->has_value()) {
      // A hypertable with nothing to copy needs no counterpart in the target.
      if (chunks->empty()) continue;
      problems.push_back(absl::StrCat(
          Name(h), h.is_cagg() ? " is not a continuous aggregate" : " is not a hypertable",
          " in the target"));
      findings.Hint(
          "restore the source's schema and TimescaleDB catalog into the target first: see "
          "\"Preparing the target\" in the README");
      continue;
    }
    std::vector<std::string> notes;
    if (absl::Status s = CheckTargetColumns(source, target, h, **in_target, &problems, &notes);
        !s.ok()) {
      return s;
    }
    Plan plan{h, **in_target, *until, from, {}, std::move(notes)};
    plan.chunks.reserve(chunks->size());
    for (Chunk& c : *chunks) {
      PlannedChunk p;
      p.cut = c.time_end > until->internal;
      p.cut_from = from.has_value() && c.time_start < from->internal;
      p.chunk = std::move(c);
      plan.chunks.push_back(std::move(p));
    }
    absl::StatusOr<std::map<std::pair<std::string, std::string>, StagedTask>> staged =
        ReadStaged(target, schema_exists, h);
    if (!staged.ok()) return staged.status();
    Reconcile(*staged, &plan, &problems);
    plans.push_back(std::move(plan));
  }
  // Preflight on what the plan would touch; its findings join the planning problems.
  {
    std::vector<std::string> source_tables, target_tables;
    for (const Plan& plan : plans) {
      source_tables.push_back(plan.hypertable.QualifiedName());
      target_tables.push_back(QuoteQualified(plan.target.schema, plan.target.name));
    }
    if (!request.allow_active_jobs()) {
      if (absl::Status s = CheckActiveJobs(target, target_tables, &findings); !s.ok()) return s;
    }
    if (absl::Status s = CheckPrivileges(source, source_tables, target, target_tables, &findings);
        !s.ok()) {
      return s;
    }
    if (!request.replace_target_rows()) {
      for (const Plan& plan : plans) {
        if (absl::Status s = CheckTargetRows(target, plan, &findings); !s.ok()) return s;
      }
    }
  }
  problems.insert(problems.end(), findings.problems.begin(), findings.problems.end());
  if (problems.size() == 1 && findings.hints.empty()) {
    const std::string& only = problems.front();
    return absl::FailedPreconditionError(
        absl::StartsWith(only, "cannot stage") ? only : absl::StrCat("cannot stage ", only));
  }
  findings.problems = std::move(problems);
  if (absl::Status s = findings.ToStatus("cannot stage"); !s.ok()) return s;

  size_t planned_chunks = 0;
  for (const Plan& plan : plans) planned_chunks += plan.chunks.size();
  const std::string nothing = planned_chunks > 0 ? ""
                              : selected.empty() ? "the source has no hypertables"
                              : request.from().empty()
                                  ? "no chunk of the selected hypertables has rows before --until"
                                  : "no chunk of the selected hypertables has rows in the window "
                                    "[--from, --until)";
  if (request.dry_run()) {
    absl::StatusOr<v1::StageResponse> planned = DryRun(source, plans);
    if (planned.ok()) planned->set_nothing_to_stage(nothing);
    return planned;
  }
  if (absl::Status s = MigrateTaskSchema(target); !s.ok()) return s;
  v1::StageResponse response;
  int64_t created = 0;
  for (const Plan& plan : plans) {
    const Hypertable& h = plan.hypertable;
    v1::StagedHypertable* staged = AddHypertable(plan, &response);
    for (const PlannedChunk& p : plan.chunks) {
      if (p.action == Action::kKeep) {
        staged->set_chunks_already_staged(staged->chunks_already_staged() + 1);
      }
    }
    for (size_t start = 0; start < plan.chunks.size(); start += kBatchSize) {
      std::vector<const PlannedChunk*> batch;
      for (size_t i = start; i < std::min(plan.chunks.size(), start + kBatchSize); ++i) {
        batch.push_back(&plan.chunks[i]);
      }
      if (absl::Status s = WriteBatch(target, *target_catalog, plan, batch, staged, &created);
          !s.ok()) {
        return s;
      }
    }
    LOG(INFO) << "staged " << staged->chunks_staged() << " chunks of " << Name(h) << " ("
              << staged->chunks_widened() << " widened, " << staged->chunks_already_staged()
              << " already staged)";
  }
  response.set_target_chunks_created(created);
  response.set_nothing_to_stage(nothing);
  return response;
}

}  // namespace backfill
