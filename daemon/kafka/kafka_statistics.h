// librdkafka's statistics (the JSON its stats callback hands over every statistics.interval.ms,
// fields as in librdkafka's STATISTICS.md), reduced to the few figures /metrics shows: the
// producer's queue, the brokers that are up, their round-trip times, and request retries and
// errors.
//
// ParseKafkaStatistics() is a pure function. KafkaStatisticsMetrics turns parsed statistics into
// series of a MetricsRegistry; it is called on the publisher's poll thread and guards its own
// state, so any thread may call it.
#ifndef ZB_DAEMON_KAFKA_KAFKA_STATISTICS_H_
#define ZB_DAEMON_KAFKA_KAFKA_STATISTICS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/base/metrics.h"
#include "daemon/base/mutex.h"
#include "daemon/base/status.h"

namespace zb {

// statistics.interval.ms when kafka.properties does not set it. Statistics cost librdkafka a
// JSON document per interval; every 15 s is finer than a usual scrape interval and costs
// nothing. An explicit 0 turns them off.
inline constexpr const char* kDefaultKafkaStatisticsIntervalMs = "15000";

// One entry of "brokers".
struct KafkaBrokerStatistics {
  std::string name;      // "host:port/nodeid", or ".../bootstrap" for a configured address
  int64_t node_id = -1;  // -1 for bootstrap and internal brokers
  std::string source;    // learned, configured, internal, logical
  std::string state;     // INIT, DOWN, CONNECT, AUTH, APIVERSION_QUERY, AUTH_HANDSHAKE, UP, UPDATE
  // rtt.avg over librdkafka's rolling window, in seconds; rtt_samples is its cnt (0: no
  // request answered in the window, and the average means nothing).
  double rtt_avg_seconds = 0;
  int64_t rtt_samples = 0;
  uint64_t tx_retries = 0;  // txretries: requests sent again (counter since the handle started)
  uint64_t tx_errors = 0;   // txerrs: transmission errors (counter)

  // A broker of the cluster (learned from metadata), not a bootstrap address or librdkafka's
  // internal pseudo-broker.
  bool IsClusterBroker() const { return node_id >= 0; }
};

struct KafkaStatistics {
  std::string handle_name;     // "rdkafka#producer-1": a rebuilt producer has a new one
  int64_t queue_messages = 0;  // msg_cnt: records in the producer's queues (not yet acked)
  int64_t queue_bytes = 0;     // msg_size: their total size
  std::vector<KafkaBrokerStatistics> brokers;

  // Cluster brokers in state UP.
  int BrokersUp() const;
};

// Parses librdkafka's statistics JSON. Corruption when it is not a JSON object or a field read
// here has the wrong type; fields that are absent keep their defaults (librdkafka adds fields
// over versions and leaves some out, e.g. rtt before the first request).
StatusOr<KafkaStatistics> ParseKafkaStatistics(std::string_view json);

// Publishes statistics as:
//   zb_kafka_producer_queue_messages, zb_kafka_producer_queue_bytes  (gauges)
//   zb_kafka_brokers_up                                            (gauge)
//   zb_kafka_broker_rtt_seconds{broker}   (gauge per cluster broker; a broker that left the
//                                          cluster loses its series)
//   zb_kafka_tx_retries_total, zb_kafka_tx_errors_total  (counters: the sums over brokers,
//        kept monotonic across brokers going away and producer rebuilds, which restart
//        librdkafka's own counters)
class KafkaStatisticsMetrics {
 public:
  explicit KafkaStatisticsMetrics(MetricsRegistry& registry);
  KafkaStatisticsMetrics(const KafkaStatisticsMetrics&) = delete;
  KafkaStatisticsMetrics& operator=(const KafkaStatisticsMetrics&) = delete;

  void Update(const KafkaStatistics& stats);
  // Parses `json` and updates; on a parse error nothing changes and the error is returned.
  Status Update(std::string_view json);

 private:
  MetricsRegistry& registry_;
  Gauge& queue_messages_;
  Gauge& queue_bytes_;
  Gauge& brokers_up_;
  Counter& tx_retries_;
  Counter& tx_errors_;

  Mutex mu_;
  // (handle name, broker name) -> last txretries / txerrs seen, to turn them into increments.
  std::map<std::pair<std::string, std::string>, std::pair<uint64_t, uint64_t>> last_tx_
      ZB_GUARDED_BY(mu_);
  // Brokers with a zb_kafka_broker_rtt_seconds series.
  std::set<std::string> rtt_brokers_ ZB_GUARDED_BY(mu_);
};

}  // namespace zb

#endif  // ZB_DAEMON_KAFKA_KAFKA_STATISTICS_H_
