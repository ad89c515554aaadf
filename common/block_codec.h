// zstd for the COPY data a source-side worker streams to a target-side worker: blocks
// compressed one by one (so either side holds one block at a time), each sent as it is when
// compressing it does not pay, as with a compressed chunk's batches, which are compressed
// already.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace backfill {

// The largest block a decompressor accepts, so that a peer cannot make it allocate more.
inline constexpr size_t kMaxBlockBytes = size_t{16} << 20;

class BlockCompressor {
 public:
  // zstd level 1: about 200 MB/s on one core for COPY data, which shrinks several times.
  explicit BlockCompressor(int level = 1);
  ~BlockCompressor();
  BlockCompressor(const BlockCompressor&) = delete;
  BlockCompressor& operator=(const BlockCompressor&) = delete;

  // Compresses `raw` into `*out` (replacing it) and returns true when that saves at least
  // 1/16 of it; false, with `*out` unspecified, when the block should go as it is.
  bool Compress(absl::string_view raw, std::string* out);

 private:
  ZSTD_CCtx_s* context_;
  const int level_;
};

class BlockDecompressor {
 public:
  BlockDecompressor();
  ~BlockDecompressor();
  BlockDecompressor(const BlockDecompressor&) = delete;
  BlockDecompressor& operator=(const BlockDecompressor&) = delete;

  // Appends the `raw_bytes` that `compressed` holds to `*out`. DataLoss when it does not hold
  // exactly that many; InvalidArgument when `raw_bytes` exceeds kMaxBlockBytes.
  absl::Status Decompress(absl::string_view compressed, size_t raw_bytes, std::string* out);

 private:
  ZSTD_DCtx_s* context_;
};

}  // namespace backfill
