#include "worker/source_side_session.h"

#include <glog/logging.h>
#include <grpcpp/grpcpp.h>

#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "backfill.grpc.pb.h"
#include "proto/keepalive.h"

namespace backfill {
namespace {

constexpr char kLostPayload[] = "backfill/source-side-lost";

}  // namespace

bool SourceSideLost(const absl::Status& status) {
  return status.GetPayload(kLostPayload).has_value();
}

struct SourceSideSession::Stream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SourceRequest, v1::SourceReply>> rpc;
  std::optional<grpc::Status> status;  // once finished

  const grpc::Status& Finish() {
    if (!status.has_value()) status = rpc->Finish();
    return *status;
  }
};

SourceSideSession::SourceSideSession(std::unique_ptr<Stream> stream, std::string address,
                                     RateLimiter* limiter)
    : stream_(std::move(stream)),
      address_(std::move(address)),
      role_(absl::StrCat("source (through the source-side worker at ", address_, ")")),
      limiter_(limiter) {}

SourceSideSession::~SourceSideSession() {
  if (stream_->status.has_value()) return;
  // The session ends with the stream, however it ends: the source-side worker rolls back and
  // disconnects. Cancelling ends the call at once, where half-closing it would wait a round
  // trip for the source-side worker's status (and for answers not read, or a COPY in flight).
  stream_->context.TryCancel();
  (void)stream_->Finish();
}

absl::string_view SourceSideSession::Lost() const {
  return opened_ ? "the connection was lost"
                 : "no session could be opened (is it running at that address, and do both "
                   "sides agree on TLS: --tls-ca, --tls-cert, --tls-key?)";
}

absl::Status SourceSideSession::Broken(absl::string_view what, bool call_ended) {
  const bool cancelled = broken_.exchange(true);
  // A call still open (an answer out of order) is ended here, or Finish would wait for a
  // server that waits for the next request.
  if (!call_ended) stream_->context.TryCancel();
  const grpc::Status& status = stream_->Finish();
  const std::string why =
      status.ok() ? std::string() : absl::StrCat(" (", status.error_message(), ")");
  switch (status.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::INVALID_ARGUMENT:
      // A configuration problem (another token, another release): trying again cannot help,
      // and the source-side worker is not lost.
      return absl::FailedPreconditionError(
          absl::StrCat("source-side worker at ", address_, " refused the session", why));
    default:
      break;
  }
  absl::Status error =
      absl::UnavailableError(absl::StrCat("source-side worker at ", address_, ": ", what, why));
  // Cancelled here (a stop, an abort, a lost lease): not the source-side worker's doing.
  if (!cancelled) {
    lost_ = true;
    error.SetPayload(kLostPayload, absl::Cord("1"));
  }
  return error;
}

absl::Status SourceSideSession::ErrorOf(const v1::SourceReply& reply) const {
  const v1::SourceError& error = reply.error();
  if (!error.sqlstate().empty()) return pg::ServerError(error.sqlstate(), error.message());
  const int code = error.code();
  return absl::Status(
      code > 0 && code <= 16 ? static_cast<absl::StatusCode>(code) : absl::StatusCode::kUnknown,
      error.message());
}

absl::StatusOr<v1::SourceReply> SourceSideSession::Next() {
  v1::SourceReply reply;
  if (broken_.load()) return absl::UnavailableError("the source-side session has ended");
  if (!stream_->rpc->Read(&reply)) return Broken(Lost(), /*call_ended=*/true);
  return reply;
}

absl::Status SourceSideSession::Drain() {
  absl::Status first;
  for (; pending_ > 0; --pending_) {
    absl::StatusOr<v1::SourceReply> reply = Next();
    if (!reply.ok()) return reply.status();
    if (reply->has_error()) {
      if (first.ok()) first = ErrorOf(*reply);
    } else if (!reply->done()) {
      return Broken("an answer out of order", /*call_ended=*/false);
    }
  }
  return first;
}

absl::StatusOr<v1::SourceReply> SourceSideSession::Call(const v1::SourceRequest& request) {
  if (broken_.load()) return absl::UnavailableError("the source-side session has ended");
  if (in_copy_out_) return absl::FailedPreconditionError("a COPY OUT is in progress");
  if (!stream_->rpc->Write(request)) return Broken(Lost(), /*call_ended=*/true);
  ++round_trips_;
  const absl::Status before = Drain();
  // Broken while draining, or cancelled from another thread meanwhile.
  if (!ok()) {
    return before.ok() ? absl::UnavailableError("the source-side session has ended") : before;
  }
  absl::StatusOr<v1::SourceReply> reply = Next();
  if (!reply.ok()) return reply.status();
  // A script before it failed (its transaction did not begin): that comes first.
  if (!before.ok()) return before;
  if (reply->has_error()) return ErrorOf(*reply);
  if (!reply->done()) return Broken("an answer out of order", /*call_ended=*/false);
  return reply;
}

