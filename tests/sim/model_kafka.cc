#include "tests/sim/model_kafka.h"

#include <algorithm>

namespace zb::sim {

ModelKafka::ModelKafka(SimRuntime& runtime, std::mt19937_64& rng, ModelKafkaOptions options)
    : runtime_(runtime), rng_(rng), options_(options) {}

Status ModelKafka::Produce(const KafkaRecord& record) {
  if (dead_) return Status::Fatal("produce to " + std::string(record.topic) + ": producer is dead");
  if (record.value.size() > options_.max_record_bytes) {
    return Status::InvalidArgument("MSG_SIZE_TOO_LARGE: Broker: Message size too large");
  }
  if (held_.size() >= options_.max_records) return Status::Unavailable("queue full");
  if (missing_known_ && record.topic == missing_topic_) {
    return Status::NotFound("UNKNOWN_TOPIC_OR_PART: topic " + missing_topic_ + " does not exist");
  }
  if (held_.count(record.token)) return Status::InvalidArgument("duplicate token");
  Held held;
  held.record.topic.assign(record.topic);
  if (record.key) held.record.key.emplace(*record.key);
  held.record.value.assign(record.value);
  held.record.headers.assign(record.headers.begin(), record.headers.end());
  held.record.timestamp_ms = record.timestamp_ms;
  held.record.token = record.token;
  held.seq = next_seq_++;
  held_.emplace(record.token, std::move(held));
  max_owned_seen_ = std::max(max_owned_seen_, held_.size());
  Send(record.token);
  return Status::Ok();
}

void ModelKafka::Send(uint64_t token) {
  Held& held = held_.at(token);
  held.in_flight = true;
  // The same key goes to the same partition, whose acknowledgements keep their order.
  int partition = static_cast<int>(std::hash<std::string>{}(held.record.key.value_or("")) %
                                   static_cast<size_t>(options_.partitions));
  if (!held.record.key) partition = static_cast<int>(rng_() % options_.partitions);
  std::uniform_int_distribution<int64_t> delay(options_.min_ack.count(), options_.max_ack.count());
  Clock::TimePoint at = runtime_.Now() + Clock::Duration(delay(rng_));
  if (down_) at = runtime_.Now() + options_.message_timeout;
  at = std::max(at, partition_last_[partition]);
  partition_last_[partition] = at;
  held.timer = runtime_.AddTimerAt(at, [this, token] { Report(token); });
}

void ModelKafka::Report(uint64_t token) {
  auto it = held_.find(token);
  if (it == held_.end()) return;
  Held& held = it->second;
  held.timer = 0;
  held.in_flight = false;
  DeliveryReport report;
  report.token = token;
  std::uniform_real_distribution<double> chance(0, 1);
  if (dead_) {
    report.outcome = DeliveryReport::Outcome::kRetryable;
    report.error = "_FATAL: Local: Fatal error: producer is dead";
  } else if (down_) {
    report.outcome = DeliveryReport::Outcome::kRetryable;
    report.error = "_MSG_TIMED_OUT: Local: Message timed out";
  } else if (!missing_topic_.empty() && held.record.topic == missing_topic_) {
    report.outcome = DeliveryReport::Outcome::kMissingTopic;
    report.error = "UNKNOWN_TOPIC_OR_PART: Broker: Unknown topic or partition";
    missing_known_ = true;
  } else if (chance(rng_) < retryable_rate_) {
    report.outcome = DeliveryReport::Outcome::kRetryable;
    report.error = "NOT_ENOUGH_REPLICAS: Broker: Not enough in-sync replicas";
  } else if (chance(rng_) < permanent_rate_) {
    report.outcome = DeliveryReport::Outcome::kPermanent;
    report.error = "TOPIC_AUTHORIZATION_FAILED: Broker: Topic authorization failed";
  } else {
    report.outcome = DeliveryReport::Outcome::kDelivered;
    Append(held.record);
    held_.erase(it);
  }
  if (report.outcome != DeliveryReport::Outcome::kDelivered) {
    report.topic = held.record.topic;
  }
  if (sink_) sink_(report);
}

void ModelKafka::Append(const OwnedKafkaRecord& record) {
  ++log_size_;
  if (on_log_) on_log_(record);
}

Status ModelKafka::Reproduce(uint64_t token) {
  auto it = held_.find(token);
  if (it == held_.end() || it->second.in_flight) return Status::NotFound("no failed record");
  if (dead_) return Status::Fatal("producer is dead");
  if (missing_known_ && it->second.record.topic == missing_topic_) {
    return Status::Unavailable("topic " + missing_topic_ + " does not exist");
  }
  Send(token);
  return Status::Ok();
}

StatusOr<OwnedKafkaRecord> ModelKafka::Release(uint64_t token) {
  auto it = held_.find(token);
  if (it == held_.end() || it->second.in_flight) return Status::NotFound("no failed record");
  OwnedKafkaRecord record = std::move(it->second.record);
  held_.erase(it);
  return record;
}

void ModelKafka::Crash() {
  for (auto& [token, held] : held_) {
    runtime_.CancelTimer(held.timer);
    if (held.in_flight && std::bernoulli_distribution(0.5)(rng_)) Append(held.record);
  }
  held_.clear();
  dead_ = false;
  failing_rebuilds_ = 0;
}

void ModelKafka::KillProducer() {
  if (dead_) return;
  dead_ = true;
  // Records in flight fail as their reports come due (Report); the owner learns at once.
  if (on_fatal_) on_fatal_();
}

std::vector<uint64_t> ModelKafka::UnsettledTokens() const {
  std::vector<uint64_t> tokens;
  tokens.reserve(held_.size());
  for (const auto& [token, held] : held_) tokens.push_back(token);
  return tokens;
}

Status ModelKafka::Rebuild() {
  if (failing_rebuilds_ > 0) {
    --failing_rebuilds_;
    return Status::InvalidArgument("kafka producer: refused (model: no threads left)");
  }
  dead_ = false;
  ++generation_;
  // Every record held, in flight or failed, is produced again in its first order; the old
  // producer's reports are dropped.
  std::vector<std::pair<uint64_t, uint64_t>> order;  // seq, token
  for (auto& [token, held] : held_) {
    runtime_.CancelTimer(held.timer);
    held.timer = 0;
    order.emplace_back(held.seq, token);
  }
  std::sort(order.begin(), order.end());
  for (const auto& [seq, token] : order) Send(token);
  return Status::Ok();
}

}  // namespace zb::sim
