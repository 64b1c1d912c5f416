// The process's one Kafka producer: an idempotent librdkafka producer (acks=all, so records keep
// their order per partition and a retry never writes a duplicate), its poll thread, and the
// records it has been given and not yet settled. This is the only part of zulip-bridge that
// knows librdkafka; the rest sees records in, delivery reports out.
//
// Threads. Produce(), Reproduce(), Release(), Rebuild(), Flush() and the counters may be called
// from any thread (in the daemon: the event loop). Delivery reports, errors and statistics are
// handed to the owner's callbacks only on the publisher's own poll thread (the one thread that
// calls rd_kafka_poll); the owner moves them into its event loop's queue and wakes the loop up.
// The callbacks must not call back into the publisher's Flush(), Rebuild() or destructor (they
// join the poll thread); Produce/Reproduce/Release are fine.
//
// Record ownership and issue 7. Produce() copies the record into storage the publisher owns
// (the caller's bytes are a transient slice of an HTTP response) and librdkafka reads the value
// from there without copying it again. A record stays with the publisher until it is settled:
//   - delivered: freed when the report is made;
//   - failed (kRetryable, kMissingTopic, kPermanent): held, untouched, until the owner either
//     calls Reproduce(token) (a timed-out record goes back to librdkafka, same bytes, same
//     timestamp) or Release(token), which hands the bytes back (for the dead-letter spool).
// Memory. Everything the publisher owns (in librdkafka's queue, and held after a failure)
// counts against the effective queue.buffering.max.messages and queue.buffering.max.kbytes
// (values and keys): Produce() answers "queue full" once they are reached, whether librdkafka's
// queue or the held failed records fill them. So however long an outage lasts, records that
// time out do not make room for more; memory is set by configuration. Reproduce() of a held
// record adds nothing and is never refused for room; its delivery (or a Release) frees it.
//
// Because every unsettled record is held here, a fatal idempotence error (librdkafka 2.0.2 can
// raise one after a broker outage; it arrives as an ErrorReport with fatal=true) is recovered by
// Rebuild(): purge and destroy the dead producer, build a new one from the same configuration,
// and produce every record it held again, in their original order. Callers keep their tokens;
// nothing they hold changes. Duplicates in Kafka are possible (at-least-once), never losses.
#ifndef ZB_DAEMON_KAFKA_KAFKA_PUBLISHER_H_
#define ZB_DAEMON_KAFKA_KAFKA_PUBLISHER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/kafka/publisher.h"

namespace zb {

// An error librdkafka reported outside a delivery report (a broker down, all brokers down,
// authentication...). Most are informational: librdkafka recovers by itself. fatal=true means
// the producer is dead (ERR__FATAL; `error` names the underlying cause): call Rebuild().
struct KafkaErrorReport {
  bool fatal = false;
  std::string error;  // "<librdkafka error name>: <text>"
};

struct KafkaPublisherOptions {
  // bootstrap.servers; overrides a bootstrap.servers in `properties` when not empty.
  std::string brokers;
  // librdkafka properties, passed as-is (kafka.properties in the config). Unset safe defaults
  // are filled in (see kDefaultProperties in the .cc): linger.ms=5, message.timeout.ms=300000,
  // queue.buffering.max.messages=20000, queue.buffering.max.kbytes=65536.
  // enable.idempotence=true and acks=all are forced: any other value is InvalidArgument.
  std::map<std::string, std::string> properties;

  // Called on the poll thread with the reports of one rd_kafka_poll() call (never empty).
  // Required.
  std::function<void(std::vector<DeliveryReport>)> on_delivery;
  // Called on the poll thread. Optional.
  std::function<void(const KafkaErrorReport&)> on_error;
  // Called on the poll thread with librdkafka's statistics JSON, when `properties` sets
  // statistics.interval.ms. Optional.
  std::function<void(std::string_view json)> on_statistics;
  // How long the poll thread blocks in rd_kafka_poll per turn; also bounds how late a stop is
  // noticed.
  std::chrono::milliseconds poll_interval{100};
};

class KafkaPublisher final : public ProcessPublisher {
 public:
  // Builds the producer and starts its poll thread. InvalidArgument for a bad property (its
  // name and librdkafka's words), an unsafe override of acks or enable.idempotence, or a
  // missing on_delivery. Does not wait for brokers: they may be down at boot.
  static StatusOr<std::unique_ptr<KafkaPublisher>> Create(KafkaPublisherOptions options);

