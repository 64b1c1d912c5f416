#include "daemon/base/time_format.h"

#include <gtest/gtest.h>

namespace zb {
namespace {

TEST(TimeFormatTest, WritesUtcWithMillisecondsAndZ) {
  EXPECT_EQ(FormatUtcMillis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatUtcMillis(1764311400123), "2025-11-28T06:30:00.123Z");
  EXPECT_EQ(FormatUtcMillis(1795851662123), "2026-11-28T07:41:02.123Z");
}

TEST(TimeFormatTest, KeepsTheMillisecondsAsGivenWithoutRounding) {
  EXPECT_EQ(FormatUtcMillis(999), "1970-01-01T00:00:00.999Z");
  EXPECT_EQ(FormatUtcMillis(1000), "1970-01-01T00:00:01.000Z");
  EXPECT_EQ(FormatUtcMillis(1764311400001), "2025-11-28T06:30:00.001Z");
  EXPECT_EQ(FormatUtcMillis(1764311400999), "2025-11-28T06:30:00.999Z");
}

TEST(TimeFormatTest, CountsTimesBefore1970DownFromTheNextSecond) {
  EXPECT_EQ(FormatUtcMillis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatUtcMillis(-999), "1969-12-31T23:59:59.001Z");
  EXPECT_EQ(FormatUtcMillis(-1000), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(FormatUtcMillis(-1001), "1969-12-31T23:59:58.999Z");
  EXPECT_EQ(FormatUtcMillis(-86400000), "1969-12-31T00:00:00.000Z");
}

TEST(TimeFormatTest, FollowsTheCalendar) {
  EXPECT_EQ(FormatUtcMillis(1709164800000), "2024-02-29T00:00:00.000Z");    // a leap day
  EXPECT_EQ(FormatUtcMillis(253402300799999), "9999-12-31T23:59:59.999Z");  // RFC 3339's last
}

}  // namespace
}  // namespace zb
