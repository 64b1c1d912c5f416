// RateLimiter on its own: Zulip's Redis sliding window (Django) and Tornado's debt bucket.
#include "tests/fake_zulip/rate_limiter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb::fake_zulip {
namespace {

using ::zb::testing::IsOk;

TEST(RateLimiterTest, DefaultIs200RequestsPer60Seconds) {
  RateLimiter limiter;
  for (int i = 0; i < 200; ++i) {
    ASSERT_FALSE(limiter.Check(RateLimiter::Backend::kSlidingWindow, 1, 1000 + i * 0.01).limited);
  }
  RateLimitResult refused = limiter.Check(RateLimiter::Backend::kSlidingWindow, 1, 1002);
  EXPECT_TRUE(refused.limited);
  EXPECT_DOUBLE_EQ(refused.secs_to_freedom, 58);
  EXPECT_EQ(refused.remaining, 0);
}

TEST(RateLimiterTest, RefusedRequestsAreNotCounted) {
  RateLimiter limiter;
  limiter.SetRules(1, {{10, 1}});
  EXPECT_FALSE(limiter.Check(RateLimiter::Backend::kSlidingWindow, 1, 0).limited);
  EXPECT_TRUE(limiter.Check(RateLimiter::Backend::kSlidingWindow, 1, 5).limited);
  EXPECT_FALSE(limiter.Check(RateLimiter::Backend::kSlidingWindow, 1, 10.5).limited);
}

TEST(RateLimiterTest, RemainingCountsDownAndResetIsAnIntegerTime) {
  RateLimiter limiter;
  RateLimitResult first = limiter.Check(RateLimiter::Backend::kSlidingWindow, 1, 100.5);
  EXPECT_EQ(first.limit, 200);
  EXPECT_EQ(first.remaining, 199);
  EXPECT_EQ(first.reset, 160);
  EXPECT_EQ(limiter.Check(RateLimiter::Backend::kSlidingWindow, 1, 101).remaining, 198);
}

TEST(RateLimiterTest, DebtBucketRefusesWhenTheDebtWouldPassTheWindow) {
  RateLimiter limiter;
  limiter.SetRules(1, {{60, 200}});
  for (int i = 0; i < 200; ++i) {
    ASSERT_FALSE(limiter.Check(RateLimiter::Backend::kDebt, 1, 0).limited) << i;
  }
  RateLimitResult refused = limiter.Check(RateLimiter::Backend::kDebt, 1, 0);
  EXPECT_TRUE(refused.limited);
  EXPECT_NEAR(refused.secs_to_freedom, 0.3, 1e-9);
  // 0.3 s later one request's debt has drained.
  EXPECT_FALSE(limiter.Check(RateLimiter::Backend::kDebt, 1, 0.3 + 1e-9).limited);
}

TEST(RateLimiterTest, UsersHaveSeparateBuckets) {
  RateLimiter limiter;
  limiter.SetDefaultRules({{10, 1}});
  EXPECT_FALSE(limiter.Check(RateLimiter::Backend::kSlidingWindow, 1, 0).limited);
  EXPECT_FALSE(limiter.Check(RateLimiter::Backend::kSlidingWindow, 2, 0).limited);
  EXPECT_TRUE(limiter.Check(RateLimiter::Backend::kSlidingWindow, 1, 0).limited);
}

TEST(RateLimiterTest, RulesParseAsAnAdministratorWritesThem) {
  auto rules = ParseRateRules("3600:1000,60:200");
  ASSERT_THAT(rules, IsOk());
  ASSERT_EQ(rules->size(), 2u);
  EXPECT_EQ((*rules)[0].window_secs, 60);  // shortest first, as Zulip checks them
  EXPECT_FALSE(ParseRateRules("60").ok());
  EXPECT_FALSE(ParseRateRules("60:0").ok());
}

}  // namespace
}  // namespace zb::fake_zulip