  // For --check-config, without building a producer: the same InvalidArgument as Create for an
  // unsafe override or a property librdkafka rejects (name or value); OK otherwise.
  static Status CheckProperties(const std::map<std::string, std::string>& properties);
  // The properties the producer is built with: the defaults, then `options.properties`, then
  // bootstrap.servers and the forced enable.idempotence=true and acks=all. Values are as given
  // (secrets included): redact before printing.
  static std::map<std::string, std::string> EffectiveProperties(
      const KafkaPublisherOptions& options);

  // Stops the poll thread and destroys the producer without waiting: records not yet delivered
  // are abandoned (no report). Call Flush() first for a clean shutdown.
  ~KafkaPublisher();
  KafkaPublisher(const KafkaPublisher&) = delete;
  KafkaPublisher& operator=(const KafkaPublisher&) = delete;

  // Copies `record` and queues it. OK: queued; exactly one DeliveryReport with its token will
  // follow. Unavailable("queue full"): the records the publisher owns (queued in librdkafka and
  // held failed, see "Memory" above) or librdkafka's own queue are at the limit; nothing was
  // kept: pause and produce it again after the next deliveries (or a timer: room also comes
  // back when held records are reproduced and delivered, or released). InvalidArgument: a record
  // the producer refuses at once (larger than message.max.bytes, a duplicate token, any other
  // immediate refusal: Unavailable never means anything but a full queue). NotFound: the topic is
  // known not to exist. Fatal: the producer is dead (Rebuild()). No report follows an error.
  Status Produce(const KafkaRecord& record) override;

  // Queues again a held record after a failed delivery. It already counts against the limits,
  // so the publisher's own limit never refuses it (librdkafka's queue can still be full for a
  // moment: Unavailable). Same errors as Produce(), except that
  // a topic known to be missing is Unavailable (try again later, like a full queue); on error
  // the record stays held. NotFound only if no failed record has this token (settled, released,
  // or in flight again after a Rebuild).
  Status Reproduce(uint64_t token) override;
  // Gives up a held failed record and returns it (for the dead-letter spool). NotFound if no
  // failed record has this token.
  StatusOr<OwnedKafkaRecord> Release(uint64_t token) override;

  // After a fatal error: replaces the producer with a new one built from the same options and
  // produces every record the publisher holds (in flight or failed) again, in the order they
  // were first produced. Reports from the old producer are dropped. OK when every record is
  // queued again; otherwise the error of the first that was not (the rest stay held as failed
  // and a kRetryable report is made for each). Records that were held as failed are in flight
  // again: a new report follows for each, and Reproduce/Release on them answer NotFound.
  // Not from a callback, and by one thread at a time.
  Status Rebuild() override;

  // Waits until no record is in librdkafka's hands (all reported) or `timeout` passes. OK, or
  // Unavailable naming how many are still in flight. Not from a callback.
  Status Flush(std::chrono::milliseconds timeout);

  // Records produced and not yet reported.
  size_t InFlight() const;
  // Records reported as failed and neither reproduced nor released.
  size_t HeldFailed() const;
  // Every record the publisher owns: queued in librdkafka, or held failed (what the limits
  // count).
  size_t Held() const;
  // The tokens of every record whose report the owner has not yet been handed: held (in
  // librdkafka or failed) or delivered with the report on its way. A token not listed will
  // never be reported again, except one whose report the owner was already handed. For an
  // owner that retires tokens (the supervisor's account slots).
  std::vector<uint64_t> UnsettledTokens() const override;
  // Errors reported through on_error since Create, fatal ones included.
  uint64_t ErrorCount() const;
  // How many times the producer was rebuilt.
  uint64_t Generation() const override;

  // Raises a fatal error in librdkafka as if the broker had caused one (rd_kafka_test_fatal_error).
  Status TriggerFatalErrorForTest(std::string_view reason);
  // The next `count` Rebuild() calls fail as if librdkafka refused to build the new producer
  // (InvalidArgument, the old producer kept), for tests of what retries a rebuild.
  void FailNextRebuildsForTest(int count);

 private:
  struct Impl;
  explicit KafkaPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zb

#endif  // ZB_DAEMON_KAFKA_KAFKA_PUBLISHER_H_
