// A source-side worker's SourceService (backfill-worker --source-side): next to the source,
// it holds the source sessions of tasks that target-side workers lease, one Read stream per
// task, and sends their COPY data compressed (block_codec.h). It writes nothing anywhere: the
// target-side worker's target transaction alone commits the rows and the task's completion,
// so a source-side worker that dies or is cut off only fails that attempt.
//
// Thread-safe; gRPC serves each stream on a thread of its own.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/credentials.h"

namespace backfill {

struct SourceSideOptions {
  // The source's connection string (the worker's --source): the only database its sessions
  // read. Target-side workers never send one; the source's password stays on this side.
  std::string source;
  std::string application_name = "backfill-worker";
  int compression_level = 1;  // zstd
};

class SourceSideServer {
 public:
  // Listens on `address` (HOST:PORT; port 0 picks one). Every call must carry `token` when it
  // is not empty; TLS as the coordinator's (ServerCredentials).
  static absl::StatusOr<std::unique_ptr<SourceSideServer>> Start(const std::string& address,
                                                                 const std::string& token,
                                                                 const TlsFiles& tls,
                                                                 SourceSideOptions options);
  ~SourceSideServer();

  int port() const;
  // Source sessions held now.
  int sessions() const;
  // Refuses new sessions from now on; those held go on to their end.
  void Drain();
  // Ends every stream (their attempts fail and are tried again) and stops listening.
  void Shutdown();

 private:
  struct Impl;
  explicit SourceSideServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace backfill
