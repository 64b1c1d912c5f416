// The foundation's proof that the real broker works with Debian's librdkafka: an idempotent
// producer (acks=all) writes records with headers, every delivery report succeeds, and a
// consumer reads them back in order with their headers. Also checks that `zulip-bridge
// --version` runs. Talks to the broker that `./dev test` starts (ZB_KAFKA_BROKERS).
#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/base/version.h"
#include "tests/test_support.h"

namespace zb {
namespace {

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

struct DeliveryTally {
  int ok = 0;
  int failed = 0;
  std::string last_error;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* tally = static_cast<DeliveryTally*>(opaque);
  if (msg->err) {
    ++tally->failed;
    tally->last_error = rd_kafka_err2str(msg->err);
  } else {
    ++tally->ok;
  }
}

rd_kafka_conf_t* MakeConf(const std::map<std::string, std::string>& props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  for (const auto& [key, value] : props) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      ADD_FAILURE() << key << ": " << errstr;
    }
  }
  return conf;
}

TEST(KafkaRoundtripTest, IdempotentProducerRecordsComeBackInOrderWithHeaders) {
  ZB_REQUIRE_KAFKA(brokers);
  const std::string topic = testing::UniqueTopic("zb.roundtrip");
  constexpr int kRecords = 2000;

  DeliveryTally tally;
  rd_kafka_conf_t* pconf = MakeConf({{"bootstrap.servers", brokers},
                                     {"enable.idempotence", "true"},
                                     {"acks", "all"},
                                     {"linger.ms", "5"}});
  rd_kafka_conf_set_dr_msg_cb(pconf, OnDelivery);
  rd_kafka_conf_set_opaque(pconf, &tally);
  char errstr[512];
  KafkaHandle producer(rd_kafka_new(RD_KAFKA_PRODUCER, pconf, errstr, sizeof errstr));
  ASSERT_TRUE(producer) << errstr;

  for (int i = 0; i < kRecords; ++i) {
    std::string value = R"({"type":"message","id":)" + std::to_string(i) + "}";
    std::string key = "account-" + std::to_string(i % 3);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("zulip-event-id", std::to_string(i).c_str(), -1), RD_KAFKA_V_END);
    ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
    rd_kafka_poll(producer.get(), 0);
  }
  ASSERT_EQ(rd_kafka_flush(producer.get(), 60000), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(tally.ok, kRecords);
  EXPECT_EQ(tally.failed, 0) << tally.last_error;

  rd_kafka_conf_t* cconf = MakeConf({{"bootstrap.servers", brokers},
                                     {"group.id", topic + ".reader"},
                                     {"auto.offset.reset", "earliest"},
                                     {"enable.auto.commit", "false"}});
  KafkaHandle consumer(rd_kafka_new(RD_KAFKA_CONSUMER, cconf, errstr, sizeof errstr));
  ASSERT_TRUE(consumer) << errstr;
  rd_kafka_poll_set_consumer(consumer.get());
  rd_kafka_topic_partition_list_t* subscription = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(subscription, topic.c_str(), RD_KAFKA_PARTITION_UA);
  ASSERT_EQ(rd_kafka_subscribe(consumer.get(), subscription), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(subscription);

  // Per key (hence per partition), ids must come back in the order they were produced.
  std::map<std::string, int> last_id_by_key;
  int received = 0;
  bool all_arrived = testing::WaitFor(
      [&] {
        rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer.get(), 100);
        if (msg == nullptr) return false;
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          std::string key(static_cast<const char*>(msg->key), msg->key_len);
          rd_kafka_headers_t* headers = nullptr;
          const void* header_value = nullptr;
          size_t header_size = 0;
          EXPECT_EQ(rd_kafka_message_headers(msg, &headers), RD_KAFKA_RESP_ERR_NO_ERROR);
          EXPECT_EQ(
              rd_kafka_header_get_last(headers, "zulip-event-id", &header_value, &header_size),
              RD_KAFKA_RESP_ERR_NO_ERROR);
          int id = std::stoi(std::string(static_cast<const char*>(header_value), header_size));
          std::string value(static_cast<const char*>(msg->payload), msg->len);
          EXPECT_EQ(value, R"({"type":"message","id":)" + std::to_string(id) + "}");
          auto [it, first] = last_id_by_key.try_emplace(key, id);
          if (!first) {
            EXPECT_LT(it->second, id) << "out of order for key " << key;
            it->second = id;
          }
          ++received;
        }
        rd_kafka_message_destroy(msg);
        return received >= kRecords;
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(all_arrived) << "received " << received << " of " << kRecords;
  EXPECT_EQ(last_id_by_key.size(), 3u);
  rd_kafka_consumer_close(consumer.get());
}

TEST(BinaryTest, VersionFlagPrintsVersionAndExitsZero) {
  std::string cmd = std::string(ZB_BRIDGE_BIN) + " --version";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buf[512] = {};
  size_t n = fread(buf, 1, sizeof buf - 1, pipe);
  int rc = pclose(pipe);
  std::string out(buf, n);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out.rfind(std::string("zulip-bridge ") + kBridgeVersion, 0), 0u) << out;
  EXPECT_NE(out.find("librdkafka 2."), std::string::npos) << out;
}

}  // namespace
}  // namespace zb
