#include "worker/source_side_server.h"

#include <glog/logging.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "backfill.grpc.pb.h"
#include "common/block_codec.h"
#include "common/pg.h"
#include "proto/authorize.h"
#include "proto/keepalive.h"

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
    const std::string& conninfo =
        options_.source_override.empty() ? open.source() : options_.source_override;
    absl::StatusOr<std::unique_ptr<pg::Connection>> conn =
        pg::Connection::Open(conninfo, options_.application_name, "source");
    v1::SourceReply reply;
    // Every statement a copy or a verification runs on the source reads; a session that
    // starts read-only keeps a mistake from writing there (a user that can only read the
    // source keeps anything from it).
    if (conn.ok()) {
      if (absl::Status s = (*conn)->ExecScript("SET default_transaction_read_only = on"); !s.ok()) {
        conn = s;
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
    absl::Cleanup release = [this] { --sessions_; };
    VLOG(1) << "source session for " << what;
    reply.set_done(true);
    if (!stream->Write(reply)) return grpc::Status::CANCELLED;
    BlockCompressor compressor(options_.compression_level);
    int64_t raw_total = 0, sent_total = 0;
    while (stream->Read(&request)) {
      reply.Clear();
      absl::Status status;
      switch (request.request_case()) {
        case v1::SourceRequest::kScript:
          status = (*conn)->ExecScript(request.script());
          break;
        case v1::SourceRequest::kSql: {
          absl::StatusOr<pg::Result> result = (*conn)->Exec(request.sql(), Params(request));
          if (!result.ok()) {
            status = result.status();
            break;
          }
          for (int c = 0; c < result->columns(); ++c) reply.add_columns(result->ColumnName(c));
          for (int r = 0; r < result->rows(); ++r) {
            for (int c = 0; c < result->columns(); ++c) {
              v1::Cell* cell = reply.add_cells();
              if (!result->IsNull(r, c)) cell->set_value(result->Get(r, c));
            }
          }
          break;
        }
        case v1::SourceRequest::kCopyOut:
          status = (*conn)->StartCopyOut(request.copy_out());
          for (bool more = status.ok(); more;) {
            std::string raw;
            absl::StatusOr<bool> read = (*conn)->ReadCopyOut(&raw, kBlockBytes);
            if (!read.ok()) {
              status = read.status();
              break;
            }
            more = *read;
            // A row larger than a block makes a larger read: it goes in block-sized slices
            // (COPY FROM takes any split of the stream), so no reply exceeds the limits.
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
              raw_total += block.raw_bytes();
              sent_total += static_cast<int64_t>(data->size());
              if (!stream->Write(block)) {
                (*conn)->AbortCopyOut();
                return grpc::Status::CANCELLED;  // the target-side worker went away
              }
            }
          }
          break;
        default:
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unknown request");
      }
      if (status.ok()) {
        reply.set_done(true);
      } else {
        SetError(status, &reply);
      }
      if (!stream->Write(reply)) return grpc::Status::CANCELLED;
    }
    if (raw_total > 0) {
      VLOG(1) << what << ": sent " << sent_total << " bytes for " << raw_total
              << " bytes of COPY data";
    }
    return grpc::Status::OK;
  }

  std::atomic<int> sessions_{0};
  std::atomic<bool> draining_{false};

 private:
  const std::string token_;
  const SourceSideOptions options_;
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
