// Publisher: where an account hands its records, and what it may ask about the ones Kafka did
// not take; ProcessPublisher: what the publisher's owner may do besides. The daemon's is
// KafkaPublisher (librdkafka); the deterministic simulation (tests/sim/) has a model Kafka that
// acknowledges, reorders and refuses as a seed says.
//
// The contract, whoever implements it: a record given to Produce() with OK is owned by the
// publisher from then on and exactly one DeliveryReport with its token follows, through a
// channel the owner of the publisher sets up (KafkaPublisher: its on_delivery callback). A
// record whose report was not kDelivered stays held, untouched, until Reproduce() or Release().
// Records are kept in order per partition. Threads: the implementation's; an account calls on
// its loop thread.
#ifndef ZB_DAEMON_KAFKA_PUBLISHER_H_
#define ZB_DAEMON_KAFKA_PUBLISHER_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/base/status.h"

namespace zb {

// A record header: name and value bytes. The router (event_router.h) produces these.
using KafkaHeader = std::pair<std::string, std::string>;

// One record to produce. Everything is borrowed for the duration of Produce() only.
struct KafkaRecord {
  std::string_view topic;
  std::optional<std::string_view> key;  // nullopt: no key (round-robin/sticky partitioning)
  std::string_view value;
  std::span<const KafkaHeader> headers;
  int64_t timestamp_ms = 0;  // record timestamp (CreateTime): when the daemon received the event
  // Chosen by the caller and returned in the delivery report. Must be unique among the records
  // the publisher holds (produced and not yet settled).
  uint64_t token = 0;
};

// A record the publisher owned, handed back by Release().
struct OwnedKafkaRecord {
  std::string topic;
  std::optional<std::string> key;
  std::string value;
  std::vector<KafkaHeader> headers;
  int64_t timestamp_ms = 0;
  uint64_t token = 0;
};

// What happened to one record. See kafka_publisher.cc for the full table of librdkafka errors.
struct DeliveryReport {
  enum class Outcome {
    kDelivered,     // acknowledged by every in-sync replica; the record is freed
    kRetryable,     // not written, nothing wrong with the record: timed out in librdkafka,
                    // purged, broker down, producer fatal. Held: Reproduce() it later.
    kMissingTopic,  // the topic does not exist (auto-creation off): held; the owner holds the
                    // account and says so loudly, and Reproduce()s once the topic is there
    kPermanent,     // the broker will never take this record (too large, not authorised,
                    // invalid): held until Release()d into the dead-letter spool
  };
  uint64_t token = 0;
  Outcome outcome = Outcome::kDelivered;
  std::string error;  // "" when delivered, else "<librdkafka error name>: <text>"
  int32_t partition = -1;
  int64_t offset = -1;  // -1 when unknown
  std::string topic;    // set when not delivered: what the owner reports (a missing topic)
};

// A copy of `record`'s borrowed bytes.
inline OwnedKafkaRecord OwnedCopyOf(const KafkaRecord& record) {
  OwnedKafkaRecord owned;
  owned.topic.assign(record.topic);
  if (record.key) owned.key.emplace(*record.key);
  owned.value.assign(record.value);
  owned.headers.assign(record.headers.begin(), record.headers.end());
  owned.timestamp_ms = record.timestamp_ms;
  owned.token = record.token;
  return owned;
}

class Publisher {
 public:
  virtual ~Publisher() = default;

  // Copies `record` and queues it. OK: queued; exactly one DeliveryReport with its token will
  // follow. Unavailable("queue full"): no room now; nothing was kept: pause and produce it
  // again after the next deliveries. InvalidArgument: a record that will never be taken
  // (larger than message.max.bytes...). NotFound: the topic is known not to exist. Fatal: the
  // producer is dead. No report follows an error.
  virtual Status Produce(const KafkaRecord& record) = 0;
  // Queues again a held record after a failed delivery. Same errors as Produce(), except that
  // a topic known to be missing is Unavailable; on error the record stays held. NotFound only
  // if no failed record has this token.
  virtual Status Reproduce(uint64_t token) = 0;
  // Gives up a held failed record and returns its bytes (for the dead-letter spool). NotFound
  // if no failed record has this token.
  virtual StatusOr<OwnedKafkaRecord> Release(uint64_t token) = 0;
};

// The publisher as its owner (the daemon's AccountFleet and ProducerRebuilder) sees it: what an
// account may do, plus what retiring an account's tokens and replacing a dead producer need.
class ProcessPublisher : public Publisher {
 public:
  // The tokens of every record whose report the owner has not yet been handed: held (in
  // flight or failed) or delivered with the report on its way. A token not listed will never
  // be reported again, except one whose report the owner was already handed.
  virtual std::vector<uint64_t> UnsettledTokens() const = 0;
  // After a fatal error: replaces the producer and produces every record held (in flight or
  // failed) again, in the order first produced; reports from the old producer are dropped.
  // Records that were held as failed are in flight again: a new report follows for each, and
  // Reproduce/Release on them answer NotFound. An error: the old producer stays (dead); try
  // again later.
  virtual Status Rebuild() = 0;
  // How many times the producer was rebuilt.
  virtual uint64_t Generation() const = 0;
};

}  // namespace zb

#endif  // ZB_DAEMON_KAFKA_PUBLISHER_H_
