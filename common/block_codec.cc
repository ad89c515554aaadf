#include "common/block_codec.h"

#include <zstd.h>

#include "absl/strings/str_cat.h"

namespace backfill {

BlockCompressor::BlockCompressor(int level) : context_(ZSTD_createCCtx()), level_(level) {}

BlockCompressor::~BlockCompressor() { ZSTD_freeCCtx(context_); }

bool BlockCompressor::Compress(absl::string_view raw, std::string* out) {
  if (context_ == nullptr || raw.empty()) return false;
  // Worth it only below 15/16 of the block: compressing into that much room fails otherwise.
  const size_t room = raw.size() - raw.size() / 16;
  out->resize(room);
  const size_t n = ZSTD_compressCCtx(context_, out->data(), room, raw.data(), raw.size(), level_);
  if (ZSTD_isError(n)) return false;
  out->resize(n);
  return true;
}

BlockDecompressor::BlockDecompressor() : context_(ZSTD_createDCtx()) {}

BlockDecompressor::~BlockDecompressor() { ZSTD_freeDCtx(context_); }

absl::Status BlockDecompressor::Decompress(absl::string_view compressed, size_t raw_bytes,
                                           std::string* out) {
  if (raw_bytes > kMaxBlockBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a compressed block of ", raw_bytes, " bytes is larger than allowed"));
  }
  if (context_ == nullptr) return absl::ResourceExhaustedError("zstd: out of memory");
  const size_t at = out->size();
  out->resize(at + raw_bytes);
  const size_t n = ZSTD_decompressDCtx(context_, out->data() + at, raw_bytes, compressed.data(),
                                       compressed.size());
  if (ZSTD_isError(n) || n != raw_bytes) {
    out->resize(at);
    return absl::DataLossError(absl::StrCat(
        "a compressed block does not hold the ", raw_bytes, " bytes it claims",
        ZSTD_isError(n) ? absl::StrCat(" (", ZSTD_getErrorName(n), ")") : std::string()));
  }
  return absl::OkStatus();
}

}  // namespace backfill
