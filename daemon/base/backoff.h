// Backoff: how long an account waits before it retries something that failed transiently.
//
// Exponential backoff with full jitter: after the n-th consecutive failure (n = 0 for the
// first) the delay is drawn uniformly from [0, min(cap, base * 2^n)], so that many accounts
// failing together (a Zulip restart) spread their retries out instead of returning in a herd.
// A success resets the count. When the server says how long to wait (a 429's Retry-After,
// which Zulip sends as a decimal number of seconds such as "28.706807374954224"), that wait is
// obeyed to the nanosecond, rounded up: a retry is never earlier than the server allowed.
//
// Not thread-safe: each account owns its Backoff and uses it on the event loop thread.
#ifndef ZB_DAEMON_BASE_BACKOFF_H_
#define ZB_DAEMON_BASE_BACKOFF_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string_view>

#include "daemon/base/clock.h"

namespace zb {

struct BackoffPolicy {
  // The ceiling of the first delay's range.
  Clock::Duration base = std::chrono::seconds(1);
  // The ceiling no delay's range ever passes, however many failures in a row.
  Clock::Duration cap = std::chrono::minutes(5);
};

class Backoff {
 public:
  // `clock` must outlive the Backoff. `seed` makes the jitter reproducible in tests; the daemon
  // passes a value from std::random_device. A policy with base <= 0 or cap < base is a bug in
  // the caller (the config loader validates it), and is clamped to base = 1 ns, cap = base.
  Backoff(BackoffPolicy policy, Clock& clock, uint64_t seed);

  // Records one more failure and returns how long to wait before the next attempt. With
  // `retry_after_seconds` (the server's own wait, >= 0), returns exactly that, rounded up to the
  // clock's resolution, whatever the jitter would have said; the failure still counts, so the
  // backoff keeps growing if the server goes on refusing without saying how long.
  Clock::Duration NextDelay(std::optional<double> retry_after_seconds = std::nullopt);

  // The same as Now() + NextDelay(retry_after_seconds): when the next attempt may start.
  Clock::TimePoint NextAttemptAt(std::optional<double> retry_after_seconds = std::nullopt);

  // Forgets the failures: the next delay is drawn from [0, base] again. Call on success.
  void Reset() { failures_ = 0; }

  // Consecutive failures recorded since the last Reset().
  int failures() const { return failures_; }

  // The upper end of the range the next NextDelay() (without Retry-After) draws from.
  Clock::Duration CurrentCeiling() const;

 private:
  BackoffPolicy policy_;
  Clock& clock_;
  std::mt19937_64 random_;
  int failures_ = 0;
};

// Parses a Retry-After value given as a decimal number of seconds ("28.706807374954224", "5",
// " 0.5 "). Returns nullopt for anything else: negative, not a number, infinite, or the
// HTTP-date form (which Zulip never sends). Digits past nanosecond precision are kept as the
// double has them; DurationFromSeconds rounds up.
std::optional<double> ParseRetryAfterSeconds(std::string_view text);

// Converts a non-negative number of seconds to a Duration, rounding up to whole clock ticks,
// and saturating at a day (a server asking for more is capped rather than overflowing).
Clock::Duration DurationFromSeconds(double seconds);

}  // namespace zb

#endif  // ZB_DAEMON_BASE_BACKOFF_H_
