// KafkaPublisher against the real broker the test command starts (ZB_KAFKA_BROKERS): records
// land with their exact bytes, key, headers and timestamp; every token comes back; a record the
// broker will not take is classified permanent and the producer goes on.
#include "daemon/kafka/kafka_publisher.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::ElementsAreArray;
using ::zb::testing::IsOk;
using ::zb::testing::WaitFor;
using Outcome = DeliveryReport::Outcome;
using namespace std::chrono_literals;

constexpr auto kWait = 60s;

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

// One record as a consumer read it back.
struct ReadRecord {
  std::optional<std::string> key;
  std::string value;
  std::vector<KafkaHeader> headers;
  int64_t timestamp_ms = -1;
  rd_kafka_timestamp_type_t timestamp_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
};

using Position = std::pair<int32_t, int64_t>;  // (partition, offset)

// Reads `count` records of `partitions` of `topic` from the beginning, keyed by position.
std::map<Position, ReadRecord> ReadBack(const std::string& brokers, const std::string& topic,
                                        const std::set<int32_t>& partitions, size_t count) {
  std::map<Position, ReadRecord> records;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [key, value] : std::map<std::string, std::string>{{"bootstrap.servers", brokers},
                                                              {"group.id", topic + ".reader"},
                                                              {"enable.auto.commit", "false"}}) {
    EXPECT_EQ(rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr),
              RD_KAFKA_CONF_OK)
        << errstr;
  }
  KafkaHandle consumer(rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr));
  EXPECT_TRUE(consumer) << errstr;
  if (!consumer) return records;
  rd_kafka_poll_set_consumer(consumer.get());
  rd_kafka_topic_partition_list_t* assignment =
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (int32_t partition : partitions) {
    rd_kafka_topic_partition_list_add(assignment, topic.c_str(), partition)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  EXPECT_EQ(rd_kafka_assign(consumer.get(), assignment), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(assignment);

  WaitFor(
      [&] {
        rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer.get(), 100);
        if (msg == nullptr) return false;
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          ReadRecord record;
          if (msg->key) record.key.emplace(static_cast<const char*>(msg->key), msg->key_len);
          record.value.assign(static_cast<const char*>(msg->payload), msg->len);
          record.timestamp_ms = rd_kafka_message_timestamp(msg, &record.timestamp_type);
          rd_kafka_headers_t* headers = nullptr;
          if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char* name = nullptr;
            const void* value = nullptr;
            size_t size = 0;
            for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                               RD_KAFKA_RESP_ERR_NO_ERROR;
                 ++i) {
              record.headers.emplace_back(name, std::string(static_cast<const char*>(value), size));
            }
          }
          records[{msg->partition, msg->offset}] = std::move(record);
        }
        rd_kafka_message_destroy(msg);
        return records.size() >= count;
      },
      kWait);
  rd_kafka_consumer_close(consumer.get());
  return records;
}

class Reports {
 public:
  void Add(std::vector<DeliveryReport> batch) {
    std::lock_guard lock(mu_);
    for (auto& report : batch) by_token_[report.token] = std::move(report);
  }
  std::map<uint64_t, DeliveryReport> Snapshot() {
    std::lock_guard lock(mu_);
    return by_token_;
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return by_token_.size();
  }

 private:
  std::mutex mu_;
  std::map<uint64_t, DeliveryReport> by_token_;
};

std::unique_ptr<KafkaPublisher> MakePublisher(const std::string& brokers, Reports& reports,
                                              std::map<std::string, std::string> props = {}) {
  KafkaPublisherOptions options;
  options.brokers = brokers;
  options.properties = std::move(props);
  options.on_delivery = [&reports](std::vector<DeliveryReport> batch) {
    reports.Add(std::move(batch));
  };
  auto publisher = KafkaPublisher::Create(std::move(options));
  EXPECT_THAT(publisher, IsOk());
  return publisher.ok() ? std::move(*publisher) : nullptr;
}

