#include "daemon/base/backoff.h"

#include <chrono>
#include <set>

#include <gtest/gtest.h>

#include "tests/fakes/fake_clock.h"

namespace zb {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(BackoffTest, DelaysStayWithinTheDoublingCeiling) {
  testing::FakeClock clock;
  Backoff backoff({.base = seconds(1), .cap = seconds(60)}, clock, 42);
  Clock::Duration ceiling = seconds(1);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(backoff.CurrentCeiling(), std::min<Clock::Duration>(ceiling, seconds(60)));
    Clock::Duration d = backoff.NextDelay();
    EXPECT_GE(d, Clock::Duration::zero());
    EXPECT_LE(d, std::min<Clock::Duration>(ceiling, seconds(60))) << "attempt " << i;
    ceiling *= 2;
  }
  EXPECT_EQ(backoff.failures(), 12);
}

TEST(BackoffTest, NeverPassesTheCapEvenAfterManyFailures) {
  testing::FakeClock clock;
  Backoff backoff({.base = milliseconds(100), .cap = seconds(30)}, clock, 7);
  for (int i = 0; i < 500; ++i) EXPECT_LE(backoff.NextDelay(), seconds(30));
  EXPECT_EQ(backoff.CurrentCeiling(), seconds(30));
}

TEST(BackoffTest, JitterSpreadsDelaysOverTheWholeRange) {
  testing::FakeClock clock;
  Backoff backoff({.base = seconds(10), .cap = seconds(10)}, clock, 1);
  // Full jitter: draws land in every tenth of [0, 10 s], not only near the top.
  std::set<int64_t> tenths;
  for (int i = 0; i < 400; ++i) {
    tenths.insert(std::chrono::duration_cast<seconds>(backoff.NextDelay()).count());
  }
  EXPECT_EQ(tenths.size(), 10u);
}

TEST(BackoffTest, SameSeedGivesSameDelays) {
  testing::FakeClock clock;
  Backoff a({}, clock, 99);
  Backoff b({}, clock, 99);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a.NextDelay(), b.NextDelay());
}

TEST(BackoffTest, ResetStartsAgainFromBase) {
  testing::FakeClock clock;
  Backoff backoff({.base = seconds(1), .cap = seconds(300)}, clock, 3);
  for (int i = 0; i < 6; ++i) backoff.NextDelay();
  EXPECT_EQ(backoff.CurrentCeiling(), seconds(64));
  backoff.Reset();
  EXPECT_EQ(backoff.failures(), 0);
  EXPECT_EQ(backoff.CurrentCeiling(), seconds(1));
  EXPECT_LE(backoff.NextDelay(), seconds(1));
}

TEST(BackoffTest, HonoursRetryAfterToTheNanosecond) {
  testing::FakeClock clock;
  Backoff backoff({.base = seconds(1), .cap = seconds(2)}, clock, 5);
  // Zulip's own example (FACTS §4): obeyed exactly, rounded up, not truncated to 28 s.
  Clock::Duration d = backoff.NextDelay(28.706807374954224);
  EXPECT_GE(d, nanoseconds(28'706'807'374));
  EXPECT_LE(d, nanoseconds(28'706'807'376));
  EXPECT_EQ(backoff.failures(), 1);
}

TEST(BackoffTest, RetryAfterSetsTheNextAttemptTime) {
  testing::FakeClock clock;
  Backoff backoff({}, clock, 5);
  Clock::TimePoint at = backoff.NextAttemptAt(0.5);
  EXPECT_EQ(at, clock.Now() + milliseconds(500));
}

TEST(BackoffTest, ParsesDecimalRetryAfter) {
  EXPECT_EQ(ParseRetryAfterSeconds("28.706807374954224"), 28.706807374954224);
  EXPECT_EQ(ParseRetryAfterSeconds(" 5 "), 5.0);
  EXPECT_EQ(ParseRetryAfterSeconds("0.25\r\n"), 0.25);
  EXPECT_EQ(ParseRetryAfterSeconds("0"), 0.0);
}

TEST(BackoffTest, RefusesRetryAfterThatIsNotADecimal) {
  EXPECT_FALSE(ParseRetryAfterSeconds(""));
  EXPECT_FALSE(ParseRetryAfterSeconds("-1"));
  EXPECT_FALSE(ParseRetryAfterSeconds("inf"));
  EXPECT_FALSE(ParseRetryAfterSeconds("nan"));
  EXPECT_FALSE(ParseRetryAfterSeconds("Wed, 21 Oct 2015 07:28:00 GMT"));
  EXPECT_FALSE(ParseRetryAfterSeconds("5s"));
}

TEST(BackoffTest, DurationFromSecondsRoundsUpAndSaturates) {
  EXPECT_EQ(DurationFromSeconds(1.5), milliseconds(1500));
  EXPECT_EQ(DurationFromSeconds(0), Clock::Duration::zero());
  EXPECT_EQ(DurationFromSeconds(-3), Clock::Duration::zero());
  EXPECT_GE(DurationFromSeconds(1e-10), nanoseconds(1));
  EXPECT_EQ(DurationFromSeconds(1e30), seconds(86400));
}

}  // namespace
}  // namespace zb
