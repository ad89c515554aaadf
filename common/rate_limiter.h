// Paces a stream of bytes to a rate that may change while it flows. Thread-safe: one thread
// consumes, another (the heartbeat) may change the rate.
#pragma once

#include <cstdint>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace backfill {

class RateLimiter {
 public:
  // 0 (the default): no limit.
  void SetRate(int64_t bytes_per_second);
  int64_t rate() const;
  // Accounts `bytes` as sent and sleeps until the average since the rate was last set is back
  // under it.
  void Consume(int64_t bytes);

 private:
  mutable absl::Mutex mu_;
  int64_t rate_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  double consumed_ ABSL_GUARDED_BY(mu_) = 0;
};

// "0" (no limit), "1048576", "512k", "50M", "1G" (binary multiples) in bytes per second;
// -1 when `text` is none of these.
int64_t ParseRate(const std::string& text);

}  // namespace backfill
