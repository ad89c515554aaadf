// Runs in integration_tests (gRPC on loopback, no database), not under the sanitizers.
// A source-side worker's service and the session over it, without a database: what the
// target-side worker is told when the session cannot be had.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/pg.h"
#include "proto/credentials.h"
#include "worker/source_side_server.h"
#include "worker/source_side_session.h"

namespace backfill {
namespace {

v1::SourceOpen Open() {
  v1::SourceOpen open;
  open.set_task_id(1);
  open.set_lease_epoch(1);
  open.set_worker_id("t1");
  return open;
}

class SourceSideSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<SourceSideServer>> server =
        SourceSideServer::Start("127.0.0.1:0", "right-token", TlsFiles{},
                                SourceSideOptions{.source = "host=127.0.0.1 port=1 dbname=x "
                                                            "connect_timeout=2"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    address_ = absl::StrCat("127.0.0.1:", server_->port());
  }
  SourceSideConnector Connector(const std::string& token) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> plain = ClientCredentials(TlsFiles{});
    EXPECT_TRUE(plain.ok());
    return SourceSideConnector(token, *plain);
  }
  std::unique_ptr<SourceSideServer> server_;
  std::string address_;
};

TEST_F(SourceSideSessionTest, AnotherTokenIsRefusedForGoodAndIsNoLoss) {
  SourceSideConnector connector = Connector("wrong-token");
  absl::StatusOr<std::unique_ptr<SourceSideSession>> session =
      connector.Open(address_, Open(), nullptr);
  ASSERT_FALSE(session.ok());
  EXPECT_TRUE(absl::StrContains(session.status().message(), "refused the session"))
      << session.status();
  EXPECT_TRUE(absl::StrContains(session.status().message(), "bearer token")) << session.status();
  EXPECT_FALSE(pg::IsRetryable(session.status()));
  EXPECT_FALSE(SourceSideLost(session.status()));
}

TEST_F(SourceSideSessionTest, ASourceItCannotReachIsTheSourcesErrorNotALoss) {
  SourceSideConnector connector = Connector("right-token");
  absl::StatusOr<std::unique_ptr<SourceSideSession>> session =
      connector.Open(address_, Open(), nullptr);
  ASSERT_FALSE(session.ok());
  EXPECT_TRUE(absl::StrContains(session.status().message(), "cannot connect to source database"))
      << session.status();
  EXPECT_TRUE(pg::IsRetryable(session.status()));
  EXPECT_FALSE(SourceSideLost(session.status()));
  EXPECT_EQ(server_->sessions(), 0);
}

TEST_F(SourceSideSessionTest, NoWorkerAtTheAddressIsALoss) {
  SourceSideConnector connector = Connector("right-token");
  const std::string address = address_;
  server_->Shutdown();
  absl::StatusOr<std::unique_ptr<SourceSideSession>> session =
      connector.Open(address, Open(), nullptr);
  ASSERT_FALSE(session.ok());
  EXPECT_TRUE(absl::StrContains(session.status().message(), "source-side worker at " + address))
      << session.status();
  EXPECT_TRUE(pg::IsRetryable(session.status()));
  EXPECT_TRUE(SourceSideLost(session.status()));
}

}  // namespace
}  // namespace backfill
