#include "common/block_codec.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/pg.h"

namespace backfill {
namespace {

// Rows as binary COPY sends a metrics table: repetitive, so zstd shrinks them several times.
std::string CopyLikeData(size_t bytes) {
  std::string data;
  int64_t t = 1700000000;
  while (data.size() < bytes) {
    data.append("\x00\x03\x00\x00\x00\x08", 6);
    data.append(reinterpret_cast<const char*>(&t), sizeof(t));
    data.append("\x00\x00\x00\x04\x00\x00\x00", 7);
    data.push_back(static_cast<char>(t % 7));
    t += 2;
  }
  data.resize(bytes);
  return data;
}

TEST(BlockCodecTest, CompressibleBlocksShrinkAndComeBackExactly) {
  const std::string raw = CopyLikeData(1 << 20);
  BlockCompressor compressor;
  std::string compressed;
  ASSERT_TRUE(compressor.Compress(raw, &compressed));
  EXPECT_LT(compressed.size(), raw.size() / 4);
  BlockDecompressor decompressor;
  std::string out = "prefix:";
  ASSERT_TRUE(decompressor.Decompress(compressed, raw.size(), &out).ok());
  EXPECT_EQ(out, "prefix:" + raw);
}

TEST(BlockCodecTest, BlocksThatDoNotShrinkGoAsTheyAre) {
  std::mt19937_64 random(42);
  std::string noise(256 << 10, '\0');
  for (char& c : noise) c = static_cast<char>(random());
  BlockCompressor compressor;
  std::string compressed;
  EXPECT_FALSE(compressor.Compress(noise, &compressed));
  EXPECT_FALSE(compressor.Compress("", &compressed));
}

TEST(BlockCodecTest, ABlockThatLiesAboutItsSizeIsRefused) {
  const std::string raw = CopyLikeData(64 << 10);
  BlockCompressor compressor;
  std::string compressed;
  ASSERT_TRUE(compressor.Compress(raw, &compressed));
  BlockDecompressor decompressor;
  std::string out = "kept";
  absl::Status shorter = decompressor.Decompress(compressed, raw.size() - 1, &out);
  EXPECT_EQ(shorter.code(), absl::StatusCode::kDataLoss) << shorter;
  absl::Status longer = decompressor.Decompress(compressed, raw.size() + 1, &out);
  EXPECT_EQ(longer.code(), absl::StatusCode::kDataLoss) << longer;
  EXPECT_EQ(out, "kept");
  EXPECT_EQ(decompressor.Decompress("garbage", 10, &out).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decompressor.Decompress(compressed, kMaxBlockBytes + 1, &out).code(),
            absl::StatusCode::kInvalidArgument);
  // The decompressor is still good after the refusals.
  ASSERT_TRUE(decompressor.Decompress(compressed, raw.size(), &out).ok());
  EXPECT_EQ(out, "kept" + raw);
}

TEST(ResultTest, RowsReadElsewhereReadLikeAStatementsRows) {
  absl::StatusOr<pg::Result> result =
      pg::Result::FromText({"name", "n"}, {"a", "1", std::nullopt, "", "c", std::nullopt});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rows(), 3);
  EXPECT_EQ(result->columns(), 2);
  EXPECT_EQ(result->ColumnName(1), "n");
  EXPECT_EQ(result->Get(0, 0), "a");
  EXPECT_EQ(result->GetInt(0, 1), 1);
  EXPECT_TRUE(result->IsNull(1, 0));
  EXPECT_FALSE(result->IsNull(1, 1));
  EXPECT_EQ(result->Get(1, 1), "");
  EXPECT_TRUE(result->IsNull(2, 1));
  EXPECT_EQ(pg::Result::FromText({"a", "b"}, {"x"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<pg::Result> empty = pg::Result::FromText({}, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->rows(), 0);
}

TEST(ResultTest, AServerErrorReadElsewhereKeepsItsStateAndRetryability) {
  absl::Status lost = pg::ServerError("57P01", "source: terminating connection");
  EXPECT_EQ(pg::SqlState(lost), "57P01");
  EXPECT_TRUE(pg::IsRetryable(lost));
  EXPECT_FALSE(pg::IsRetryable(pg::ServerError("42P01", "no such table")));
}

}  // namespace
}  // namespace backfill
