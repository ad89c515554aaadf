#include "common/argv_scrub.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace backfill {
namespace {

std::vector<std::string> Scrub(std::vector<std::string> args) {
  std::vector<char*> argv;
  argv.reserve(args.size());
  for (std::string& a : args) argv.push_back(a.data());
  ScrubPasswordsFromArgv(static_cast<int>(argv.size()), argv.data());
  return args;
}

TEST(ArgvScrubTest, BlanksKeyValuePasswordsOfEveryForm) {
  std::vector<std::string> out = Scrub(
      {"prog", "host=h password=s3cret dbname=d", "password = 'it\\'s q uoted' host=h", "--until"});
  EXPECT_EQ(out[1], "host=h password=xxxxxx dbname=d");
  EXPECT_EQ(out[2], "password = 'xxxxxxxxxxxxx' host=h");  // it\\'s q uoted: 13 chars
  EXPECT_EQ(out[3], "--until");
}

TEST(ArgvScrubTest, BlanksUriPasswords) {
  std::vector<std::string> out =
      Scrub({"prog", "postgresql://alice:s3cret@db:5432/app",
             "postgres://bob@db/app?sslmode=require&password=hunter2", "postgresql://db/app"});
  EXPECT_EQ(out[1], "postgresql://alice:xxxxxx@db:5432/app");
  EXPECT_EQ(out[2], "postgres://bob@db/app?sslmode=require&password=xxxxxxx");
  EXPECT_EQ(out[3], "postgresql://db/app");
}

TEST(ArgvScrubTest, LeavesTheProgramNameAndOtherArgumentsAlone) {
  std::vector<std::string> out = Scrub({"password=x", "stage", "--filter", "^public\\.t$"});
  EXPECT_EQ(out[0], "password=x");
  EXPECT_EQ(out[3], "^public\\.t$");
}

}  // namespace
}  // namespace backfill
