#include "daemon/kafka/kafka_statistics.h"

#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::zb::testing::IsOk;

// A producer's statistics as librdkafka emits them (fields from its STATISTICS.md): a bootstrap
// address, one learned broker up and one reconnecting, and the logical group coordinator.
std::string ProducerStatistics() {
  std::ifstream in(ZB_SOURCE_DIR "/tests/testdata/kafka/statistics_producer.json");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The statistics of a handle with one learned broker whose counters are `retries` and `errors`.
std::string OneBroker(const std::string& handle, const std::string& broker, int retries, int errors,
                      int rtt_avg_us = 1000) {
  return R"({"name":")" + handle + R"(","msg_cnt":0,"msg_size":0,"brokers":{")" + broker +
         R"(":{"name":")" + broker +
         R"(","nodeid":1,"source":"learned","state":"UP","txretries":)" + std::to_string(retries) +
         R"(,"txerrs":)" + std::to_string(errors) + R"(,"rtt":{"avg":)" +
         std::to_string(rtt_avg_us) + R"(,"cnt":3}}}})";
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(KafkaStatisticsTest, ParsesTheQueueAndEveryBrokerOfAProducersStatistics) {
  StatusOr<KafkaStatistics> stats = ParseKafkaStatistics(ProducerStatistics());
  ASSERT_THAT(stats.status(), IsOk());
  EXPECT_EQ(stats->handle_name, "rdkafka#producer-1");
  EXPECT_EQ(stats->queue_messages, 1834);
  EXPECT_EQ(stats->queue_bytes, 2410877);
  ASSERT_EQ(stats->brokers.size(), 4u);
  const KafkaBrokerStatistics* learned = nullptr;
  for (const auto& b : stats->brokers) {
    if (b.name == "127.0.0.1:39161/1") learned = &b;
  }
  ASSERT_NE(learned, nullptr);
  EXPECT_EQ(learned->node_id, 1);
  EXPECT_EQ(learned->source, "learned");
  EXPECT_EQ(learned->state, "UP");
  EXPECT_DOUBLE_EQ(learned->rtt_avg_seconds, 0.00235);
  EXPECT_EQ(learned->rtt_samples, 5120);
  EXPECT_EQ(learned->tx_retries, 7u);
  EXPECT_EQ(learned->tx_errors, 2u);
}

TEST(KafkaStatisticsTest, CountsOnlyClusterBrokersThatAreUp) {
  StatusOr<KafkaStatistics> stats = ParseKafkaStatistics(ProducerStatistics());
  ASSERT_THAT(stats.status(), IsOk());
  // The bootstrap address and the group coordinator are UP too, but are not cluster brokers;
  // broker 2 is reconnecting.
  EXPECT_EQ(stats->BrokersUp(), 1);
}

TEST(KafkaStatisticsTest, RefusesWhatIsNotStatistics) {
  EXPECT_TRUE(ParseKafkaStatistics("not json").status().IsCorruption());
  EXPECT_TRUE(ParseKafkaStatistics("[1,2]").status().IsCorruption());
  EXPECT_TRUE(ParseKafkaStatistics(R"({"msg_cnt":"many"})").status().IsCorruption());
  EXPECT_TRUE(
      ParseKafkaStatistics(R"({"brokers":{"b":{"txretries":"x"}}})").status().IsCorruption());
}

TEST(KafkaStatisticsTest, AbsentFieldsKeepTheirDefaults) {
  StatusOr<KafkaStatistics> stats =
      ParseKafkaStatistics(R"({"name":"rdkafka#producer-3","brokers":{"h:1/bootstrap":{}}})");
  ASSERT_THAT(stats.status(), IsOk());
  EXPECT_EQ(stats->queue_messages, 0);
  ASSERT_EQ(stats->brokers.size(), 1u);
  EXPECT_EQ(stats->brokers[0].name, "h:1/bootstrap");
  EXPECT_EQ(stats->brokers[0].node_id, -1);
  EXPECT_EQ(stats->brokers[0].rtt_samples, 0);
}

TEST(KafkaStatisticsTest, PublishesQueueBrokersRttAndRequestCounters) {
  MetricsRegistry registry;
  KafkaStatisticsMetrics metrics(registry);
  ASSERT_THAT(metrics.Update(ProducerStatistics()), IsOk());
  std::string text = registry.RenderPrometheus();
  EXPECT_TRUE(Contains(text, "\nzb_kafka_producer_queue_messages 1834\n")) << text;
  EXPECT_TRUE(Contains(text, "\nzb_kafka_producer_queue_bytes 2410877\n")) << text;
  EXPECT_TRUE(Contains(text, "\nzb_kafka_brokers_up 1\n")) << text;
  EXPECT_TRUE(Contains(text, "zb_kafka_broker_rtt_seconds{broker=\"127.0.0.1:39161/1\"} 0.00235\n"))
      << text;
  // Broker 2 has answered nothing in the window: no round-trip time to show.
  EXPECT_FALSE(Contains(text, "broker=\"127.0.0.1:40012/2\"")) << text;
  EXPECT_FALSE(Contains(text, "bootstrap\"")) << text;
  EXPECT_TRUE(Contains(text, "\nzb_kafka_tx_retries_total 7\n")) << text;
  EXPECT_TRUE(Contains(text, "\nzb_kafka_tx_errors_total 3\n")) << text;
}

TEST(KafkaStatisticsTest, RequestCountersStayMonotonicAcrossAProducerRebuild) {
  MetricsRegistry registry;
  KafkaStatisticsMetrics metrics(registry);
  ASSERT_THAT(metrics.Update(OneBroker("rdkafka#producer-1", "k:9092/1", 5, 1)), IsOk());
  ASSERT_THAT(metrics.Update(OneBroker("rdkafka#producer-1", "k:9092/1", 8, 1)), IsOk());
  // The rebuilt producer's counters start from zero again.
  ASSERT_THAT(metrics.Update(OneBroker("rdkafka#producer-2", "k:9092/1", 2, 4)), IsOk());
  std::string text = registry.RenderPrometheus();
  EXPECT_TRUE(Contains(text, "\nzb_kafka_tx_retries_total 10\n")) << text;
  EXPECT_TRUE(Contains(text, "\nzb_kafka_tx_errors_total 5\n")) << text;
}

TEST(KafkaStatisticsTest, ABrokerThatLeftTheClusterLosesItsRttSeries) {
  MetricsRegistry registry;
  KafkaStatisticsMetrics metrics(registry);
  ASSERT_THAT(metrics.Update(OneBroker("rdkafka#producer-1", "old:9092/1", 0, 0)), IsOk());
  EXPECT_TRUE(Contains(registry.RenderPrometheus(), "broker=\"old:9092/1\""));
  ASSERT_THAT(metrics.Update(OneBroker("rdkafka#producer-1", "new:9092/1", 0, 0, 3000)), IsOk());
  std::string text = registry.RenderPrometheus();
  EXPECT_FALSE(Contains(text, "broker=\"old:9092/1\"")) << text;
  EXPECT_TRUE(Contains(text, "zb_kafka_broker_rtt_seconds{broker=\"new:9092/1\"} 0.003\n")) << text;
}

TEST(KafkaStatisticsTest, UnparsableStatisticsChangeNothing) {
  MetricsRegistry registry;
  KafkaStatisticsMetrics metrics(registry);
  ASSERT_THAT(metrics.Update(OneBroker("rdkafka#producer-1", "k:9092/1", 5, 1)), IsOk());
  EXPECT_FALSE(metrics.Update(std::string_view("{truncated")).ok());
  EXPECT_TRUE(Contains(registry.RenderPrometheus(), "\nzb_kafka_tx_retries_total 5\n"));
}

}  // namespace
}  // namespace zb
