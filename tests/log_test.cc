#include "daemon/base/log.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace zb {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override { Capture(/*journal=*/false); }
  void TearDown() override {
    SetLogSinkForTest({}, {}, false);
    ConfigureLog(LogOptions{});
  }
  void Capture(bool journal) {
    SetLogSinkForTest([this](std::string_view line) { lines_.emplace_back(line); },
                      [this] { return now_; }, journal);
  }

  std::vector<std::string> lines_;
  std::chrono::steady_clock::time_point now_{};
};

TEST_F(LogTest, LogfmtQuotesOnlyWhatNeedsIt) {
  ConfigureLog(LogOptions{});
  LogInfo("queue registered",
          {{"queue_id", "1517975029:0"}, {"reason", "bad \"key\" = x"}, {"events", 12}});
  ASSERT_EQ(lines_.size(), 1u);
  const std::string& line = lines_[0];
  EXPECT_EQ(line.rfind("ts=", 0), 0u) << line;
  EXPECT_NE(line.find(" level=info msg=\"queue registered\" queue_id=1517975029:0 "
                      "reason=\"bad \\\"key\\\" = x\" events=12\n"),
            std::string::npos)
      << line;
}

TEST_F(LogTest, JsonLeavesNumbersAndBooleansBare) {
  LogOptions options;
  options.format = LogFormat::kJson;
  ConfigureLog(options);
  LogWarn("slow\npoll", {{"lag", 3}, {"parked", false}, {"seconds", 1.5}});
  ASSERT_EQ(lines_.size(), 1u);
  const std::string& line = lines_[0];
  EXPECT_EQ(line.rfind("{\"ts\":\"", 0), 0u) << line;
  EXPECT_NE(line.find(R"("level":"warn","msg":"slow\npoll","lag":3,"parked":false,"seconds":1.5})"),
            std::string::npos)
      << line;
}

TEST_F(LogTest, JournalGetsPriorityPrefixAndNoTimestamp) {
  Capture(/*journal=*/true);
  ConfigureLog(LogOptions{});
  LogError("checkpoint write failed", {{"path", "/var/lib/zb/a.ckpt"}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "<3>level=error msg=\"checkpoint write failed\" path=/var/lib/zb/a.ckpt\n");
}

TEST_F(LogTest, TraceLinesNameTheirLevelAndMapToSyslogDebug) {
  Capture(/*journal=*/true);
  LogOptions options;
  options.level = LogLevel::kTrace;
  ConfigureLog(options);
  Log(LogLevel::kTrace, "chunk");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "<7>level=trace msg=chunk\n");
}

TEST_F(LogTest, LevelBelowThresholdIsDropped) {
  LogOptions options;
  options.level = LogLevel::kWarn;
  ConfigureLog(options);
  LogInfo("not shown");
  LogDebug("not shown either");
  LogWarn("shown");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find("msg=shown"), std::string::npos);
}

TEST_F(LogTest, AccountLinesAreRateLimitedAndReportSuppressed) {
  LogOptions options;
  options.rate_burst = 3;
  options.rate_per_second = 1;
  ConfigureLog(options);
  for (int i = 0; i < 10; ++i) LogAccount(LogLevel::kWarn, "alice", "backing off");
  LogAccount(LogLevel::kWarn, "bob", "backing off");  // another account has its own budget
  EXPECT_EQ(lines_.size(), 4u);
  now_ += std::chrono::seconds(2);
  LogAccount(LogLevel::kWarn, "alice", "backing off");
  ASSERT_EQ(lines_.size(), 5u);
  EXPECT_NE(lines_[4].find("account=alice"), std::string::npos);
  EXPECT_NE(lines_[4].find("suppressed_before=7"), std::string::npos) << lines_[4];
}

TEST(LogLevelTest, ParsesKnownNamesOnly) {
  LogLevel level;
  EXPECT_TRUE(ParseLogLevel("warning", &level));
  EXPECT_EQ(level, LogLevel::kWarn);
  EXPECT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  EXPECT_TRUE(ParseLogLevel("trace", &level));
  EXPECT_EQ(level, LogLevel::kTrace);
  EXPECT_FALSE(ParseLogLevel("verbose", &level));
}

}  // namespace
}  // namespace zb
