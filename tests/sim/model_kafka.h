// ModelKafka: the simulation's Kafka, a Publisher that does what librdkafka and a broker can do
// to an account, as the seed says: acknowledge records after a delay, in order within a
// partition and in any order across partitions; time records out during an outage; fail a
// record now and then (retryable, or for good); refuse at once a record larger than the limit,
// or any record while the records it owns (in flight or held failed) reach the limit; and, at a
// crash of the bridge, land some records in flight without a report and lose the others. Its
// producer can also die (a fatal error, as librdkafka 2.0.2's idempotent producer can after an
// outage): records in flight are reported retryable, every produce answers Fatal, and nothing
// moves until the owner's Rebuild() works (the seed can make some rebuilds fail first).
//
// What Kafka holds (the acknowledged records, and those that landed at a crash) is the log the
// oracle reads. Threads: one (the simulation's).
#ifndef ZB_TESTS_SIM_MODEL_KAFKA_H_
#define ZB_TESTS_SIM_MODEL_KAFKA_H_

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "daemon/kafka/publisher.h"
#include "tests/sim/sim_runtime.h"

namespace zb::sim {

struct ModelKafkaOptions {
  int partitions = 4;
  size_t max_records = 50;         // queue.buffering.max.messages, held failed records included
  size_t max_record_bytes = 4096;  // message.max.bytes: larger records are refused at once
  Clock::Duration min_ack{std::chrono::milliseconds(1)};
  Clock::Duration max_ack{std::chrono::milliseconds(800)};
  Clock::Duration message_timeout{std::chrono::seconds(30)};  // in an outage: kRetryable
};

class ModelKafka final : public ProcessPublisher {
 public:
  ModelKafka(SimRuntime& runtime, std::mt19937_64& rng, ModelKafkaOptions options);

  // Where reports go (the account's OnDelivery, through the world). Set before producing.
  void set_sink(std::function<void(const DeliveryReport&)> sink) { sink_ = std::move(sink); }
  // Called for every record that reaches the log.
  void set_on_log(std::function<void(const OwnedKafkaRecord&)> on_log) {
    on_log_ = std::move(on_log);
  }
  // Probabilities that a delivery fails retryably or for good.
  void set_fault_rates(double retryable, double permanent) {
    retryable_rate_ = retryable;
    permanent_rate_ = permanent;
  }
  // While down, nothing is acknowledged: records time out (kRetryable) after message_timeout.
  void set_down(bool down) { down_ = down; }
  // While set, `topic` does not exist (auto-creation off): its records are reported
  // kMissingTopic, then refused at once (NotFound from Produce, Unavailable from Reproduce) as
  // librdkafka does once it knows; "" for none.
  void set_missing_topic(std::string topic) {
    missing_topic_ = std::move(topic);
    missing_known_ = false;
  }
  // The bridge died: each record in flight lands in the log or is lost, with no report; held
  // failed records are gone with the process (the next one has a new producer).
  void Crash();
  // The producer dies of a fatal error; `on_fatal` is called once (the owner rebuilds it).
  void KillProducer();
  void set_on_fatal(std::function<void()> on_fatal) { on_fatal_ = std::move(on_fatal); }
  // The next `count` Rebuild() calls fail, as when librdkafka refuses to build the new producer.
  void FailNextRebuilds(int count) { failing_rebuilds_ = count; }
  bool dead() const { return dead_; }

  Status Produce(const KafkaRecord& record) override;
  Status Reproduce(uint64_t token) override;
  StatusOr<OwnedKafkaRecord> Release(uint64_t token) override;
  std::vector<uint64_t> UnsettledTokens() const override;
  Status Rebuild() override;
  uint64_t Generation() const override { return generation_; }

  size_t owned() const { return held_.size(); }
  size_t max_owned_seen() const { return max_owned_seen_; }
  uint64_t log_size() const { return log_size_; }

 private:
  struct Held {
    OwnedKafkaRecord record;
    bool in_flight = false;
    Scheduler::TimerId timer = 0;
    uint64_t seq = 0;  // production order, for Rebuild
  };
  void Send(uint64_t token);
  void Report(uint64_t token);
  void Append(const OwnedKafkaRecord& record);

  SimRuntime& runtime_;
  std::mt19937_64& rng_;
  const ModelKafkaOptions options_;
  std::function<void(const DeliveryReport&)> sink_;
  std::function<void(const OwnedKafkaRecord&)> on_log_;
  double retryable_rate_ = 0;
  double permanent_rate_ = 0;
  bool down_ = false;
  std::string missing_topic_;
  bool missing_known_ = false;     // a report said so: later produces are refused at once
  std::map<uint64_t, Held> held_;  // by token: every record produced and not yet settled
  std::map<int, Clock::TimePoint> partition_last_;
  size_t max_owned_seen_ = 0;
  uint64_t log_size_ = 0;
  uint64_t next_seq_ = 0;
  bool dead_ = false;
  int failing_rebuilds_ = 0;
  uint64_t generation_ = 0;
  std::function<void()> on_fatal_;
};

}  // namespace zb::sim

#endif  // ZB_TESTS_SIM_MODEL_KAFKA_H_
