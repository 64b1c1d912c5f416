// Zulip's per-user API rate limiter (FACTS §4; zerver/lib/rate_limiter.py), in its two forms:
//  - kSlidingWindow, the Redis backend Django uses for /register and the other REST endpoints:
//    a request is refused while the Nth most recent accepted request of a rule (N requests
//    per W seconds) is younger than W; refused requests are not counted.
//  - kDebt, TornadoInMemoryRateLimiterBackend, which Tornado uses for /events: each accepted
//    request adds W/N seconds of debt to a reset time; a request is refused when the debt
//    would pass W.
// Rules default to Zulip's api_by_user, 200 requests per 60 s, and can be set per user, as an
// administrator does with UserProfile.rate_limits ("secs:requests,...").
//
// Not thread-safe: owned by the server's loop thread. Times are the fake clock's seconds.
#ifndef ZB_TESTS_FAKE_ZULIP_RATE_LIMITER_H_
#define ZB_TESTS_FAKE_ZULIP_RATE_LIMITER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/base/status.h"

namespace zb::fake_zulip {

struct RateRule {
  double window_secs;
  int max_requests;
};

// Parses "secs:requests,secs:requests" (UserProfile.rate_limits). InvalidArgument otherwise.
StatusOr<std::vector<RateRule>> ParseRateRules(std::string_view text);

// What Zulip's RateLimitMiddleware puts in the X-RateLimit-* headers, and whether the request
// was refused (then secs_to_freedom is the Retry-After).
struct RateLimitResult {
  bool limited = false;
  double secs_to_freedom = 0;
  int limit = 0;      // X-RateLimit-Limit
  int remaining = 0;  // X-RateLimit-Remaining
  int64_t reset = 0;  // X-RateLimit-Reset, integer Unix time
};

class RateLimiter {
 public:
  enum class Backend { kSlidingWindow, kDebt };

  RateLimiter();
  // Rules for `user_id` from now on; an empty list restores the default. Existing history is
  // kept, as Zulip keeps its Redis keys.
  void SetRules(int64_t user_id, std::vector<RateRule> rules);
  // Rules that apply to users without their own (default: 60 s / 200).
  void SetDefaultRules(std::vector<RateRule> rules);
  const std::vector<RateRule>& RulesFor(int64_t user_id) const;
  // Counts one request by `user_id` at `now` against `backend`'s bucket, unless refused.
  RateLimitResult Check(Backend backend, int64_t user_id, double now);

 private:
  std::vector<RateRule> default_rules_;
  std::unordered_map<int64_t, std::vector<RateRule>> rules_;
  // Sliding window: accepted request times, newest first.
  std::unordered_map<int64_t, std::deque<double>> history_;
  // Debt: reset time per (user, rule index).
  std::map<std::pair<int64_t, size_t>, double> reset_times_;
};

}  // namespace zb::fake_zulip

#endif  // ZB_TESTS_FAKE_ZULIP_RATE_LIMITER_H_
