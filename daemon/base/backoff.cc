#include "daemon/base/backoff.h"

#include <charconv>
#include <cmath>
#include <string>

namespace zb {

namespace {

constexpr double kMaxRetryAfterSeconds = 86400.0;

}  // namespace

Backoff::Backoff(BackoffPolicy policy, Clock& clock, uint64_t seed)
    : policy_(policy), clock_(clock), random_(seed) {
  if (policy_.base <= Clock::Duration::zero()) policy_.base = Clock::Duration(1);
  if (policy_.cap < policy_.base) policy_.cap = policy_.base;
}

Clock::Duration Backoff::CurrentCeiling() const {
  // Doubling stops as soon as the cap is reached, so base * 2^n never overflows.
  Clock::Duration ceiling = policy_.base;
  for (int i = 0; i < failures_ && ceiling < policy_.cap; ++i) {
    ceiling = ceiling > policy_.cap / 2 ? policy_.cap : ceiling * 2;
  }
  return ceiling < policy_.cap ? ceiling : policy_.cap;
}

Clock::Duration Backoff::NextDelay(std::optional<double> retry_after_seconds) {
  const Clock::Duration ceiling = CurrentCeiling();
  if (failures_ < 1'000'000) ++failures_;
  if (retry_after_seconds && std::isfinite(*retry_after_seconds) && *retry_after_seconds >= 0) {
    return DurationFromSeconds(*retry_after_seconds);
  }
  std::uniform_int_distribution<Clock::Duration::rep> pick(0, ceiling.count());
  return Clock::Duration(pick(random_));
}

Clock::TimePoint Backoff::NextAttemptAt(std::optional<double> retry_after_seconds) {
  return clock_.Now() + NextDelay(retry_after_seconds);
}

std::optional<double> ParseRetryAfterSeconds(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' ||
                           text.back() == '\n')) {
    text.remove_suffix(1);
  }
  if (text.empty()) return std::nullopt;
  // Only plain decimals: from_chars would also take "inf", "nan" and hex floats.
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
      return std::nullopt;
    }
  }
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (!std::isfinite(value) || value < 0) return std::nullopt;
  return value;
}

Clock::Duration DurationFromSeconds(double seconds) {
  if (!(seconds > 0)) return Clock::Duration::zero();
  if (seconds > kMaxRetryAfterSeconds) seconds = kMaxRetryAfterSeconds;
  const double ticks =
      std::ceil(seconds * Clock::Duration::period::den / Clock::Duration::period::num);
  return Clock::Duration(static_cast<Clock::Duration::rep>(ticks));
}

}  // namespace zb
