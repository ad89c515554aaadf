#include "worker/source_side_server.h"

#include <glog/logging.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "backfill.grpc.pb.h"
#include "common/block_codec.h"
#include "common/catalog.h"
#include "common/pg.h"
#include "proto/authorize.h"
#include "proto/keepalive.h"
#include "worker/source_guard.h"

namespace backfill {
namespace {

// COPY data is compressed in blocks of this size: large enough for zstd to find the
// repetition across rows, small enough that one block never waits long on a slow link.
constexpr size_t kBlockBytes = size_t{1} << 20;

void SetError(const absl::Status& status, v1::SourceReply* reply) {
  v1::SourceError* error = reply->mutable_error();
  error->set_sqlstate(pg::SqlState(status).value_or(""));
  error->set_message(std::string(status.message()));
  error->set_code(static_cast<int>(status.code()));
}

std::vector<pg::Param> Params(const v1::SourceRequest& request) {
  std::vector<pg::Param> params;
  params.reserve(request.params_size());
  for (const v1::Cell& cell : request.params()) {
    params.push_back(cell.has_value() ? pg::Param(cell.value()) : std::nullopt);
  }
  return params;
}

// Runs `body` in a read-only transaction: the caller's (begun READ ONLY, CheckSourceScript),
// or one of its own around it, so that nothing the session was told before can make it write.
absl::Status InReadOnlyTransaction(pg::Connection& conn, absl::FunctionRef<absl::Status()> body) {
  if (conn.in_transaction()) return body();
  if (absl::Status s = conn.ExecScript("BEGIN READ ONLY"); !s.ok()) return s;
  const absl::Status status = body();
  const absl::Status end = conn.ExecScript(status.ok() ? "COMMIT" : "ROLLBACK");
  return status.ok() ? end : status;
}

// One statement; its rows into `reply`.
absl::Status Query(pg::Connection& conn, const v1::SourceRequest& request, v1::SourceReply* reply) {
  absl::StatusOr<pg::Result> result = conn.Exec(request.sql(), Params(request));
  if (!result.ok()) return result.status();
  for (int c = 0; c < result->columns(); ++c) reply->add_columns(result->ColumnName(c));
  for (int r = 0; r < result->rows(); ++r) {
    for (int c = 0; c < result->columns(); ++c) {
      v1::Cell* cell = reply->add_cells();
      if (!result->IsNull(r, c)) cell->set_value(result->Get(r, c));
    }
  }
  return absl::OkStatus();
}

// Runs `statement` (a checked COPY ... TO STDOUT) and streams its data in blocks; `*gone`
// when the caller went away mid-stream (the COPY is ended).
absl::Status CopyOut(pg::Connection& conn, const std::string& statement,
                     grpc::ServerReaderWriter<v1::SourceReply, v1::SourceRequest>* stream,
                     BlockCompressor& compressor, int64_t* raw_total, int64_t* sent_total,
                     bool* gone) {
  if (absl::Status s = conn.StartCopyOut(statement); !s.ok()) return s;
  for (bool more = true; more;) {
    std::string raw;
    absl::StatusOr<bool> read = conn.ReadCopyOut(&raw, kBlockBytes);
    if (!read.ok()) return read.status();
    more = *read;
    // A row larger than a block makes a larger read: it goes in block-sized slices (COPY
    // FROM takes any split of the stream), so no reply exceeds the limits.
    for (size_t at = 0; at < raw.size(); at += kBlockBytes) {
      const absl::string_view slice = absl::string_view(raw).substr(at, kBlockBytes);
      v1::SourceReply block;
      block.set_raw_bytes(static_cast<int64_t>(slice.size()));
      std::string* data = block.mutable_data();
      if (compressor.Compress(slice, data)) {
        block.set_compressed(true);
      } else {
        data->assign(slice.data(), slice.size());
      }
      *raw_total += block.raw_bytes();
      *sent_total += static_cast<int64_t>(data->size());
      if (!stream->Write(block)) {
        conn.AbortCopyOut();
        *gone = true;
        return absl::CancelledError("the target-side worker went away");
      }
    }
  }
  return absl::OkStatus();
}

// Cancels the source statement of every stream whose caller has gone (it cancelled, its
// lease was lost, the link died and keepalive found out): a long query or COPY stops at once
// instead of running on for no one. gRPC's synchronous API has no callback for it: one
// thread looks every 100 ms.
class CancelWatch {
 public:
  CancelWatch() : thread_([this] { Run(); }) {}
  ~CancelWatch() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }
  void Add(grpc::ServerContext* context, pg::Connection* conn) {
    absl::MutexLock lock(&mu_);
    watched_[context] = conn;
  }
  // Once it returns, the connection is no longer touched.
  void Remove(grpc::ServerContext* context) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* cancelling) { return !*cancelling; }, &cancelling_));
    watched_.erase(context);
  }

 private:
  void Run() {
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(100))) {
      // Again at every tick until the stream's thread is done with it: a cancel that lands
      // between two statements is lost, the next one would run on.
      std::vector<pg::Connection*> gone;
      for (const auto& [context, conn] : watched_) {
        if (context->IsCancelled()) gone.push_back(conn);
      }
      if (gone.empty()) continue;
      // PQcancel connects to the server and may wait: not under the lock, which session
      // opens and ends take; Remove waits for it instead.
      cancelling_ = true;
      mu_.Unlock();
      for (pg::Connection* conn : gone) conn->Cancel();  // PQcancel: safe from any thread
      mu_.Lock();
      cancelling_ = false;
    }
  }

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelling_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<grpc::ServerContext*, pg::Connection*> watched_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class SourceServiceImpl final : public v1::SourceService::Service {
 public:
  SourceServiceImpl(std::string token, SourceSideOptions options)
      : token_(std::move(token)), options_(std::move(options)) {}

  grpc::Status Read(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::SourceReply, v1::SourceRequest>* stream) override {
    if (grpc::Status auth = Authorize(context, token_, "Read", "the source-side worker");
        !auth.ok()) {
      return auth;
    }
    v1::SourceRequest request;
    if (!stream->Read(&request) || !request.has_open()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a Read stream begins with open");
    }
    if (draining_.load()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the source-side worker is stopping");
    }
    const v1::SourceOpen& open = request.open();
    const std::string what = absl::StrCat("task ", open.task_id(), " (epoch ", open.lease_epoch(),
                                          ") for worker ", open.worker_id());
    absl::StatusOr<std::unique_ptr<pg::Connection>> conn =
        pg::Connection::Open(options_.source, options_.application_name, "source");
    v1::SourceReply reply;
    // Every statement a copy or a verification runs on the source reads; a session that
    // starts read-only keeps a mistake from writing there (a user that can only read the
    // source keeps anything from it).
    if (conn.ok()) {
      if (absl::Status s = (*conn)->ExecScript("SET default_transaction_read_only = on"); !s.ok()) {
        conn = s;
      }
    }
    // The version check every task's session makes, here next to the source.
    std::string version;
    if (conn.ok()) {
      absl::StatusOr<Catalog> catalog = Catalog::Load(**conn);
      if (catalog.ok()) {
        version = catalog->version().text;
      } else {
        conn = catalog.status();
      }
    }
    if (!conn.ok()) {
      LOG(WARNING) << "cannot open a source session for " << what << ": "
                   << conn.status().message();
      SetError(conn.status(), &reply);
      stream->Write(reply);
      return grpc::Status::OK;
    }
    ++sessions_;
    cancel_watch_.Add(context, conn->get());
    absl::Cleanup release = [this, context] {
      cancel_watch_.Remove(context);
      --sessions_;
    };
    VLOG(1) << "source session for " << what;
    reply.set_done(true);
    reply.set_timescaledb_version(version);
    if (!stream->Write(reply)) return grpc::Status::CANCELLED;
    BlockCompressor compressor(options_.compression_level);
    int64_t raw_total = 0, sent_total = 0;
    int requests = 0;
    while (stream->Read(&request)) {
      ++requests;
      reply.Clear();
      absl::Status status;
      bool gone = false;
      switch (request.request_case()) {
        case v1::SourceRequest::kScript:
          status = CheckSourceScript(request.script());
          if (status.ok()) status = (*conn)->ExecScript(request.script());
          // A transaction it began takes its snapshot at once: from then on PostgreSQL
          // refuses to make it read-write, whatever a later statement turns out to be.
          if (status.ok() && (*conn)->in_transaction()) status = (*conn)->ExecScript("SELECT 1");
          break;
        case v1::SourceRequest::kSql:
          status = CheckSourceQuery(request.sql());
          if (status.ok()) {
            status = InReadOnlyTransaction(**conn, [&] { return Query(**conn, request, &reply); });
          }
          break;
        case v1::SourceRequest::kCopyOut: {
          absl::StatusOr<SourceCopy> copy = CheckSourceCopy(request.copy_out());
          status = copy.status();
          if (status.ok()) {
            status = InReadOnlyTransaction(**conn, [&] {
              // COPY (query): the query alone must be one statement, or it could end the
              // parenthesis and add a destination of its own.
              if (!copy->query.empty()) {
                if (absl::Status parsed = (*conn)->Parse(copy->query); !parsed.ok()) return parsed;
              }
              return CopyOut(**conn, copy->statement, stream, compressor, &raw_total, &sent_total,
                             &gone);
            });
          }
          break;
        }
        default:
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unknown request");
      }
      if (gone) return grpc::Status::CANCELLED;  // the target-side worker went away
      if (!status.ok() && status.code() == absl::StatusCode::kInvalidArgument &&
          !pg::SqlState(status).has_value()) {
        LOG(WARNING) << what << ": refused: " << status.message();
      }
      if (status.ok()) {
        reply.set_done(true);
      } else {
        SetError(status, &reply);
      }
      if (!stream->Write(reply)) return grpc::Status::CANCELLED;
    }
    // Each request is a round trip across the link: their number is what a far source costs
    // a chunk besides its bytes.
    VLOG(1) << what << ": " << requests << " requests; sent " << sent_total << " bytes for "
            << raw_total << " bytes of COPY data";
    return grpc::Status::OK;
  }

  std::atomic<int> sessions_{0};
  std::atomic<bool> draining_{false};

 private:
  const std::string token_;
  const SourceSideOptions options_;
  CancelWatch cancel_watch_;
};

}  // namespace

struct SourceSideServer::Impl {
  Impl(std::string token, SourceSideOptions options)
      : service(std::move(token), std::move(options)) {}
  SourceServiceImpl service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

SourceSideServer::SourceSideServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SourceSideServer::~SourceSideServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<SourceSideServer>> SourceSideServer::Start(
    const std::string& address, const std::string& token, const TlsFiles& tls,
    SourceSideOptions options) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ServerCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  auto impl = std::make_unique<Impl>(token, std::move(options));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, *credentials, &impl->port);
  builder.RegisterService(&impl->service);
  builder.SetMaxReceiveMessageSize(4 << 20);
  AllowKeepalivePings(builder);
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": the address is invalid or already in use"));
  }
  return std::unique_ptr<SourceSideServer>(new SourceSideServer(std::move(impl)));
}

int SourceSideServer::port() const { return impl_->port; }

int SourceSideServer::sessions() const { return impl_->service.sessions_.load(); }

void SourceSideServer::Drain() { impl_->service.draining_ = true; }

void SourceSideServer::Shutdown() {
  if (impl_->server != nullptr) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    impl_->server.reset();
  }
}

}  // namespace backfill
