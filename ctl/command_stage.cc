// stage: plan the migration in the target (or only report the plan, --dry-run).
#include "ctl/command.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/quote.h"

namespace backfill {

namespace {

// The cutoff as the coordinator parsed it, and what the user should know about the target.
void PrintCutoffAndNotes(const v1::StagedHypertable& h) {
  if (!h.from().empty()) std::cout << "  rows from " << h.from() << "\n";
  if (!h.until().empty()) std::cout << "  rows before " << h.until() << "\n";
  for (const std::string& note : h.notes()) std::cout << "  note: " << note << "\n";
}

int PrintDryRun(const v1::StageResponse& response, const CtlOptions& options) {
  int64_t chunks = 0, bytes = 0, uncompressed = 0;
  for (const v1::StagedHypertable& h : response.hypertables()) {
    int64_t h_bytes = 0, h_uncompressed = 0;
    std::cout << (h.cagg_view().empty() ? DisplayName(h.schema(), h.name())
                                        : "continuous aggregate " + h.cagg_view())
              << ": " << h.chunks_staged() << " chunks to stage";
    if (h.chunks_widened() > 0) std::cout << ", " << h.chunks_widened() << " to widen";
    if (h.chunks_already_staged() > 0) {
      std::cout << ", " << h.chunks_already_staged() << " already staged";
    }
    std::cout << "\n";
    PrintCutoffAndNotes(h);
    for (const v1::PlannedChunk& c : h.planned()) {
      std::cout << "  " << c.action() << " " << c.chunk() << ": "
                << (c.compressed()
                        ? absl::StrCat("compressed, ", HumanBytes(c.bytes()), " (",
                                       HumanBytes(c.uncompressed_bytes()), " uncompressed)")
                        : HumanBytes(c.bytes()))
                << (c.cut_from() ? ", cut at --from" : "") << (c.cut() ? ", cut at --until" : "")
                << "\n";
      if (c.action() == "already staged") continue;
      ++chunks;
      h_bytes += c.bytes();
      h_uncompressed += c.uncompressed_bytes();
    }
    std::cout << "  to copy: " << HumanBytes(h_bytes) << " on disk, " << HumanBytes(h_uncompressed)
              << " uncompressed\n";
    bytes += h_bytes;
    uncompressed += h_uncompressed;
  }
  std::cout << "Total to copy: " << chunks << " chunks, " << HumanBytes(bytes) << " on disk ("
            << HumanBytes(uncompressed) << " uncompressed).\n";
  // Compressed chunks go across compressed: what moves is roughly their size on disk.
  double rate = options.throughput_mib * 1024 * 1024;
  std::string source = "given with --throughput";
  if (rate <= 0 && response.sampled_bytes_per_second() > 0) {
    rate = response.sampled_bytes_per_second();
    source = "the source's read rate on a sample chunk; writing the target usually takes longer";
  }
  if (rate > 0) {
    std::cout << "Estimated copy time with one worker: "
              << HumanDuration(absl::Seconds(static_cast<double>(bytes) / rate)) << " at "
              << HumanBytes(static_cast<int64_t>(rate)) << "/s (" << source
              << "); workers in parallel divide it, up to what the databases sustain.\n";
  } else {
    std::cout << "No estimate: no uncompressed chunk to sample; give --throughput.\n";
  }
  std::cout << "Dry run: nothing was written to either database." << std::endl;
  return kExitOk;
}

}  // namespace

int RunStage(ControlClient& client, const CtlOptions& options) {
  v1::StageRequest request;
  *request.mutable_databases() = options.databases;
  request.set_until(options.until);
  request.set_from(options.from);
  request.set_filter(options.filter);
  request.set_cascade_up(options.cascade_up);
  request.set_cascade_down(options.cascade_down);
  request.set_dry_run(options.dry_run);
  request.set_allow_active_jobs(options.allow_active_jobs);
  request.set_replace_target_rows(options.replace_target_rows);
  absl::StatusOr<v1::StageResponse> response = client.Stage(request);
  if (!response.ok()) return Fail(response.status());
  if (!response->nothing_to_stage().empty()) {
    std::cout << "Nothing to stage: " << response->nothing_to_stage() << "."
              << (options.dry_run ? "" : " The target's __backfill schema is ready.") << std::endl;
    return kExitOk;
  }
  if (options.dry_run) return PrintDryRun(*response, options);
  int64_t staged = 0, already = 0, widened = 0;
  for (const v1::StagedHypertable& h : response->hypertables()) {
    std::cout << "staged " << h.chunks_staged() << " chunks of "
              << (h.cagg_view().empty() ? DisplayName(h.schema(), h.name())
                                        : "continuous aggregate " + h.cagg_view());
    if (h.chunks_cut_from() > 0 && h.chunks_cut() > 0) {
      std::cout << " (" << h.chunks_cut_from() << " cut at --from, " << h.chunks_cut()
                << " cut at --until)";
    } else if (h.chunks_cut_from() > 0) {
      std::cout << " (" << h.chunks_cut_from() << " cut at --from)";
    } else if (h.chunks_cut() > 0) {
      std::cout << " (" << h.chunks_cut() << " cut at --until)";
    }
    if (h.chunks_widened() > 0) {
      std::cout << "; " << h.chunks_widened() << " widened to the new range (re-opened: copy "
                << "copies them again)";
    }
    if (h.chunks_already_staged() > 0) {
      std::cout << "; " << h.chunks_already_staged() << " were already staged";
    }
    std::cout << "\n";
    PrintCutoffAndNotes(h);
    staged += h.chunks_staged();
    already += h.chunks_already_staged();
    widened += h.chunks_widened();
  }
  std::cout << "Staged " << staged << " chunks to copy (" << response->target_chunks_created()
            << " target chunks created";
  if (widened > 0) std::cout << ", " << widened << " chunks widened and re-opened";
  if (already > 0) std::cout << ", " << already << " chunks already staged";
  std::cout << ").\nExecute the 'copy' command to migrate the data." << std::endl;
  return kExitOk;
}

}  // namespace backfill
