// Reload (issue 9) against the real binary, the fake Zulip and the real broker: `zulip-bridge
// reload` (and a bare SIGHUP) applies a new configuration while the daemon runs. Each test fails
// when a reload semantic breaks: an unchanged account that registers again, a removed account
// whose queue or checkpoint stays, an added account that does not forward, an invalid or
// restart-only configuration that is half applied or takes the daemon down, a parked account a
// reload does not retry, or an event lost across the reload.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/integration/bridge_harness.h"
#include "tests/test_support.h"

namespace zb::testing {
namespace {

struct Bot {
  const char* name;
  const char* email;
  const char* key;
};
constexpr Bot kAlpha{"alpha", "alpha-bot@example.com", "alphaKey789abcdefghijklmnopqrstu"};
constexpr Bot kBeta{"beta", "beta-bot@example.com", "betaKey6789abcdefghijklmnopqrstu"};
constexpr Bot kGamma{"gamma", "gamma-bot@example.com", "gammaKey789abcdefghijklmnopqrstu"};

int LinesWith(const std::string& log, const std::string& a, const std::string& b) {
  std::istringstream in(log);
  int count = 0;
  for (std::string line; std::getline(in, line);) {
    count += line.find(a) != std::string::npos && line.find(b) != std::string::npos;
  }
  return count;
}

std::string Typing(int n) {
  return R"({"type":"typing","op":"start","sender":{"user_id":)" + std::to_string(n) +
         R"(,"email":"x@example.com"},"recipients":[]})";
}

class ReloadTest : public BridgeTest {
 protected:
  void SetUp() override {
    BridgeTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    zulip_ = std::make_unique<FakeZulip>(
        dir_.path(),
        std::vector<FakeZulip::User>{
            {kAlpha.email, kAlpha.key}, {kBeta.email, kBeta.key}, {kGamma.email, kGamma.key}});
    for (const Bot& bot : {kAlpha, kBeta, kGamma}) KeyFile(bot, bot.key);
    prefix_ = UniqueTopic("zbreload");
    http_port_ = FreeLoopbackPort();
  }

  void KeyFile(const Bot& bot, const std::string& key) {
    WriteFile(dir_.Sub(std::string(bot.name) + ".key"), key + "\n");
  }

  // The configuration with `bots`; `kafka_extra` goes into the kafka section.
  void WriteConfig(const std::vector<Bot>& bots, const std::string& kafka_extra = "") {
    std::string text = "kafka:\n  brokers: [" + kafka_brokers() + "]\n  topic_template: \"" +
                       prefix_ +
                       ".{type}\"\n  flush_timeout_secs: " + std::to_string(flush_timeout_secs_) +
                       "\n" + kafka_extra + "state_dir: " + dir_.Sub("state") +
                       "\nhttp:\n  listen: 127.0.0.1:" + std::to_string(http_port_) + "\n" +
                       top_extra_ + "accounts:\n";
    for (const Bot& bot : bots) {
      text += AccountYaml(bot.name, zulip_->site(), bot.email, dir_.Sub(bot.name) + ".key");
    }
    WriteFile(config_path(), text);
  }

  // The one queue of `bot` (waiting for it to be exactly one).
  std::string QueueOf(const Bot& bot) {
    std::string queue = zulip_->WaitForOneQueue(bot.email);
    EXPECT_FALSE(queue.empty()) << "no queue for " << bot.name;
    return queue;
  }

  // The /readyz body, parsed.
  rapidjson::Document Readyz() {
    rapidjson::Document doc;
    HttpAnswer answer = HttpGet("http://127.0.0.1:" + std::to_string(http_port_) + "/readyz");
    doc.Parse(answer.body.c_str());
    return doc;
  }

