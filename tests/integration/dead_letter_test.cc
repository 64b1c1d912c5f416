// Issue 7, test 5: a record larger than the broker takes goes to the dead-letter spool while its
// account goes on; once the limit is raised, `zulip-bridge replay-dead-letters` (run while the
// daemon runs) delivers it with its exact bytes, key, headers and timestamp, and the spool is
// empty. The bridge and the fake Zulip are subprocesses; Kafka is the real broker.
#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/base/status.h"
#include "daemon/state/dead_letter_spool.h"
#include "tests/integration/bridge_harness.h"
#include "tests/test_support.h"

namespace zb::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kEmail[] = "alice-bot@example.com";
constexpr char kApiKey[] = "aliceKey0123456789abcdefghijklmn";

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

// An admin client on the test broker: creates a topic with a given max.message.bytes and
// changes it later.
class Admin {
 public:
  explicit Admin(const std::string& brokers) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof errstr);
    handle_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr));
    EXPECT_TRUE(handle_) << errstr;
    queue_ = rd_kafka_queue_new(handle_.get());
  }
  ~Admin() { rd_kafka_queue_destroy(queue_); }

  Status CreateTopic(const std::string& topic, const std::string& max_message_bytes) {
    char errstr[512];
    rd_kafka_NewTopic_t* new_topic =
        rd_kafka_NewTopic_new(topic.c_str(), 1, 1, errstr, sizeof errstr);
    rd_kafka_NewTopic_set_config(new_topic, "max.message.bytes", max_message_bytes.c_str());
    rd_kafka_CreateTopics(handle_.get(), &new_topic, 1, nullptr, queue_);
    rd_kafka_NewTopic_destroy(new_topic);
    return Await("CreateTopics", [](rd_kafka_event_t* event) {
      size_t n = 0;
      const rd_kafka_topic_result_t** results =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
      std::vector<std::string> errors;
      for (size_t i = 0; i < n; ++i) {
        if (rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
          errors.push_back(rd_kafka_topic_result_error_string(results[i]));
        }
      }
      return errors;
    });
  }

  Status SetMaxMessageBytes(const std::string& topic, const std::string& max_message_bytes) {
    rd_kafka_ConfigResource_t* resource =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
    rd_kafka_ConfigResource_set_config(resource, "max.message.bytes", max_message_bytes.c_str());
    rd_kafka_AlterConfigs(handle_.get(), &resource, 1, nullptr, queue_);
    rd_kafka_ConfigResource_destroy(resource);
    return Await("AlterConfigs", [](rd_kafka_event_t* event) {
      size_t n = 0;
      const rd_kafka_ConfigResource_t** results =
          rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(event), &n);
      std::vector<std::string> errors;
      for (size_t i = 0; i < n; ++i) {
        if (rd_kafka_ConfigResource_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
          errors.push_back(rd_kafka_ConfigResource_error_string(results[i]));
        }
      }
      return errors;
    });
  }

 private:
  // Waits for the answer to the admin request just sent: the request's own error, or the first
  // per-item error `item_errors` finds in the answer.
  Status Await(const std::string& what,
               const std::function<std::vector<std::string>(rd_kafka_event_t*)>& item_errors) {
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue_, 30000);
    if (event == nullptr) return Status::Unavailable(what + ": no answer");
    Status status = Status::Ok();
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status = Status::Unavailable(what + ": " + rd_kafka_event_error_string(event));
    } else if (std::vector<std::string> errors = item_errors(event); !errors.empty()) {
      status = Status::InvalidArgument(what + ": " + errors.front());
    }
    rd_kafka_event_destroy(event);
    return status;
  }

  KafkaHandle handle_;
  rd_kafka_queue_t* queue_ = nullptr;
};

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Typing(const std::string& op) {
  return R"({"type":"typing","op":")" + op +
         R"(","sender":{"user_id":4,"email":"x@example.com"},"recipients":[]})";
}

class DeadLetterTest : public BridgeTest {
 protected:
  void SetUp() override {
    BridgeTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    zulip_ =
        std::make_unique<FakeZulip>(dir_.path(), std::vector<FakeZulip::User>{{kEmail, kApiKey}});
    prefix_ = UniqueTopic("zbdl");
    WriteFile(dir_.Sub("alice.key"), std::string(kApiKey) + "\n");
    WriteConfig("");
  }

