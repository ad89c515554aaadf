// The target-side end of a source-side worker's SourceService: a leased task's source session,
// held by the source-side worker next to the source, used here as if it were a local one
// (pg::Queryable). COPY data arrives compressed and is decompressed block by block; a rate
// limiter, when given, counts the bytes as they cross the link.
//
// Thread-safety: one thread uses a session; Cancel() may come from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "backfill.pb.h"
#include "common/block_codec.h"
#include "common/pg.h"
#include "common/rate_limiter.h"

namespace grpc {
class ChannelCredentials;
}  // namespace grpc

namespace backfill {

class SourceSideSession : public pg::Queryable {
 public:
  ~SourceSideSession() override;

  absl::StatusOr<pg::Result> ExecParams(absl::string_view sql,
                                        const std::vector<pg::Param>& params) override;
  // Sent without waiting for its answer (transaction control: BEGIN, ROLLBACK), which is read
  // with the next request's: a round trip across the link saved each time. A failure is
  // returned by that next call; one with no next call is lost with the session.
  absl::Status ExecScript(absl::string_view sql) override;
  absl::Status StartCopyOut(absl::string_view copy_out_sql) override;
  absl::StatusOr<bool> ReadCopyOut(std::string* data, size_t at_least) override;
  // Ends the stream: the source-side worker stops the COPY and ends the session.
  void AbortCopyOut() override;
  void Cancel() override;
  bool ok() const override { return !broken_.load(); }
  const std::string& role() const override { return role_; }

  // The stream broke (the source-side worker went away, or the link to it), as opposed to a
  // statement failing on the source.
  bool lost() const { return lost_.load(); }
  // Paces the COPY data as it crosses the link; null: no limit.
  void set_limiter(RateLimiter* limiter) { limiter_ = limiter; }
  int64_t link_bytes() const { return link_bytes_; }  // COPY data as it crossed the link
  int64_t raw_bytes() const { return raw_bytes_; }    // the same, decompressed
  // Times this session waited for an answer across the link, the open included.
  int round_trips() const { return round_trips_; }
  // The source's TimescaleDB version, as the source-side worker read it at the open.
  const std::string& timescaledb_version() const { return timescaledb_version_; }

 private:
  friend class SourceSideConnector;
  struct Stream;
  SourceSideSession(std::unique_ptr<Stream> stream, std::string address, RateLimiter* limiter);
  // Sends `request` and reads its answer up to `done` or an error (COPY data excluded).
  absl::StatusOr<v1::SourceReply> Call(const v1::SourceRequest& request);
  // Reads the next reply; an error when the stream broke.
  absl::StatusOr<v1::SourceReply> Next();
  // Reads the answers of the scripts sent before (ExecScript), after the request that follows
  // them was sent; the first failure among them.
  absl::Status Drain();
  // What a broken stream means now: the link lost, or no session to begin with.
  absl::string_view Lost() const;
  // The stream broke (`call_ended`: Read or Write said so) or went wrong: ends it; the error
  // says whether the source-side worker is lost (SourceSideLost) or refused the session.
  absl::Status Broken(absl::string_view what, bool call_ended);
  absl::Status ErrorOf(const v1::SourceReply& reply) const;

  std::unique_ptr<Stream> stream_;
  const std::string address_;
  const std::string role_;
  RateLimiter* limiter_;
  BlockDecompressor decompressor_;
  std::atomic<bool> broken_{false};
  std::atomic<bool> lost_{false};
  bool opened_ = false;  // the source-side worker answered the open
  bool in_copy_out_ = false;
  int64_t link_bytes_ = 0;
  int64_t raw_bytes_ = 0;
  int pending_ = 0;  // scripts sent whose answers are not read yet
  int round_trips_ = 0;
  std::string timescaledb_version_;
};

// Whether `status` says a source-side worker could not be reached or went away (as opposed to
// a statement failing on the source, or the source refusing a connection).
bool SourceSideLost(const absl::Status& status);

// Opens SourceSideSessions, one channel per source-side worker address, kept. Thread-safe.
class SourceSideConnector {
 public:
  // Every stream carries `token` when it is not empty; `credentials` from ClientCredentials().
  SourceSideConnector(std::string token, std::shared_ptr<grpc::ChannelCredentials> credentials);
  ~SourceSideConnector();

  // A session on the source for `open`'s task, held by the source-side worker at `address`.
  // `limiter` (may be null) paces the COPY data. An error SourceSideLost() recognises when
  // the worker cannot be reached.
  absl::StatusOr<std::unique_ptr<SourceSideSession>> Open(const std::string& address,
                                                          const v1::SourceOpen& open,
                                                          RateLimiter* limiter);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace backfill
