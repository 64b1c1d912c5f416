// sd_notify end to end (issue 9): the bridge as a subprocess talks to a fake NOTIFY_SOCKET (a
// datagram socket this test binds), as systemd would see it. Each test fails when its property
// breaks: READY=1 waiting on Zulip or Kafka, a missing STATUS=, RELOADING=1 or STOPPING=1, or a
// WATCHDOG=1 missed while Kafka is down (the watchdog must say "the loop turns", never "Kafka is
// up", or a Kafka outage becomes a restart loop).
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/bridge_harness.h"
#include "tests/test_support.h"

namespace zb::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The NOTIFY_SOCKET end: every datagram with the time it arrived.
class FakeNotifySocket {
 public:
  struct Message {
    Clock::time_point at;
    std::string text;
  };

  explicit FakeNotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << path;
    timeval timeout{0, 100'000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    reader_ = std::thread([this] {
      char buffer[4096];
      while (!stop_) {
        ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
        if (n <= 0) continue;
        std::lock_guard<std::mutex> lock(mu_);
        messages_.push_back({Clock::now(), std::string(buffer, static_cast<size_t>(n))});
      }
    });
  }
  ~FakeNotifySocket() {
    stop_ = true;
    reader_.join();
    close(fd_);
    unlink(path_.c_str());
  }

  std::vector<Message> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  // Messages containing `line` (e.g. "READY=1") since `since`.
  size_t Count(const std::string& line, Clock::time_point since = {}) {
    size_t n = 0;
    for (const Message& m : messages()) n += m.at >= since && Has(m, line);
    return n;
  }
  static bool Has(const Message& m, const std::string& line) {
    return ("\n" + m.text + "\n").find("\n" + line + "\n") != std::string::npos ||
           (line.back() == '=' && ("\n" + m.text).find("\n" + line) != std::string::npos);
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Message> messages_;
  std::thread reader_;
};

class SdNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ZB_REQUIRE_KAFKA_CTL();
    notify_ = std::make_unique<FakeNotifySocket>(dir_.Sub("notify.sock"));
  }

  void TearDown() override {
    if (HasFailure() && bridge_) std::cerr << "---- bridge log ----\n" << bridge_->Log();
  }

  void WriteConfig(const std::string& brokers, const std::string& site) {
    WriteFile(dir_.Sub("bot.key"), std::string(kKey) + "\n");
    WriteFile(dir_.Sub("zulip-bridge.yaml"),
              "kafka:\n  brokers: [" + brokers + "]\n  topic_template: \"" + prefix_ +
                  ".{type}\"\n  flush_timeout_secs: 3\n  properties:\n"
                  "    reconnect.backoff.max.ms: \"500\"\nstate_dir: " +
                  dir_.Sub("state") +
                  "\nhttp:\n  listen: 127.0.0.1:0\nlog:\n  level: info\naccounts:\n" +
                  AccountYaml("bot", site, kEmail, dir_.Sub("bot.key")));
  }

  void StartBridge(const std::string& watchdog_usec) {
    std::vector<std::string> env = {"NOTIFY_SOCKET=" + dir_.Sub("notify.sock")};
    if (!watchdog_usec.empty()) env.push_back("WATCHDOG_USEC=" + watchdog_usec);
    bridge_ = std::make_unique<Subprocess>(
        std::vector<std::string>{BridgeBinary(), "--config", dir_.Sub("zulip-bridge.yaml")},
        dir_.Sub("bridge.log"), env);
  }

  static constexpr char kEmail[] = "notify-bot@example.com";
  static constexpr char kKey[] = "notifyKey56789abcdefghijklmnopqr";
  TempDir dir_;
  std::string prefix_ = UniqueTopic("zbsd");
  std::unique_ptr<FakeNotifySocket> notify_;
  std::unique_ptr<Subprocess> bridge_;
};

TEST_F(SdNotifyTest, ReadyWithoutWaitingOnZulipOrKafkaThenStatusAndStoppingOnSigterm) {
  // Nothing listens on port 9 (discard) on loopback: neither Zulip nor Kafka is reachable.
  WriteConfig("127.0.0.1:9", "http://127.0.0.1:9");
  StartBridge("");
  ASSERT_TRUE(WaitFor([&] { return notify_->Count("READY=1") == 1; }, std::chrono::seconds(20)))
      << bridge_->Log();
  // Zulip cannot be reached: the one account backs off, and STATUS says so.
  std::string status;
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const auto& m : notify_->messages()) {
          if (FakeNotifySocket::Has(m, "STATUS=")) status = m.text;
        }
        return status.find("1 backing off") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << status;
  // No watchdog was asked for: no pings.
  EXPECT_EQ(notify_->Count("WATCHDOG=1"), 0u);

  // A reload: RELOADING=1 (with the MONOTONIC_USEC systemd wants), then READY=1 again, in
  // that order, even though Zulip and Kafka are still unreachable.
  bridge_->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return notify_->Count("READY=1") == 2; }, std::chrono::seconds(20)))
      << bridge_->Log();
  std::vector<std::string> order;
  for (const auto& m : notify_->messages()) {
    if (FakeNotifySocket::Has(m, "RELOADING=1")) {
      order.push_back("RELOADING");
      EXPECT_TRUE(FakeNotifySocket::Has(m, "MONOTONIC_USEC=")) << m.text;
    } else if (FakeNotifySocket::Has(m, "READY=1")) {
      order.push_back("READY");
    }
  }
  EXPECT_EQ(order, (std::vector<std::string>{"READY", "RELOADING", "READY"}));

  bridge_->Signal(SIGTERM);
  std::optional<int> code = bridge_->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(notify_->Count("STOPPING=1"), 1u);
}