  // The state /readyz gives `account` ("" when absent).
  std::string StateOf(const std::string& account) {
    rapidjson::Document doc = Readyz();
    if (!doc.IsObject() || !doc.HasMember("accounts")) return "";
    for (const auto& a : doc["accounts"].GetArray()) {
      if (account == a["name"].GetString()) return a["state"].GetString();
    }
    return "";
  }

  // Pushes typing events to `bot`'s queue; remembers their (account, event id).
  void Push(const Bot& bot, const std::string& queue, int count) {
    for (int i = 0; i < count; ++i) {
      int64_t id = zulip_->PushEventToQueue(queue, Typing(i));
      ASSERT_GE(id, 0);
      pushed_.insert({bot.name, queue + "/" + std::to_string(id)});
    }
  }

  // The broker the bridge and the reads use: the shared one, or this test's own.

  std::string kafka_brokers() const { return own_broker_.empty() ? brokers_ : own_broker_; }

  // Records `account` has given to the producer and Kafka has not acknowledged (/readyz).
  int64_t InFlightOf(const std::string& account) {
    rapidjson::Document doc = Readyz();
    if (!doc.IsObject() || !doc.HasMember("accounts")) return -1;
    for (const auto& a : doc["accounts"].GetArray()) {
      if (account == a["name"].GetString()) return a["in_flight"].GetInt64();
    }
    return -1;
  }

  // Waits until every pushed event is in Kafka; the ones missing.
  std::set<std::pair<std::string, std::string>> Missing() {
    std::set<std::pair<std::string, std::string>> seen;
    auto fill = [&](const std::vector<ReadRecord>& records) {
      seen.clear();
      for (const ReadRecord& r : records) {
        seen.insert({r.headers.at("zulip-account"),
                     r.headers.at("zulip-queue-id") + "/" + r.headers.at("zulip-event-id")});
      }
      return std::includes(seen.begin(), seen.end(), pushed_.begin(), pushed_.end());
    };
    fill(ReadTopics(kafka_brokers(), {prefix_ + ".typing"}, fill, std::chrono::seconds(90)));
    std::set<std::pair<std::string, std::string>> missing;
    std::set_difference(pushed_.begin(), pushed_.end(), seen.begin(), seen.end(),
                        std::inserter(missing, missing.end()));
    return missing;
  }

