// A librdkafka mock cluster (rdkafka_mock.h) with one broker, hosted by a handle of its own:
// it outlives the producers under test (a publisher's Rebuild replaces them), and the test
// can take its broker down and up, or make it refuse the next produce. Unit tests only; the
// integration suite talks to the real broker.
#ifndef ZB_TESTS_FAKES_MOCK_KAFKA_CLUSTER_H_
#define ZB_TESTS_FAKES_MOCK_KAFKA_CLUSTER_H_

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <cstdint>
#include <string>

namespace zb::testing {

class MockKafkaCluster {
 public:
  static constexpr int32_t kBrokerId = 1;
  static constexpr int16_t kProduceApiKey = 0;  // Kafka protocol ApiKey of ProduceRequest

  MockKafkaCluster() {
    char errstr[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    cluster_ = rd_kafka_mock_cluster_new(host_, 1);
  }
  ~MockKafkaCluster() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(host_);
  }
  MockKafkaCluster(const MockKafkaCluster&) = delete;
  MockKafkaCluster& operator=(const MockKafkaCluster&) = delete;

  // bootstrap.servers for a producer that should talk to this cluster.
  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  void SetBrokerDown() { rd_kafka_mock_broker_set_down(cluster_, kBrokerId); }
  void SetBrokerUp() { rd_kafka_mock_broker_set_up(cluster_, kBrokerId); }
  // The next ProduceRequest fails with `err`.
  void FailNextProduce(rd_kafka_resp_err_t err) {
    rd_kafka_mock_push_request_errors(cluster_, kProduceApiKey, 1, err);
  }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace zb::testing

#endif  // ZB_TESTS_FAKES_MOCK_KAFKA_CLUSTER_H_