TEST(KafkaPublisherIntegrationTest, RecordsLandWithExactBytesKeyHeadersAndTimestamp) {
  ZB_REQUIRE_KAFKA(brokers);
  const std::string topic = testing::UniqueTopic("zb.publisher");
  Reports reports;
  auto publisher = MakePublisher(brokers, reports);
  ASSERT_TRUE(publisher);

  constexpr int kRecords = 500;
  constexpr int64_t kReceivedAt = 1764300000000;  // a fixed receive time, not the clock
  std::vector<std::string> values;
  for (int i = 0; i < kRecords; ++i) {
    // Bytes as Zulip sent them, including what a re-serialisation would change.
    values.push_back(R"({"type":"message", "id":)" + std::to_string(i) +
                     R"(,"content":"caf\u00e9 \"q\"",  "x":1.50})");
  }
  for (int i = 0; i < kRecords; ++i) {
    std::vector<KafkaHeader> headers = {
        {"zulip-account", "alice"}, {"zulip-event-id", std::to_string(i)}, {"zulip-empty", ""}};
    std::string transient = values[i];  // the caller's buffer dies right after Produce
    KafkaRecord record;
    record.topic = topic;
    record.key = i % 2 == 0 ? std::optional<std::string_view>("alice") : std::nullopt;
    record.value = transient;
    record.headers = headers;
    record.timestamp_ms = kReceivedAt + i;
    record.token = 1000 + i;
    Status status = publisher->Produce(record);
    // A fresh topic may take a moment; the queue is far from full at this size.
    ASSERT_THAT(status, IsOk()) << i;
    transient.assign(transient.size(), '#');
  }
  ASSERT_THAT(publisher->Flush(kWait), IsOk());

  auto snapshot = reports.Snapshot();
  ASSERT_EQ(snapshot.size(), static_cast<size_t>(kRecords));
  std::map<Position, int> index_by_position;
  std::set<int32_t> partitions;
  for (int i = 0; i < kRecords; ++i) {
    auto it = snapshot.find(1000 + i);
    ASSERT_NE(it, snapshot.end()) << "token " << 1000 + i << " never reported";
    ASSERT_EQ(it->second.outcome, Outcome::kDelivered) << it->second.error;
    index_by_position[{it->second.partition, it->second.offset}] = i;
    partitions.insert(it->second.partition);
  }

  auto read = ReadBack(brokers, topic, partitions, kRecords);
  ASSERT_EQ(read.size(), static_cast<size_t>(kRecords));
  std::map<int32_t, int> previous_by_partition;
  for (const auto& [position, record] : read) {
    ASSERT_TRUE(index_by_position.contains(position)) << position.first << "/" << position.second;
    int i = index_by_position[position];
    // Within a partition, records keep the order they were produced in (idempotence).
    auto [previous, first] = previous_by_partition.try_emplace(position.first, i);
    if (!first) {
      EXPECT_GT(i, previous->second) << "out of order in partition " << position.first;
      previous->second = i;
    }
    EXPECT_EQ(record.value, values[i]);
    if (i % 2 == 0) {
      EXPECT_EQ(record.key, "alice");
    } else {
      EXPECT_EQ(record.key, std::nullopt);
    }
    std::vector<KafkaHeader> expected = {
        {"zulip-account", "alice"}, {"zulip-event-id", std::to_string(i)}, {"zulip-empty", ""}};
    EXPECT_THAT(record.headers, ElementsAreArray(expected));
    EXPECT_EQ(record.timestamp_type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
    EXPECT_EQ(record.timestamp_ms, kReceivedAt + i);
  }
}

TEST(KafkaPublisherIntegrationTest, RecordAboveBrokerLimitIsPermanentAndTheNextOneLands) {
  ZB_REQUIRE_KAFKA(brokers);
  const std::string topic = testing::UniqueTopic("zb.publisher.big");
  Reports reports;
  // The client would refuse a record above its own message.max.bytes at once; lift that so the
  // broker (max.message.bytes about 1 MiB) is the one that says no.
  auto publisher = MakePublisher(brokers, reports, {{"message.max.bytes", "8000000"}});
  ASSERT_TRUE(publisher);

  auto produce = [&](uint64_t token, const std::string& value) {
    KafkaRecord record;
    record.topic = topic;
    record.key = "alice";
    record.value = value;
    record.timestamp_ms = 1764300000000;
    record.token = token;
    return publisher->Produce(record);
  };
  ASSERT_THAT(produce(1, "small before"), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports.size() == 1; }, kWait));
  const std::string big(3 * 1024 * 1024, 'z');
  ASSERT_THAT(produce(2, big), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports.size() == 2; }, kWait));
  ASSERT_THAT(produce(3, "small after"), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports.size() == 3; }, kWait));

  auto snapshot = reports.Snapshot();
  EXPECT_EQ(snapshot[1].outcome, Outcome::kDelivered) << snapshot[1].error;
  EXPECT_EQ(snapshot[2].outcome, Outcome::kPermanent) << snapshot[2].error;
  EXPECT_EQ(snapshot[3].outcome, Outcome::kDelivered) << snapshot[3].error;
  EXPECT_EQ(publisher->HeldFailed(), 1u);
  StatusOr<OwnedKafkaRecord> released = publisher->Release(2);
  ASSERT_THAT(released, IsOk());
  EXPECT_EQ(released->value.size(), big.size());
}

TEST(KafkaPublisherIntegrationTest, MissingTopicWithAutoCreationOffIsReportedAsMissing) {
  ZB_REQUIRE_KAFKA(brokers);
  const std::string topic = testing::UniqueTopic("zb.publisher.absent");
  Reports reports;
  // The broker auto-creates topics; a producer that does not ask for it sees the topic missing,
  // as under a broker with auto.create.topics.enable=false.
  auto publisher = MakePublisher(
      brokers, reports,
      {{"allow.auto.create.topics", "false"}, {"topic.metadata.propagation.max.ms", "1000"}});
  ASSERT_TRUE(publisher);
  KafkaRecord record;
  record.topic = topic;
  record.value = "{}";
  record.token = 9;
  Status status = publisher->Produce(record);
  if (status.ok()) {
    ASSERT_TRUE(WaitFor([&] { return reports.size() == 1; }, kWait));
    auto snapshot = reports.Snapshot();
    EXPECT_EQ(snapshot[9].outcome, Outcome::kMissingTopic) << snapshot[9].error;
    EXPECT_EQ(publisher->HeldFailed(), 1u);
  } else {
    // librdkafka already knew the topic is absent: refused at once, nothing held.
    EXPECT_TRUE(status.IsNotFound()) << status;
  }
}

}  // namespace
}  // namespace zb
