// HTTP/2 keepalive for the streams between target-side and source-side workers: a link that
// goes silent (a cable pulled, a peer's host gone) ends the stream within about 10 s
// instead of leaving a copy waiting for data that never comes.
#pragma once

namespace grpc {
class ChannelArguments;
class ServerBuilder;
}  // namespace grpc

namespace backfill {

// Pings every 5 s and gives the link up 5 s after an unanswered one.
void SetKeepalive(grpc::ChannelArguments* arguments);
// Lets clients ping that often, and pings them the same way.
void AllowKeepalivePings(grpc::ServerBuilder& builder);

}  // namespace backfill
