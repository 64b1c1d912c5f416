#include "tests/fake_zulip/rate_limiter.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace zb::fake_zulip {

StatusOr<std::vector<RateRule>> ParseRateRules(std::string_view text) {
  std::vector<RateRule> rules;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    size_t colon = item.find(':');
    int secs = 0;
    int requests = 0;
    if (colon == std::string_view::npos ||
        std::from_chars(item.data(), item.data() + colon, secs).ec != std::errc() ||
        std::from_chars(item.data() + colon + 1, item.data() + item.size(), requests).ec !=
            std::errc() ||
        secs <= 0 || requests <= 0) {
      return Status::InvalidArgument("rate limit rule \"" + std::string(item) +
                                     "\" is not secs:requests");
    }
    rules.push_back({static_cast<double>(secs), requests});
  }
  if (rules.empty()) return Status::InvalidArgument("no rate limit rules");
  // Zulip checks rules from the shortest window up.
  std::sort(rules.begin(), rules.end(),
            [](const RateRule& a, const RateRule& b) { return a.window_secs < b.window_secs; });
  return rules;
}

RateLimiter::RateLimiter() : default_rules_{{60, 200}} {}

void RateLimiter::SetRules(int64_t user_id, std::vector<RateRule> rules) {
  if (rules.empty()) {
    rules_.erase(user_id);
  } else {
    rules_[user_id] = std::move(rules);
  }
}

void RateLimiter::SetDefaultRules(std::vector<RateRule> rules) {
  if (!rules.empty()) default_rules_ = std::move(rules);
}

const std::vector<RateRule>& RateLimiter::RulesFor(int64_t user_id) const {
  auto it = rules_.find(user_id);
  return it == rules_.end() ? default_rules_ : it->second;
}

RateLimitResult RateLimiter::Check(Backend backend, int64_t user_id, double now) {
  const std::vector<RateRule>& rules = RulesFor(user_id);
  RateLimitResult result;
  result.limit = rules.front().max_requests;
  for (const auto& rule : rules) result.limit = std::min(result.limit, rule.max_requests);

  if (backend == Backend::kSlidingWindow) {
    // RedisRateLimiterBackend.is_ratelimited(): the Nth newest call against each rule.
    std::deque<double>& calls = history_[user_id];
    for (const auto& rule : rules) {
      size_t n = static_cast<size_t>(rule.max_requests);
      if (calls.size() >= n && calls[n - 1] + rule.window_secs >= now) {
        result.limited = true;
        result.secs_to_freedom = calls[n - 1] + rule.window_secs - now;
        break;
      }
    }
    if (!result.limited) calls.push_front(now);
    size_t keep = 0;
    for (const auto& rule : rules) keep = std::max(keep, static_cast<size_t>(rule.max_requests));
    while (calls.size() > keep) calls.pop_back();
    // get_api_calls_left(): remaining per rule, reset from the newest call; min / max over rules.
    result.remaining = result.limit;
    double reset_in = 0;
    bool first = true;
    for (const auto& rule : rules) {
      int count = 0;
      for (double t : calls) {
        if (t >= now - rule.window_secs && t <= now) ++count;
      }
      int left = std::max(0, rule.max_requests - count);
      result.remaining = first ? left : std::min(result.remaining, left);
      first = false;
      double secs = calls.empty() ? 0 : rule.window_secs - (now - calls.front());
      reset_in = std::max(reset_in, secs);
    }
    if (result.limited) {
      result.remaining = 0;
      reset_in = std::max(reset_in, result.secs_to_freedom);
    }
    result.reset = static_cast<int64_t>(now + reset_in);
    return result;
  }

  // TornadoInMemoryRateLimiterBackend.need_to_limit() for each rule.
  for (size_t i = 0; i < rules.size(); ++i) {
    const RateRule& rule = rules[i];
    auto key = std::make_pair(user_id, i);
    double step = rule.window_secs / rule.max_requests;
    auto it = reset_times_.find(key);
    double current = it == reset_times_.end() ? now : std::max(it->second, now);
    double new_reset = current + step;
    if (new_reset > now + rule.window_secs) {
      result.limited = true;
      result.secs_to_freedom = new_reset - rule.window_secs - now;
      break;
    }
    reset_times_[key] = new_reset;
  }
  // get_api_calls_left(): (now + W - reset) * N // W.
  result.remaining = result.limit;
  double reset_in = 0;
  for (size_t i = 0; i < rules.size(); ++i) {
    const RateRule& rule = rules[i];
    auto it = reset_times_.find({user_id, i});
    if (it == reset_times_.end()) continue;
    int left = static_cast<int>(
        std::floor((now + rule.window_secs - it->second) * rule.max_requests / rule.window_secs));
    result.remaining = std::min(result.remaining, std::max(0, left));
    reset_in = std::max(reset_in, it->second - now);
  }
  if (result.limited) {
    result.remaining = 0;
    reset_in = std::max(reset_in, result.secs_to_freedom);
  }
  result.reset = static_cast<int64_t>(now + reset_in);
  return result;
}

}  // namespace zb::fake_zulip
