// The pipeline end to end (issue 6): the bridge as a subprocess, the fake Zulip as a
// subprocess, the real Kafka broker. Each test fails when its property breaks: a missing or
// duplicated event, bytes that differ from what Zulip sent, wrong headers, per-account order
// broken within a partition, a SIGTERM that loses events or drops the queue.
#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "daemon/base/version.h"
#include "tests/integration/bridge_harness.h"
#include "tests/test_support.h"

namespace zb::testing {
namespace {

struct TestAccount {
  std::string name;
  std::string email;
  std::string api_key;
};

class PipelineTest : public ::testing::Test {
 protected:
  // Starts the fake Zulip with `accounts` as users and writes the bridge's configuration.
  void SetUpWorld(const std::vector<TestAccount>& accounts, const std::string& extra_kafka = "") {
    accounts_ = accounts;
    std::vector<FakeZulip::User> users;
    for (const TestAccount& a : accounts) users.push_back({a.email, a.api_key});
    zulip_ = std::make_unique<FakeZulip>(dir_.path(), users);
    prefix_ = UniqueTopic("zbt");
    std::string yaml = "kafka:\n  brokers: [" + brokers_ + "]\n  topic_template: \"" + prefix_ +
                       ".{type}\"\n  flush_timeout_secs: 20\n" + extra_kafka +
                       "state_dir: " + dir_.Sub("state") +
                       "\nhttp:\n  listen: 127.0.0.1:0\nlog:\n  level: debug\naccounts:\n";
    for (const TestAccount& a : accounts) {
      WriteFile(dir_.Sub(a.name + ".key"), a.api_key + "\n");
      yaml += AccountYaml(a.name, zulip_->site(), a.email, dir_.Sub(a.name + ".key"));
    }
    WriteFile(config_path(), yaml);
  }

  std::string config_path() const { return dir_.Sub("zulip-bridge.yaml"); }

  void StartBridge() {
    bridge_ = std::make_unique<Subprocess>(
        std::vector<std::string>{BridgeBinary(), "--config", config_path()},
        dir_.Sub("bridge.log"));
  }

  // Waits until every account has a registered queue; returns email -> queue id.
  std::map<std::string, std::string> WaitForQueues() {
    std::map<std::string, std::string> queues;
    bool all = WaitFor(
        [&] {
          for (const TestAccount& a : accounts_) {
            std::vector<std::string> ids = zulip_->QueuesOf(a.email);
            if (ids.size() != 1) return false;
            queues[a.email] = ids[0];
          }
          return true;
        },
        std::chrono::seconds(30));
    EXPECT_TRUE(all) << "bridge log:\n" << bridge_->Log();
    return queues;
  }

  // Waits until the fake server has no parked poll missing, i.e. every queue is being polled
  // with nothing left to deliver, then returns its ground truth (id -> bytes) for `queue_id`,
  // heartbeats left out.
  std::map<int64_t, std::string> PublishableTruth(const std::string& queue_id) {
    std::map<int64_t, std::string> truth = zulip_->GroundTruth(queue_id);
    for (auto it = truth.begin(); it != truth.end();) {
      it = it->second.find("\"type\":\"heartbeat\"") != std::string::npos ? truth.erase(it)
                                                                          : std::next(it);
    }
    return truth;
  }

  std::set<std::string> TopicsFor(const std::set<std::string>& types) {
    std::set<std::string> topics;
    for (const std::string& t : types) topics.insert(prefix_ + "." + t);
    return topics;
  }

  void StopBridgeCleanly() {
    bridge_->Signal(SIGTERM);
    std::optional<int> code = bridge_->Wait(std::chrono::seconds(40));
    ASSERT_TRUE(code.has_value()) << "bridge did not stop within 40 s\n" << bridge_->Log();
    EXPECT_EQ(*code, 0) << bridge_->Log();
  }

