#include "common/pg.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>
#include <string>

#include "absl/strings/match.h"

namespace backfill::pg {
namespace {

TEST(ConninfoTest, DescriptionNeverContainsThePassword) {
  for (const char* dsn : {"host=db.example port=5433 dbname=app user=alice password=s3cr3t",
                          "postgresql://alice:s3cr3t@db.example:5433/app"}) {
    std::string described = DescribeConninfo(dsn);
    EXPECT_FALSE(absl::StrContains(described, "s3cr3t")) << described;
    EXPECT_TRUE(absl::StrContains(described, "host=db.example")) << described;
    EXPECT_TRUE(absl::StrContains(described, "port=5433")) << described;
    EXPECT_TRUE(absl::StrContains(described, "dbname=app")) << described;
  }
}

TEST(ConninfoTest, InvalidStringsAreRejectedNamingTheRole) {
  absl::Status status = ValidateConninfo("host=x bogus_key=1", "source");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(status.message(), "invalid source connection string: "))
      << status.message();
  EXPECT_TRUE(ValidateConninfo("postgresql://u@h/db", "target").ok());
  EXPECT_TRUE(ValidateConninfo("", "target").ok());  // everything from PG* variables
}

TEST(ConninfoTest, UnreachableServerIsUnavailableAndNamesTheDatabase) {
  // Port 1 on loopback: nothing listens there, and the refusal is immediate.
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open(
      "host=127.0.0.1 port=1 user=nobody password=hunter2 dbname=x", "test", "source");
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StartsWith(conn.status().message(), "cannot connect to source database"))
      << conn.status().message();
  EXPECT_FALSE(absl::StrContains(conn.status().message(), "hunter2"));
  EXPECT_TRUE(IsRetryable(conn.status()));
}

TEST(ConninfoTest, UnresolvedNameIsTriedAgainThenNamed) {
  // .invalid never resolves (RFC 6761): every attempt fails, and the error says how many ran.
  absl::StatusOr<std::unique_ptr<Connection>> conn =
      Connection::Open("host=backfill-no-such-host.invalid dbname=x", "test", "target");
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(conn.status().message(), "could not translate host name"))
      << conn.status().message();
  // How many attempts fit in the 2 s depends on this machine's resolver: at least two.
  EXPECT_TRUE(std::regex_search(std::string(conn.status().message()),
                                std::regex(R"(\([2-5] attempts over \d)")))
      << conn.status().message();
}

TEST(StatusTest, RetryableIsDecidedByCode) {
  EXPECT_TRUE(IsRetryable(absl::UnavailableError("x")));
  EXPECT_TRUE(IsRetryable(absl::AbortedError("x")));
  EXPECT_FALSE(IsRetryable(absl::PermissionDeniedError("x")));
  EXPECT_FALSE(IsRetryable(absl::InvalidArgumentError("x")));
  EXPECT_FALSE(SqlState(absl::InternalError("x")).has_value());
}

}  // namespace
}  // namespace backfill::pg
