// verify: compare every copied chunk with its source and report the differences.
#include "ctl/command.h"

#include <iostream>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace backfill {

int RunVerify(ControlClient& client, const CtlOptions& options) {
  v1::VerifyRequest request;
  *request.mutable_databases() = options.databases;
  request.set_row_hash(options.row_hash);
  ProgressDisplay display(StyleFor(options, /*json_progress=*/false), "verified", std::cerr,
                          options.progress_interval, TerminalWidth());
  absl::StatusOr<v1::VerifyResponse> response = client.Verify(
      request,
      [&](const v1::CopyProgress& progress) { display.Update(CountsOf(progress), absl::Now()); });
  display.Clear();
  if (!response.ok()) return Fail(response.status());
  if (options.json) {
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    print.always_print_primitive_fields = true;
    (void)google::protobuf::util::MessageToJsonString(*response, &json, print);
    std::cout << json << std::endl;
    return response->mismatches() > 0 ? kExitVerifyMismatch : kExitOk;
  }
  for (const v1::ChunkVerification& c : response->chunks()) {
    if (c.matches()) continue;
    std::cout << "MISMATCH " << c.hypertable() << " chunk " << c.source_chunk() << " -> "
              << c.target_chunk();
    if (!c.error().empty()) {
      std::cout << ": " << c.error() << "\n";
      continue;
    }
    std::cout << " (" << c.method() << ")\n";
    for (const v1::Difference& d : c.differences()) {
      std::cout << "  " << d.what() << ": source " << d.source() << ", target " << d.target()
                << "\n";
    }
  }
  int64_t rows = 0;
  for (const v1::ChunkVerification& c : response->chunks()) rows += c.source_rows();
  std::cout << "Verified " << response->chunks_size() << " chunks: " << response->mismatches()
            << " differ. " << rows << " rows compared." << std::endl;
  return response->mismatches() > 0 ? kExitVerifyMismatch : kExitOk;
}

}  // namespace backfill