  std::string prefix_;
  int http_port_ = 0;
  std::unique_ptr<FakeZulip> zulip_;
  std::set<std::pair<std::string, std::string>> pushed_;
  std::string own_broker_;  // set by tests that stop their broker
  int flush_timeout_secs_ = 20;
  std::string top_extra_;  // top-level sections for WriteConfig
};

TEST_F(ReloadTest, AddsAndRemovesAccountsAndLeavesTheUnchangedOneAlone) {
  WriteConfig({kAlpha, kBeta});
  StartBridge();
  std::string alpha_queue = QueueOf(kAlpha);
  std::string beta_queue = QueueOf(kBeta);
  Push(kAlpha, alpha_queue, 20);
  Push(kBeta, beta_queue, 20);
  ASSERT_TRUE(Missing().empty());
  const std::string beta_checkpoint = dir_.Sub("state/beta.checkpoint.json");
  ASSERT_TRUE(std::filesystem::exists(beta_checkpoint));

  WriteConfig({kAlpha, kGamma});
  Push(kAlpha, alpha_queue, 20);  // in flight around the reload
  auto [code, out] = RunCommand({"reload"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("reloaded: 1 added, 1 removed, 0 restarted, 1 unchanged"), std::string::npos)
      << out;

  // The removed account's queue is deleted at Zulip and its checkpoint goes.
  EXPECT_TRUE(
      WaitFor([&] { return zulip_->QueuesOf(kBeta.email).empty(); }, std::chrono::seconds(30)))
      << "beta's queue is still on Zulip";
  EXPECT_TRUE(
      WaitFor([&] { return !std::filesystem::exists(beta_checkpoint); }, std::chrono::seconds(10)));
  std::string gamma_queue = QueueOf(kGamma);
  Push(kGamma, gamma_queue, 20);
  Push(kAlpha, alpha_queue, 20);
  EXPECT_TRUE(Missing().empty());
  // Unchanged means untouched: the same queue, never registered again.
  EXPECT_EQ(zulip_->QueuesOf(kAlpha.email), std::vector<std::string>{alpha_queue});
  EXPECT_EQ(StateOf("beta"), "");
  EXPECT_EQ(LinesWith(bridge_->Log(), "event queue registered", "account=alpha"), 1)
      << "alpha registered more than once";
}

// A removed account waits for Kafka to acknowledge its events before its queue is deleted; a
// reload that brings it back meanwhile turns the removal into a restart on the same queue.
// Runs a broker of its own, since it stops it.
TEST_F(ReloadTest, AnAccountRemovedWhileKafkaIsDownKeepsItsQueueAndComesBackOnIt) {
  ZB_REQUIRE_KAFKA_CTL();
  PrivateBroker broker(dir_.Sub("kafka"));
  own_broker_ = broker.Run("start");
  ASSERT_FALSE(own_broker_.empty());
  WriteConfig({kAlpha, kBeta});
  StartBridge();
  std::string alpha_queue = QueueOf(kAlpha);
  QueueOf(kBeta);
  Push(kAlpha, alpha_queue, 5);
  ASSERT_TRUE(Missing().empty());

  broker.Run("stop");
  Push(kAlpha, alpha_queue, 5);
  ASSERT_TRUE(WaitFor([&] { return InFlightOf("alpha") > 0; }, std::chrono::seconds(30)));
  WriteConfig({kBeta});
  auto [removed_code, removed] = RunCommand({"reload"});
  EXPECT_EQ(removed_code, 0) << removed;
  EXPECT_NE(removed.find("0 added, 1 removed"), std::string::npos) << removed;
  // Its events are not acknowledged: the queue stays, so nothing is lost.
  EXPECT_EQ(zulip_->QueuesOf(kAlpha.email), std::vector<std::string>{alpha_queue});

  WriteConfig({kAlpha, kBeta});
  auto [back_code, back] = RunCommand({"reload"});
  EXPECT_EQ(back_code, 0) << back;
  EXPECT_NE(back.find("0 added, 0 removed, 1 restarted, 1 unchanged"), std::string::npos) << back;

  broker.Run("start");
  Push(kAlpha, alpha_queue, 5);
  EXPECT_TRUE(Missing().empty());
  EXPECT_TRUE(WaitFor([&] { return StateOf("alpha") == "polling"; }, std::chrono::seconds(30)));
  EXPECT_EQ(zulip_->QueuesOf(kAlpha.email), std::vector<std::string>{alpha_queue})
      << "the removal went on after the account came back";
  StopBridge();
}

// Issue #15 (11b): an account removed from the configuration between runs. Its credentials went
// with it, so the daemon cannot delete its queue; deleting its checkpoint would lose the events
// that queue still holds should the account come back. It is kept, loudly, and resumed.
TEST_F(ReloadTest, ACheckpointOfAnAccountNoLongerConfiguredIsKeptAtStartAndResumedLater) {
  WriteConfig({kAlpha, kBeta});
  StartBridge();
  QueueOf(kAlpha);
  std::string beta_queue = QueueOf(kBeta);
  Push(kBeta, beta_queue, 5);
  ASSERT_TRUE(Missing().empty());
  StopBridge();
  const std::string beta_checkpoint = dir_.Sub("state/beta.checkpoint.json");
  ASSERT_TRUE(std::filesystem::exists(beta_checkpoint));

  WriteConfig({kAlpha});
  StartBridge();
  ASSERT_TRUE(WaitFor([&] { return StateOf("alpha") == "polling"; }, std::chrono::seconds(30)));
  Push(kBeta, beta_queue, 5);  // while beta is not configured: its queue keeps them
  EXPECT_TRUE(std::filesystem::exists(beta_checkpoint)) << "the checkpoint was deleted";
  EXPECT_EQ(LinesWith(bridge_->Log(), "account=beta", "zulip-bridge decommission beta"), 1)
      << bridge_->Log();
  EXPECT_NE(HttpGet("http://127.0.0.1:" + std::to_string(http_port_) + "/metrics")
                .body.find("zb_unconfigured_checkpoints 1"),
            std::string::npos);
  StopBridge();

  WriteConfig({kAlpha, kBeta});
  StartBridge();
  EXPECT_TRUE(Missing().empty()) << "events pushed while beta was not configured were lost";
  EXPECT_EQ(zulip_->QueuesOf(kBeta.email), std::vector<std::string>{beta_queue});
  // The log holds all three runs: beta registered in the first one only.
  EXPECT_EQ(LinesWith(bridge_->Log(), "event queue registered", "account=beta"), 1)
      << "beta registered a new queue instead of resuming its own";
  StopBridge();
}

// Issue #15 (11a): an account restarted by a reload while Kafka is down is dropped with records
// unacknowledged once kafka.flush_timeout_secs passes. Its slot used to stay taken for good and
// the records it left held after their timeouts stayed in the producer, counting against
// queue.buffering.max.messages: with the limit at 20, the restarted account could never
// produce again. Runs a broker of its own, since it stops it.
TEST_F(ReloadTest, AnAccountRestartedWithRecordsInFlightLeavesNothingHeldBehind) {
  ZB_REQUIRE_KAFKA_CTL();
  PrivateBroker broker(dir_.Sub("kafka"));
  own_broker_ = broker.Run("start");
  ASSERT_FALSE(own_broker_.empty());
  flush_timeout_secs_ = 1;
  const std::string kafka_extra =
      "  properties:\n    queue.buffering.max.messages: \"20\"\n"
      "    message.timeout.ms: \"1000\"\n    statistics.interval.ms: \"200\"\n";
  WriteConfig({kAlpha}, kafka_extra);
  StartBridge();
  std::string queue = QueueOf(kAlpha);
  Push(kAlpha, queue, 5);
  ASSERT_TRUE(Missing().empty());

  // A backlog waiting when the account polls comes in one response, so that it fills the
  // producer (a poll returns as soon as one event is there).
  StopBridge();
  broker.Run("stop");
  Push(kAlpha, queue, 40);
  StartBridge();
  ASSERT_TRUE(WaitFor([&] { return InFlightOf("alpha") >= 20; }, std::chrono::seconds(30)));
  // Any change to `retry` restarts every account on its queue.
  top_extra_ = "retry:\n  initial_backoff_ms: 200\n";
  WriteConfig({kAlpha}, kafka_extra);
  auto [code, out] = RunCommand({"reload"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("1 restarted"), std::string::npos) << out;
  const std::string metrics_url = "http://127.0.0.1:" + std::to_string(http_port_) + "/metrics";
  // The restarted account holds records again, or (before #15) nothing is left in librdkafka
  // while the old account's records stay held: either way the broker may come back now.
  ASSERT_TRUE(WaitFor(
      [&] {
        return InFlightOf("alpha") > 0 ||
               HttpGet(metrics_url).body.find("\nzb_kafka_producer_queue_messages 0\n") !=
                   std::string::npos;
      },
      std::chrono::seconds(30)));
  broker.Run("start");
  Push(kAlpha, queue, 5);
  EXPECT_TRUE(Missing().empty()) << "the restarted account did not get its events through";
  EXPECT_TRUE(WaitFor(
      [&] {
        return HttpGet(metrics_url).body.find("\nzb_account_slots_draining 0\n") !=
               std::string::npos;
      },
      std::chrono::seconds(30)))
      << "the old account's slot was not freed";
  StopBridge();
}

TEST_F(ReloadTest, InvalidOrRestartOnlyConfigurationKeepsTheRunningOneAndSaysWhy) {
  WriteConfig({kAlpha});
  StartBridge();
  std::string queue = QueueOf(kAlpha);
  const std::string good = [&] {
    std::ifstream in(config_path());
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();

  // Invalid: the command refuses before signalling, naming the file, line and key.
  WriteFile(config_path(), good + "    colour: blue\n");
  auto [invalid_code, invalid] = RunCommand({"reload"});
  EXPECT_EQ(invalid_code, 78) << invalid;
  EXPECT_NE(invalid.find(config_path() + ":"), std::string::npos) << invalid;
  EXPECT_NE(invalid.find("colour"), std::string::npos) << invalid;
  EXPECT_NE(invalid.find("not reloaded"), std::string::npos) << invalid;

  // A bare SIGHUP with the same file: the daemon says why in /readyz and goes on.
  bridge_->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor(
      [&] {
        rapidjson::Document doc = Readyz();
        return doc.IsObject() && doc.HasMember("reload") &&
               doc["reload"]["generation"].GetUint64() == 1;
      },
      std::chrono::seconds(30)));
  rapidjson::Document after_hup = Readyz();
  EXPECT_FALSE(after_hup["reload"]["applied"].GetBool());
  std::string why = after_hup["reload"]["message"].GetString();
  EXPECT_NE(why.find("invalid"), std::string::npos) << why;
  EXPECT_NE(why.find("colour"), std::string::npos) << why;
  EXPECT_NE(bridge_->Log().find("configuration not reloaded"), std::string::npos);

  // Restart-only: brokers. Nothing applied, the account untouched.
  WriteConfig({kAlpha, kBeta}, "  properties:\n    linger.ms: \"7\"\n");
  auto [restart_code, restart] = RunCommand({"reload"});
  EXPECT_EQ(restart_code, 1) << restart;
  EXPECT_NE(restart.find("kafka.properties"), std::string::npos) << restart;
  EXPECT_NE(restart.find("restart"), std::string::npos) << restart;
  EXPECT_TRUE(zulip_->QueuesOf(kBeta.email).empty()) << "beta was started: half applied";
  // Both refusals (the bare SIGHUP and this one; the invalid file never reached the daemon by
  // the command) are counted, and the gauge an alert watches says the last one failed.
  HttpAnswer metrics = HttpGet("http://127.0.0.1:" + std::to_string(http_port_) + "/metrics");
  EXPECT_NE(metrics.body.find("zb_reloads_total{result=\"refused\"} 2\n"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("zb_reload_last_applied 0\n"), std::string::npos);

  Push(kAlpha, queue, 30);
  EXPECT_TRUE(Missing().empty());
  EXPECT_TRUE(bridge_->running());
  EXPECT_EQ(zulip_->QueuesOf(kAlpha.email), std::vector<std::string>{queue});
}

TEST_F(ReloadTest, AReloadRetriesAParkedAccountOnceItsKeyIsFixed) {
  KeyFile(kAlpha, "wrongKey0123456789abcdefghijklmn");
  WriteConfig({kAlpha, kBeta});
  StartBridge();
  std::string beta_queue = QueueOf(kBeta);
  ASSERT_TRUE(WaitFor([&] { return StateOf("alpha") == "parked"; }, std::chrono::seconds(30)));

  KeyFile(kAlpha, kAlpha.key);
  auto [code, out] = RunCommand({"reload"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("1 restarted, 1 unchanged"), std::string::npos) << out;
  std::string alpha_queue = QueueOf(kAlpha);
  Push(kAlpha, alpha_queue, 10);
  Push(kBeta, beta_queue, 10);
  EXPECT_TRUE(Missing().empty());
  EXPECT_EQ(zulip_->QueuesOf(kBeta.email), std::vector<std::string>{beta_queue});
}

}  // namespace
}  // namespace zb::testing