  // The bridge's configuration, with `kafka_extra` (indented YAML) in its kafka section.
  void WriteConfig(const std::string& kafka_extra) {
    WriteFile(config_path(),
              "kafka:\n  brokers: [" + brokers_ + "]\n  topic_template: \"" + prefix_ +
                  ".{type}\"\n  flush_timeout_secs: 20\n" + kafka_extra +
                  "state_dir: " + state_dir() +
                  "\nhttp:\n  listen: 127.0.0.1:0\nlog:\n  level: debug\n"
                  "accounts:\n" +
                  AccountYaml("alice", zulip_->site(), kEmail, dir_.Sub("alice.key")));
  }

  std::string state_dir() const { return dir_.Sub("state"); }
  std::string spool_path() const { return state_dir() + "/" + DeadLetterSpool::kFileName; }
  std::string topic() const { return prefix_ + ".typing"; }

  // Every record of the typing topic, keyed by event id, once `want` ids are there.
  std::map<int64_t, ReadRecord> ReadTyping(const std::set<int64_t>& want,
                                           std::chrono::milliseconds timeout) {
    std::map<int64_t, ReadRecord> by_id;
    ReadTopics(
        brokers_, {topic()},
        [&](const std::vector<ReadRecord>& records) {
          for (const ReadRecord& r : records) {
            by_id[std::stoll(r.headers.at("zulip-event-id"))] = r;
          }
          for (int64_t id : want) {
            if (!by_id.count(id)) return false;
          }
          return true;
        },
        timeout);
    return by_id;
  }

  std::string prefix_;
  std::unique_ptr<FakeZulip> zulip_;
};

TEST_F(DeadLetterTest, RecordAboveTheBrokersLimitIsSpooledTheAccountGoesOnAndReplayDeliversIt) {
  Admin admin(brokers_);
  ASSERT_TRUE(admin.CreateTopic(topic(), "4096").ok());
  StartBridge();
  const std::string queue = zulip_->WaitForOneQueue(kEmail);
  ASSERT_FALSE(queue.empty()) << bridge_->Log();

  // One event per poll, so that the big one travels in a record batch of its own (the broker
  // refuses a batch, not a record: a small record in the same batch would be spooled with it).
  const int64_t before = zulip_->PushEventToQueue(queue, Typing("start"));
  ASSERT_GE(before, 0);
  ASSERT_EQ(ReadTyping({before}, 60s).count(before), 1u) << bridge_->Log();

  const std::string big_event =
      R"({"type":"typing","op":"stop","padding":")" + std::string(16 * 1024, 'p') + R"("})";
  const int64_t big = zulip_->PushEventToQueue(queue, big_event);
  ASSERT_GE(big, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadText(spool_path()).find("\"event_id\":" + std::to_string(big)) !=
               std::string::npos;
      },
      60s))
      << "the big record never reached the spool\n"
      << bridge_->Log();
  // The line is logged once the append is durable, a moment after the bytes are in the file.
  EXPECT_TRUE(WaitFor(
      [&] { return bridge_->Log().find("event dead-lettered") != std::string::npos; }, 30s));

  // The account goes on: the next event lands, and the spooled one was acknowledged to Zulip
  // (it counts as settled), so the events after it are not held behind it.
  const int64_t after = zulip_->PushEventToQueue(queue, Typing("start"));
  ASSERT_GE(after, 0);
  std::map<int64_t, ReadRecord> landed = ReadTyping({before, after}, 60s);
  ASSERT_EQ(landed.count(after), 1u) << "the account did not go on\n" << bridge_->Log();
  EXPECT_EQ(landed.count(big), 0u) << "the broker took the big record after all";

  // A replay before the cause is fixed keeps the record, with the broker's new answer.
  {
    Subprocess early({BridgeBinary(), "replay-dead-letters", "--config", config_path()},
                     dir_.Sub("early-replay.log"));
    std::optional<int> code = early.Wait(120s);
    ASSERT_TRUE(code.has_value()) << early.Log();
    EXPECT_EQ(*code, 1) << early.Log();
    EXPECT_NE(early.Log().find("replayed 0, still failing 1"), std::string::npos) << early.Log();
    EXPECT_NE(early.Log().find("MSG_SIZE_TOO_LARGE"), std::string::npos) << early.Log();
    EXPECT_NE(ReadText(spool_path()).find("\"event_id\":" + std::to_string(big)), std::string::npos)
        << "a record that still fails left the spool";
  }

  // The operator raises the limit and replays, with the daemon still running.
  ASSERT_TRUE(admin.SetMaxMessageBytes(topic(), "1048588").ok());
  Subprocess replay({BridgeBinary(), "replay-dead-letters", "--config", config_path()},
                    dir_.Sub("replay.log"));
  std::optional<int> code = replay.Wait(120s);
  ASSERT_TRUE(code.has_value()) << replay.Log();
  EXPECT_EQ(*code, 0) << replay.Log();
  EXPECT_NE(replay.Log().find("replayed 1, still failing 0"), std::string::npos) << replay.Log();

  std::map<int64_t, ReadRecord> all = ReadTyping({before, big, after}, 60s);
  ASSERT_EQ(all.count(big), 1u) << "replay did not deliver the record";
  const std::map<int64_t, std::string> truth = zulip_->GroundTruth(queue);
  const ReadRecord& replayed = all.at(big);
  EXPECT_EQ(replayed.value, truth.at(big)) << "replayed bytes differ from Zulip's";
  EXPECT_EQ(replayed.key, std::optional<std::string>("alice"));
  EXPECT_EQ(replayed.headers.at("zulip-account"), "alice");
  EXPECT_EQ(replayed.headers.at("zulip-event-type"), "typing");
  EXPECT_EQ(replayed.headers.at("zulip-queue-id"), queue);
  // The record keeps the time the daemon received it, not the time of the replay.
  EXPECT_LE(replayed.timestamp_ms, all.at(after).timestamp_ms);
  EXPECT_EQ(ReadText(spool_path()), "") << "a delivered record stayed in the spool";

  bridge_->Signal(SIGTERM);
  std::optional<int> stopped = bridge_->Wait(40s);
  ASSERT_TRUE(stopped.has_value()) << bridge_->Log();
  EXPECT_EQ(*stopped, 0) << bridge_->Log();
}