TEST_F(SdNotifyTest, WatchdogIsNeverMissedWhileKafkaIsDown) {
  PrivateBroker broker(dir_.Sub("kafka"));
  std::string brokers = broker.Run("start");
  ASSERT_FALSE(brokers.empty());
  FakeZulip zulip(dir_.path(), {{kEmail, kKey}});
  WriteConfig(brokers, zulip.site());
  constexpr auto kWatchdog = std::chrono::seconds(2);  // WatchdogSec=2: a ping every second
  StartBridge("2000000");
  ASSERT_TRUE(
      WaitFor([&] { return zulip.QueuesOf(kEmail).size() == 1; }, std::chrono::seconds(30)));
  ASSERT_FALSE(zulip.PushEvent(kEmail, R"({"type":"typing","op":"start"})").empty());

  broker.Run("stop");
  Clock::time_point stopped = Clock::now();
  ASSERT_FALSE(zulip.PushEvent(kEmail, R"({"type":"typing","op":"stop"})").empty());
  // Down for several watchdog periods: at least 5 pings while Kafka is gone.
  ASSERT_TRUE(WaitFor([&] { return notify_->Count("WATCHDOG=1", stopped) >= 5; },
                      std::chrono::seconds(30)));
  EXPECT_TRUE(bridge_->running());
  broker.Run("start");
  // Both events reach Kafka once it is back.
  std::vector<ReadRecord> records = ReadTopics(
      brokers, {prefix_ + ".typing"},
      [](const std::vector<ReadRecord>& so_far) { return so_far.size() >= 2; },
      std::chrono::seconds(60));
  EXPECT_GE(records.size(), 2u);
  // STATUS= counts what reached Kafka (every 5 s).
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const auto& m : notify_->messages()) {
          if (m.text.find("2 events forwarded") != std::string::npos) return true;
        }
        return false;
      },
      std::chrono::seconds(20)));

  std::vector<FakeNotifySocket::Message> messages = notify_->messages();
  Clock::time_point previous{};
  size_t pings = 0;
  for (const auto& m : messages) {
    if (!FakeNotifySocket::Has(m, "WATCHDOG=1")) continue;
    if (pings++ > 0) {
      EXPECT_LT(m.at - previous, kWatchdog)
          << "a watchdog ping came "
          << std::chrono::duration_cast<std::chrono::milliseconds>(m.at - previous).count()
          << " ms after the one before";
    }
    previous = m.at;
  }
  EXPECT_GE(pings, 5u);
  bridge_->Signal(SIGTERM);
  bridge_->Wait(std::chrono::seconds(30));
}

// Under systemd the journal reads stderr and says so in JOURNAL_STREAM (device:inode of the
// stream). The bridge then prefixes each line with its syslog priority and leaves the
// timestamp to the journal; with any other stderr, lines keep their own timestamp.
TEST_F(SdNotifyTest, UnderJournaldLinesCarryPrioritiesAndNoTimestamp) {
  WriteConfig("127.0.0.1:9", "http://127.0.0.1:9");
  // The bridge's stderr is this file (opened for appending, so its inode stays): make it the
  // "journal stream".
  const std::string log_path = dir_.Sub("bridge.log");
  WriteFile(log_path, "");
  struct stat st {};
  ASSERT_EQ(stat(log_path.c_str(), &st), 0);
  bridge_ = std::make_unique<Subprocess>(
      std::vector<std::string>{BridgeBinary(), "--config", dir_.Sub("zulip-bridge.yaml")}, log_path,
      std::vector<std::string>{"JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" +
                               std::to_string(st.st_ino)});
  // Zulip is unreachable: an info line at start, a warning or error about the account.
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string log = bridge_->Log();
        return log.find("<6>") != std::string::npos &&
               (log.find("<4>") != std::string::npos || log.find("<3>") != std::string::npos);
      },
      std::chrono::seconds(30)))
      << bridge_->Log();
  bridge_->Signal(SIGTERM);
  ASSERT_EQ(bridge_->Wait(std::chrono::seconds(30)), 0);
  std::istringstream lines(bridge_->Log());
  size_t count = 0;
  for (std::string line; std::getline(lines, line);) {
    ++count;
    ASSERT_GE(line.size(), 3u);
    EXPECT_TRUE(line[0] == '<' && line[2] == '>' && line[1] >= '0' && line[1] <= '7') << line;
    EXPECT_NE(line.substr(3, 3), "ts=") << "the journal stamps lines: " << line;
    if (line.find("level=info") != std::string::npos) {
      EXPECT_EQ(line.rfind("<6>", 0), 0u) << line;
    }
    if (line.find("level=warn") != std::string::npos) {
      EXPECT_EQ(line.rfind("<4>", 0), 0u) << line;
    }
    if (line.find("level=error") != std::string::npos) {
      EXPECT_EQ(line.rfind("<3>", 0), 0u) << line;
    }
  }
  EXPECT_GT(count, 3u);
}

}  // namespace
}  // namespace zb::testing