absl::StatusOr<pg::Result> SourceSideSession::ExecParams(absl::string_view sql,
                                                         const std::vector<pg::Param>& params) {
  v1::SourceRequest request;
  request.set_sql(std::string(sql));
  for (const pg::Param& p : params) {
    v1::Cell* cell = request.add_params();
    if (p.has_value()) cell->set_value(*p);
  }
  absl::StatusOr<v1::SourceReply> reply = Call(request);
  if (!reply.ok()) return reply.status();
  std::vector<std::string> columns(reply->columns().begin(), reply->columns().end());
  std::vector<pg::Param> cells;
  cells.reserve(reply->cells_size());
  for (const v1::Cell& cell : reply->cells()) {
    cells.push_back(cell.has_value() ? pg::Param(cell.value()) : std::nullopt);
  }
  return pg::Result::FromText(columns, cells);
}

absl::Status SourceSideSession::ExecScript(absl::string_view sql) {
  if (broken_.load()) return absl::UnavailableError("the source-side session has ended");
  if (in_copy_out_) return absl::FailedPreconditionError("a COPY OUT is in progress");
  v1::SourceRequest request;
  request.set_script(std::string(sql));
  if (!stream_->rpc->Write(request)) return Broken(Lost(), /*call_ended=*/true);
  ++pending_;
  return absl::OkStatus();
}

absl::Status SourceSideSession::StartCopyOut(absl::string_view copy_out_sql) {
  if (broken_.load()) return absl::UnavailableError("the source-side session has ended");
  if (in_copy_out_) return absl::FailedPreconditionError("a COPY OUT is in progress");
  v1::SourceRequest request;
  request.set_copy_out(std::string(copy_out_sql));
  if (!stream_->rpc->Write(request)) return Broken(Lost(), /*call_ended=*/true);
  ++round_trips_;
  if (absl::Status before = Drain(); !before.ok()) {
    // The COPY's data may follow: end the call rather than read it.
    if (ok()) Cancel();
    return before;
  }
  in_copy_out_ = true;
  return absl::OkStatus();
}

absl::StatusOr<bool> SourceSideSession::ReadCopyOut(std::string* data, size_t at_least) {
  if (!in_copy_out_) return absl::FailedPreconditionError("no COPY OUT in progress");
  const size_t until = data->size() + at_least;
  while (data->size() < until) {
    absl::StatusOr<v1::SourceReply> reply = Next();
    if (!reply.ok()) {
      in_copy_out_ = false;
      return reply.status();
    }
    if (reply->has_error() || reply->done()) {
      in_copy_out_ = false;
      if (reply->has_error()) return ErrorOf(*reply);
      return false;
    }
    const std::string& block = reply->data();
    if (limiter_ != nullptr) limiter_->Consume(static_cast<int64_t>(block.size()));
    link_bytes_ += static_cast<int64_t>(block.size());
    raw_bytes_ += reply->raw_bytes();
    if (reply->compressed()) {
      if (absl::Status s =
              decompressor_.Decompress(block, static_cast<size_t>(reply->raw_bytes()), data);
          !s.ok()) {
        in_copy_out_ = false;
        AbortCopyOut();
        return s;
      }
    } else {
      data->append(block);
    }
  }
  return true;
}

void SourceSideSession::AbortCopyOut() {
  in_copy_out_ = false;
  Cancel();
}

void SourceSideSession::Cancel() {
  broken_ = true;
  stream_->context.TryCancel();
}

struct SourceSideConnector::Impl {
  std::string token;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::shared_ptr<v1::SourceService::Stub>> stubs
      ABSL_GUARDED_BY(mu);
};

SourceSideConnector::SourceSideConnector(std::string token,
                                         std::shared_ptr<grpc::ChannelCredentials> credentials)
    : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  impl_->credentials = std::move(credentials);
}

SourceSideConnector::~SourceSideConnector() = default;

absl::StatusOr<std::unique_ptr<SourceSideSession>> SourceSideConnector::Open(
    const std::string& address, const v1::SourceOpen& open, RateLimiter* limiter) {
  std::shared_ptr<v1::SourceService::Stub> stub;
  {
    absl::MutexLock lock(&impl_->mu);
    std::shared_ptr<v1::SourceService::Stub>& slot = impl_->stubs[address];
    if (slot == nullptr) {
      grpc::ChannelArguments arguments;
      SetKeepalive(&arguments);
      arguments.SetMaxReceiveMessageSize(64 << 20);
      slot = v1::SourceService::NewStub(
          grpc::CreateCustomChannel(address, impl_->credentials, arguments));
    }
    stub = slot;
  }
  auto stream = std::make_unique<SourceSideSession::Stream>();
  if (!impl_->token.empty()) stream->context.AddMetadata("authorization", "Bearer " + impl_->token);
  // A source-side worker that is down is found out within this; the data may take as long
  // as it needs.
  stream->context.set_wait_for_ready(false);
  stream->rpc = stub->Read(&stream->context);
  std::unique_ptr<SourceSideSession> session(
      new SourceSideSession(std::move(stream), address, limiter));
  v1::SourceRequest request;
  *request.mutable_open() = open;
  absl::StatusOr<v1::SourceReply> opened = session->Call(request);
  if (!opened.ok()) return opened.status();
  session->opened_ = true;
  session->timescaledb_version_ = opened->timescaledb_version();
  return session;
}

}  // namespace backfill