TEST_F(DeadLetterTest, MissingTopicHoldsTheAccountLoudlyAndItGoesOnOnceTheTopicExists) {
  // The broker auto-creates topics; a producer that does not ask for it sees the topic
  // missing, as under auto.create.topics.enable=false. librdkafka waits
  // topic.metadata.propagation.max.ms (30 s by default) before it calls a topic missing: 1 s
  // here. Once the topic exists, the held record (produced again every second) lands within
  // a second or two with librdkafka's other defaults.
  WriteConfig(
      "  properties:\n    allow.auto.create.topics: \"false\"\n"
      "    topic.metadata.propagation.max.ms: 1000\n");
  StartBridge();
  const std::string queue = zulip_->WaitForOneQueue(kEmail);
  ASSERT_FALSE(queue.empty()) << bridge_->Log();
  const int64_t first = zulip_->PushEventToQueue(queue, Typing("start"));
  ASSERT_GE(first, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string log = bridge_->Log();
        return log.find("Kafka topic does not exist") != std::string::npos &&
               log.find("topic=" + topic()) != std::string::npos;
      },
      60s))
      << "the missing topic was not reported\n"
      << bridge_->Log();
  EXPECT_EQ(ReadText(spool_path()), "") << "a missing topic is not a dead letter";

  Admin admin(brokers_);
  ASSERT_TRUE(admin.CreateTopic(topic(), "1048588").ok());
  const int64_t second = zulip_->PushEventToQueue(queue, Typing("stop"));
  ASSERT_GE(second, 0);
  std::map<int64_t, ReadRecord> landed = ReadTyping({first, second}, 90s);
  EXPECT_EQ(landed.count(first), 1u) << bridge_->Log();
  EXPECT_EQ(landed.count(second), 1u) << "the account did not go on\n" << bridge_->Log();

  bridge_->Signal(SIGTERM);
  std::optional<int> stopped = bridge_->Wait(40s);
  ASSERT_TRUE(stopped.has_value()) << bridge_->Log();
  EXPECT_EQ(*stopped, 0) << bridge_->Log();
}

TEST_F(DeadLetterTest, ReplayWithAnEmptySpoolSaysSoAndExitsZero) {
  Subprocess replay({BridgeBinary(), "replay-dead-letters", "--config", config_path()},
                    dir_.Sub("replay.log"));
  std::optional<int> code = replay.Wait(60s);
  ASSERT_TRUE(code.has_value()) << replay.Log();
  EXPECT_EQ(*code, 0) << replay.Log();
  EXPECT_NE(replay.Log().find("replayed 0, still failing 0"), std::string::npos) << replay.Log();
}

TEST_F(DeadLetterTest, ReplayWithABadConfigExitsSeventyEight) {
  WriteFile(config_path(), "kafka: [\n");
  Subprocess replay({BridgeBinary(), "replay-dead-letters", "--config", config_path()},
                    dir_.Sub("replay.log"));
  std::optional<int> code = replay.Wait(60s);
  ASSERT_TRUE(code.has_value()) << replay.Log();
  EXPECT_EQ(*code, 78) << replay.Log();
}

}  // namespace
}  // namespace zb::testing
