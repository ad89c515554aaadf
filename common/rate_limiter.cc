#include "common/rate_limiter.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"

namespace backfill {

void RateLimiter::SetRate(int64_t bytes_per_second) {
  absl::MutexLock lock(&mu_);
  if (bytes_per_second == rate_) return;
  rate_ = bytes_per_second;
  since_ = absl::Now();
  consumed_ = 0;
}

int64_t RateLimiter::rate() const {
  absl::MutexLock lock(&mu_);
  return rate_;
}

void RateLimiter::Consume(int64_t bytes) {
  {
    absl::MutexLock lock(&mu_);
    if (rate_ <= 0) return;
    if (since_ == absl::InfinitePast()) since_ = absl::Now();
    consumed_ += static_cast<double>(bytes);
  }
  for (;;) {
    absl::Time due;
    {
      absl::MutexLock lock(&mu_);
      if (rate_ <= 0) return;
      due = since_ + absl::Seconds(consumed_ / static_cast<double>(rate_));
    }
    const absl::Duration wait = due - absl::Now();
    if (wait <= absl::ZeroDuration()) return;
    // Short steps: a changed rate (which starts a new average) takes effect soon.
    absl::SleepFor(std::min(wait, absl::Milliseconds(200)));
  }
}

int64_t ParseRate(const std::string& text) {
  if (text.empty()) return -1;
  int64_t multiplier = 1;
  std::string digits = text;
  switch (std::tolower(static_cast<unsigned char>(text.back()))) {
    case 'k':
      multiplier = int64_t{1} << 10;
      break;
    case 'm':
      multiplier = int64_t{1} << 20;
      break;
    case 'g':
      multiplier = int64_t{1} << 30;
      break;
    default:
      break;
  }
  if (multiplier != 1) digits.pop_back();
  int64_t value = 0;
  if (!absl::SimpleAtoi(digits, &value) || value < 0 || value > (int64_t{1} << 40)) return -1;
  return value * multiplier;
}

}  // namespace backfill