  void SetUp() override {
    ZB_REQUIRE_KAFKA(brokers);
    brokers_ = brokers;
  }

  void TearDown() override {
    if (HasFailure() && bridge_) std::cerr << "---- bridge log ----\n" << bridge_->Log();
  }

  TempDir dir_;
  std::string brokers_;
  std::string prefix_;
  std::vector<TestAccount> accounts_;
  std::unique_ptr<FakeZulip> zulip_;
  std::unique_ptr<Subprocess> bridge_;
};

std::vector<std::string> ExampleEvents() {
  std::ifstream in(std::string(ZB_SOURCE_DIR) + "/tests/testdata/zulip/event-examples.jsonl");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::string TypeOf(const std::string& json) {
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  return doc.IsObject() && doc.HasMember("type") ? doc["type"].GetString() : "";
}

TEST_F(PipelineTest, EveryExampleEventArrivesOnceByteIdenticalWithHeaders) {
  SetUpWorld({{"alice", "alice-bot@example.com", "aliceKey0123456789abcdefghijklmn"}});
  std::vector<std::string> examples = ExampleEvents();
  ASSERT_GE(examples.size(), 79u) << "tests/testdata/zulip/event-examples.jsonl missing";
  StartBridge();
  std::string queue = WaitForQueues()["alice-bot@example.com"];

  std::set<std::string> types;
  for (const std::string& e : examples) {
    // Straight to the queue: some types (web_reload_client) would otherwise go to web
    // clients only.
    ASSERT_GE(zulip_->PushEventToQueue(queue, e), 0) << e;
    if (TypeOf(e) != "heartbeat") types.insert(TypeOf(e));
  }
  std::map<int64_t, std::string> truth = PublishableTruth(queue);
  ASSERT_GE(truth.size(), 78u);

  std::vector<ReadRecord> records = ReadTopics(
      brokers_, TopicsFor(types), [&](const auto& r) { return r.size() >= truth.size(); },
      std::chrono::seconds(60));
  // Give a duplicate the chance to show up.
  std::vector<ReadRecord> extra = ReadTopics(
      brokers_, TopicsFor(types), [&](const auto& r) { return r.size() > truth.size(); },
      std::chrono::seconds(3));
  EXPECT_EQ(extra.size(), truth.size()) << "duplicates in Kafka";

  std::map<int64_t, int> seen;
  for (const ReadRecord& r : records) {
    ASSERT_TRUE(r.headers.count("zulip-event-id")) << r.value;
    int64_t id = std::stoll(r.headers.at("zulip-event-id"));
    ++seen[id];
    ASSERT_TRUE(truth.count(id)) << "event " << id << " was never sent";
    EXPECT_EQ(r.value, truth.at(id)) << "bytes differ for event " << id;
    std::string type = TypeOf(r.value);
    EXPECT_EQ(r.topic, prefix_ + "." + type);
    EXPECT_EQ(r.headers.at("zulip-event-type"), type);
    EXPECT_EQ(r.headers.at("zulip-site"), zulip_->site());
    EXPECT_EQ(r.headers.at("zulip-account"), "alice");
    EXPECT_EQ(r.headers.at("zulip-queue-id"), queue);
    EXPECT_EQ(r.headers.at("bridge-version"), kBridgeVersion);
    EXPECT_TRUE(r.headers.count("zulip-feature-level"));
    EXPECT_EQ(r.key, std::optional<std::string>("alice"));
    if (type == "message") {
      rapidjson::Document doc;
      doc.Parse(r.value.c_str());
      EXPECT_EQ(r.headers.at("zulip-dedup-key"),
                "msg:" + zulip_->site() + ":" + std::to_string(doc["message"]["id"].GetInt64()));
    } else {
      EXPECT_EQ(r.headers.at("zulip-dedup-key"),
                zulip_->site() + ":" + queue + ":" + std::to_string(id));
    }
  }
  for (const auto& [id, bytes] : truth) {
    EXPECT_EQ(seen[id], 1) << "event " << id << " arrived " << seen[id] << " times: " << bytes;
  }
  StopBridgeCleanly();
}

TEST_F(PipelineTest, ThreeAccountsKeepTheirOrderWithinEachPartition) {
  std::vector<TestAccount> accounts = {
      {"alpha", "alpha@example.com", "alphaKey0123456789abcdefghijklmn"},
      {"beta", "beta@example.com", "betaKey00123456789abcdefghijklmn"},
      {"gamma", "gamma@example.com", "gammaKey0123456789abcdefghijklmn"}};
  SetUpWorld(accounts);
  StartBridge();
  std::map<std::string, std::string> queues = WaitForQueues();

  constexpr int kPerAccount = 300;
  const std::vector<std::string> kinds = {
      R"({"type":"typing","op":"start","sender":{"user_id":4,"email":"x@example.com"},"recipients":[]})",
      R"({"type":"reaction","op":"add","message_id":32,"emoji_name":"octopus","emoji_code":"1f419","reaction_type":"unicode_emoji","user_id":10})",
      R"({"type":"presence","user_id":10,"email":"x@example.com","server_timestamp":1656958519,"presence":{}})"};
  for (int i = 0; i < kPerAccount; ++i) {
    for (const TestAccount& a : accounts) {
      ASSERT_EQ(zulip_->PushEvent(a.email, kinds[i % kinds.size()]).size(), 1u);
    }
  }
  size_t expected = 0;
  std::map<std::string, std::map<int64_t, std::string>> truth;
  for (const TestAccount& a : accounts) {
    truth[a.name] = PublishableTruth(queues[a.email]);
    expected += truth[a.name].size();
  }
  ASSERT_EQ(expected, static_cast<size_t>(kPerAccount) * accounts.size());
  std::vector<ReadRecord> records = ReadTopics(
      brokers_, TopicsFor({"typing", "reaction", "presence"}),
      [&](const auto& r) { return r.size() >= expected; }, std::chrono::seconds(90));
  ASSERT_EQ(records.size(), expected);

  // Per (topic, partition), in offset order, each account's event ids increase.
  std::map<std::pair<std::string, int32_t>, std::vector<const ReadRecord*>> by_partition;
  for (const ReadRecord& r : records) by_partition[{r.topic, r.partition}].push_back(&r);
  std::map<std::string, std::set<int64_t>> delivered;
  for (auto& [where, list] : by_partition) {
    std::sort(list.begin(), list.end(),
              [](const ReadRecord* a, const ReadRecord* b) { return a->offset < b->offset; });
    std::map<std::string, int64_t> last;
    for (const ReadRecord* r : list) {
      const std::string& account = r->headers.at("zulip-account");
      int64_t id = std::stoll(r->headers.at("zulip-event-id"));
      auto it = last.find(account);
      if (it != last.end()) {
        EXPECT_LT(it->second, id) << account << " out of order in " << where.first;
      }
      last[account] = id;
      EXPECT_EQ(r->value, truth[account].at(id));
      delivered[account].insert(id);
    }
  }
  for (const TestAccount& a : accounts) {
    EXPECT_EQ(delivered[a.name].size(), truth[a.name].size()) << a.name;
  }
  StopBridgeCleanly();
}

TEST_F(PipelineTest, SigtermDuringAStreamExitsZeroAndTheRestartResumesTheSameQueue) {
  SetUpWorld({{"alice", "alice-bot@example.com", "aliceKey0123456789abcdefghijklmn"}});
  StartBridge();
  std::string queue = WaitForQueues()["alice-bot@example.com"];

  std::atomic<bool> pushing{true};
  std::atomic<int> pushed{0};
  std::thread pusher([&] {
    while (pushing) {
      zulip_->PushEvent(
          "alice-bot@example.com",
          R"({"type":"typing","op":"stop","sender":{"user_id":4,"email":"x@example.com"},"recipients":[]})");
      ++pushed;
    }
  });
  ASSERT_TRUE(WaitFor([&] { return pushed >= 300; }, std::chrono::seconds(30)));
  bridge_->Signal(SIGTERM);
  std::optional<int> code = bridge_->Wait(std::chrono::seconds(40));
  ASSERT_TRUE(code.has_value()) << "no exit within the flush bound\n" << bridge_->Log();
  EXPECT_EQ(*code, 0) << bridge_->Log();
  // Events keep coming while the bridge is down: the queue buffers them.
  ASSERT_TRUE(WaitFor([&] { return pushed >= 600; }, std::chrono::seconds(30)));
  pushing = false;
  pusher.join();

  StartBridge();
  ASSERT_TRUE(
      WaitFor([&] { return bridge_->Log().find("resuming event queue") != std::string::npos; },
              std::chrono::seconds(30)))
      << bridge_->Log();
  for (int i = 0; i < 50; ++i) {
    zulip_->PushEvent(
        "alice-bot@example.com",
        R"({"type":"typing","op":"start","sender":{"user_id":4,"email":"x@example.com"},"recipients":[]})");
  }
  std::vector<std::string> queues = zulip_->QueuesOf("alice-bot@example.com");
  ASSERT_EQ(queues.size(), 1u);
  EXPECT_EQ(queues[0], queue) << "the restart registered a new queue instead of resuming";

  std::map<int64_t, std::string> truth = PublishableTruth(queue);
  std::vector<ReadRecord> records = ReadTopics(
      brokers_, TopicsFor({"typing"}),
      [&](const auto& r) {
        std::set<int64_t> ids;
        for (const ReadRecord& rec : r) ids.insert(std::stoll(rec.headers.at("zulip-event-id")));
        return ids.size() >= truth.size();
      },
      std::chrono::seconds(90));
  std::set<int64_t> ids;
  for (const ReadRecord& r : records) ids.insert(std::stoll(r.headers.at("zulip-event-id")));
  size_t missing = 0;
  for (const auto& [id, bytes] : truth) missing += ids.count(id) ? 0 : 1;
  EXPECT_EQ(missing, 0u) << "of " << truth.size() << " events";
  std::cout << "duplicates after SIGTERM and restart: " << records.size() - ids.size() << "\n";
  StopBridgeCleanly();
}

TEST_F(PipelineTest, ASecondInstanceOnTheSameStateDirectoryRefusesAndNamesTheHolder) {
  SetUpWorld({{"alice", "alice-bot@example.com", "aliceKey0123456789abcdefghijklmn"}});
  StartBridge();
  WaitForQueues();
  Subprocess second({BridgeBinary(), "--config", config_path()}, dir_.Sub("second.log"));
  std::optional<int> code = second.Wait(std::chrono::seconds(30));
  ASSERT_TRUE(code.has_value()) << "the second instance kept running\n" << second.Log();
  EXPECT_EQ(*code, 1);
  EXPECT_NE(second.Log().find("in use by another zulip-bridge (pid " +
                              std::to_string(bridge_->pid()) + ")"),
            std::string::npos)
      << second.Log();
  EXPECT_TRUE(bridge_->running()) << "the first instance must go on";
  StopBridgeCleanly();
}

// The value of the series `series` (name and labels exactly as rendered) in a Prometheus text
// body; nullopt when it is not there.
std::optional<double> MetricValue(const std::string& body, const std::string& series) {
  size_t at = body.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::stod(body.substr(at + series.size() + 2));
}

// /metrics of a live bridge (issue 10): every acknowledged event is one observation of the
// delivery latency histogram, librdkafka's statistics reach their gauges, the per-account-type
// series are there when configured, and /readyz tells the age of the last event.
TEST_F(PipelineTest, LiveMetricsCountEveryDeliveryAndShowLibrdkafkaStatistics) {
  SetUpWorld({{"alice", "alice-bot@example.com", "aliceKey0123456789abcdefghijklmn"}},
             "  properties:\n    statistics.interval.ms: \"200\"\n"
             "metrics:\n  per_account_type: true\n");
  StartBridge();
  std::string queue = WaitForQueues()["alice-bot@example.com"];
  int port = 0;
  ASSERT_TRUE(WaitFor([&] { return (port = HealthPortFromLog(bridge_->Log())) > 0; },
                      std::chrono::seconds(30)));
  const std::string url = "http://127.0.0.1:" + std::to_string(port);

  constexpr int kEvents = 25;
  const std::string typing =
      R"({"type":"typing","op":"start","sender":{"user_id":4,"email":"x@example.com"},"recipients":[]})";
  for (int i = 0; i < kEvents; ++i) ASSERT_GE(zulip_->PushEventToQueue(queue, typing), 0);

  std::string body;
  auto value = [&](const std::string& series) { return MetricValue(body, series); };
  bool published = WaitFor(
      [&] {
        body = HttpGet(url + "/metrics").body;
        return value("zb_events_published_total{account=\"alice\"}") == kEvents;
      },
      std::chrono::seconds(60));
  ASSERT_TRUE(published) << body;
  EXPECT_EQ(value("zb_kafka_delivery_latency_seconds_count"), kEvents) << body;
  EXPECT_EQ(value("zb_kafka_delivery_latency_seconds_bucket{le=\"+Inf\"}"), kEvents) << body;
  EXPECT_GT(value("zb_kafka_delivery_latency_seconds_sum").value_or(0), 0) << body;
  EXPECT_EQ(value("zb_type_events_published_total{type=\"typing\"}"), kEvents) << body;
  EXPECT_EQ(value("zb_account_type_events_received_total{account=\"alice\",type=\"typing\"}"),
            kEvents)
      << body;
  EXPECT_EQ(value("zb_account_type_events_published_total{account=\"alice\",type=\"typing\"}"),
            kEvents)
      << body;
  EXPECT_GT(value("zb_last_event_timestamp_seconds{account=\"alice\"}").value_or(0), 1.7e9) << body;

  // Statistics come every 200 ms: the broker is up, and its round trip has been measured.
  bool statistics = WaitFor(
      [&] {
        body = HttpGet(url + "/metrics").body;
        return value("zb_kafka_brokers_up").value_or(0) >= 1 &&
               body.find("\nzb_kafka_broker_rtt_seconds{broker=\"") != std::string::npos;
      },
      std::chrono::seconds(30));
  EXPECT_TRUE(statistics) << body;
  EXPECT_TRUE(value("zb_kafka_producer_queue_messages").has_value()) << body;
  EXPECT_TRUE(value("zb_kafka_producer_queue_bytes").has_value()) << body;
  EXPECT_TRUE(value("zb_kafka_tx_retries_total").has_value()) << body;
  EXPECT_TRUE(value("zb_kafka_tx_errors_total").has_value()) << body;

  // /readyz: the last event's age, a number of seconds (the snapshot is refreshed every second).
  rapidjson::Document ready;
  bool has_age = WaitFor(
      [&] {
        ready.Parse(HttpGet(url + "/readyz").body.c_str());
        if (!ready.IsObject() || !ready.HasMember("accounts")) return false;
        const rapidjson::Value& accounts = ready["accounts"];
        return accounts.IsArray() && accounts.Size() == 1 &&
               accounts[0].HasMember("last_event_age_secs") &&
               accounts[0]["last_event_age_secs"].IsNumber();
      },
      std::chrono::seconds(10));
  ASSERT_TRUE(has_age);
  double age = ready["accounts"][0]["last_event_age_secs"].GetDouble();
  EXPECT_GE(age, 0);
  EXPECT_LT(age, 600);
  StopBridgeCleanly();
}

}  // namespace
}  // namespace zb::testing
