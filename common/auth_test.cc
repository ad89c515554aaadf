#include "common/auth.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>

namespace backfill {
namespace {

TEST(AuthTest, TokenComesFromTheFileTrimmedElseFromTheEnvironment) {
  const std::string path = ::testing::TempDir() + "/token";
  std::ofstream(path) << "  s3cret-token\n";
  setenv(kTokenEnvironmentVariable, "from-env", 1);
  EXPECT_EQ(LoadToken(path).value_or("?"), "s3cret-token");
  EXPECT_EQ(LoadToken("").value_or("?"), "from-env");
  unsetenv(kTokenEnvironmentVariable);
  EXPECT_EQ(LoadToken("").value_or("?"), "");
  std::remove(path.c_str());
}

TEST(AuthTest, UnreadableOrEmptyTokenFilesAreErrorsNamingTheFile) {
  EXPECT_EQ(LoadToken("/nonexistent/token").status().message(),
            "cannot read the token file /nonexistent/token");
  const std::string path = ::testing::TempDir() + "/empty-token";
  std::ofstream(path) << "\n";
  EXPECT_EQ(LoadToken(path).status().message(), "the token file " + path + " is empty");
  std::remove(path.c_str());
}

TEST(AuthTest, ComparisonIsExact) {
  EXPECT_TRUE(TokensEqual("abc", "abc"));
  EXPECT_FALSE(TokensEqual("abc", "abd"));
  EXPECT_FALSE(TokensEqual("abc", "abcd"));
  EXPECT_FALSE(TokensEqual("", "a"));
  EXPECT_TRUE(TokensEqual("", ""));
}

TEST(AuthTest, RandomTokensDiffer) {
  EXPECT_NE(RandomToken(), RandomToken());
  EXPECT_GE(RandomToken().size(), 40u);
}

}  // namespace
}  // namespace backfill
