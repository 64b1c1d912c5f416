#include "daemon/kafka/kafka_statistics.h"

#include <rapidjson/document.h>

#include <algorithm>

namespace zb {
namespace {

// Reads an integer member if present. False when it is present with another type.
bool ReadInt(const rapidjson::Value& object, const char* name, int64_t* out) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd()) return true;
  if (!it->value.IsInt64()) return false;
  *out = it->value.GetInt64();
  return true;
}

bool ReadCounter(const rapidjson::Value& object, const char* name, uint64_t* out) {
  int64_t value = 0;
  if (!ReadInt(object, name, &value)) return false;
  *out = value > 0 ? static_cast<uint64_t>(value) : 0;
  return true;
}

bool ReadString(const rapidjson::Value& object, const char* name, std::string* out) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd()) return true;
  if (!it->value.IsString()) return false;
  out->assign(it->value.GetString(), it->value.GetStringLength());
  return true;
}

Status ParseBroker(const std::string& key, const rapidjson::Value& b, KafkaBrokerStatistics* out) {
  auto bad = [&](const char* field) {
    return Status::Corruption("kafka statistics: brokers[" + key + "]." + field +
                              " has the wrong type");
  };
  if (!b.IsObject()) {
    return Status::Corruption("kafka statistics: brokers[" + key + "] not an object");
  }
  out->name = key;
  if (!ReadString(b, "name", &out->name)) return bad("name");
  if (!ReadInt(b, "nodeid", &out->node_id)) return bad("nodeid");
  if (!ReadString(b, "source", &out->source)) return bad("source");
  if (!ReadString(b, "state", &out->state)) return bad("state");
  if (!ReadCounter(b, "txretries", &out->tx_retries)) return bad("txretries");
  if (!ReadCounter(b, "txerrs", &out->tx_errors)) return bad("txerrs");
  if (auto rtt = b.FindMember("rtt"); rtt != b.MemberEnd()) {
    if (!rtt->value.IsObject()) return bad("rtt");
    int64_t avg_us = 0;
    if (!ReadInt(rtt->value, "avg", &avg_us)) return bad("rtt.avg");
    if (!ReadInt(rtt->value, "cnt", &out->rtt_samples)) return bad("rtt.cnt");
    out->rtt_avg_seconds = static_cast<double>(avg_us) / 1e6;  // microseconds
  }
  return Status::Ok();
}

}  // namespace

int KafkaStatistics::BrokersUp() const {
  return static_cast<int>(std::count_if(brokers.begin(), brokers.end(), [](const auto& b) {
    return b.IsClusterBroker() && b.state == "UP";
  }));
}

StatusOr<KafkaStatistics> ParseKafkaStatistics(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return Status::Corruption("kafka statistics: not a JSON object");
  }
  KafkaStatistics stats;
  if (!ReadString(doc, "name", &stats.handle_name) ||
      !ReadInt(doc, "msg_cnt", &stats.queue_messages) ||
      !ReadInt(doc, "msg_size", &stats.queue_bytes)) {
    return Status::Corruption("kafka statistics: name, msg_cnt or msg_size has the wrong type");
  }
  if (auto brokers = doc.FindMember("brokers"); brokers != doc.MemberEnd()) {
    if (!brokers->value.IsObject()) {
      return Status::Corruption("kafka statistics: brokers is not an object");
    }
    for (const auto& member : brokers->value.GetObject()) {
      KafkaBrokerStatistics broker;
      ZB_RETURN_IF_ERROR(ParseBroker(member.name.GetString(), member.value, &broker));
      stats.brokers.push_back(std::move(broker));
    }
  }
  return stats;
}

KafkaStatisticsMetrics::KafkaStatisticsMetrics(MetricsRegistry& registry)
    : registry_(registry),
      queue_messages_(registry.GetGauge(
          "zb_kafka_producer_queue_messages",
          "Records in the Kafka producer's queues, not yet acknowledged (librdkafka msg_cnt)")),
      queue_bytes_(registry.GetGauge("zb_kafka_producer_queue_bytes",
                                     "Bytes of the records in the Kafka producer's queues "
                                     "(librdkafka msg_size)")),
      brokers_up_(registry.GetGauge(
          "zb_kafka_brokers_up", "Kafka cluster brokers the producer is connected to (state UP)")),
      tx_retries_(registry.GetCounter("zb_kafka_tx_retries_total",
                                      "Requests the Kafka producer sent again (librdkafka "
                                      "txretries, summed over brokers)")),
      tx_errors_(registry.GetCounter("zb_kafka_tx_errors_total",
                                     "Kafka producer transmission errors (librdkafka txerrs, "
                                     "summed over brokers)")) {}

void KafkaStatisticsMetrics::Update(const KafkaStatistics& stats) {
  MutexLock lock(&mu_);
  queue_messages_.Set(static_cast<double>(stats.queue_messages));
  queue_bytes_.Set(static_cast<double>(stats.queue_bytes));
  brokers_up_.Set(stats.BrokersUp());

  // librdkafka's counters are per broker handle and start again from zero in a rebuilt
  // producer: count what each grew by since its last report (a restarted one from zero).
  std::map<std::pair<std::string, std::string>, std::pair<uint64_t, uint64_t>> seen;
  std::set<std::string> rtt_brokers;
  for (const KafkaBrokerStatistics& b : stats.brokers) {
    auto key = std::make_pair(stats.handle_name, b.name);
    uint64_t last_retries = 0, last_errors = 0;
    if (auto it = last_tx_.find(key); it != last_tx_.end()) {
      std::tie(last_retries, last_errors) = it->second;
    }
    tx_retries_.Inc(b.tx_retries >= last_retries ? b.tx_retries - last_retries : b.tx_retries);
    tx_errors_.Inc(b.tx_errors >= last_errors ? b.tx_errors - last_errors : b.tx_errors);
    seen[key] = {b.tx_retries, b.tx_errors};

    if (!b.IsClusterBroker()) continue;
    rtt_brokers.insert(b.name);
    if (b.rtt_samples > 0) {
      registry_
          .GetGauge("zb_kafka_broker_rtt_seconds",
                    "Average round-trip time of the Kafka producer's requests to the broker over "
                    "librdkafka's last window",
                    {{"broker", b.name}})
          .Set(b.rtt_avg_seconds);
    }
  }
  for (const std::string& gone : rtt_brokers_) {
    if (!rtt_brokers.count(gone)) registry_.RemoveSeriesWithLabel("broker", gone);
  }
  last_tx_.swap(seen);
  rtt_brokers_.swap(rtt_brokers);
}

Status KafkaStatisticsMetrics::Update(std::string_view json) {
  StatusOr<KafkaStatistics> stats = ParseKafkaStatistics(json);
  ZB_RETURN_IF_ERROR(stats.status());
  Update(*stats);
  return Status::Ok();
}

}  // namespace zb
