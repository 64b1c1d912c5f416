// RefusedRecords: what one account does with the records Kafka did not take (#7), in one place.
//
//   - Retryable (timed out in librdkafka, broker down, not enough replicas) or a missing topic:
//     the publisher holds the record; it is produced again after a pause, same bytes, until
//     Kafka takes it. Meanwhile the account cannot acknowledge past it, so the Zulip queue
//     buffers.
//   - A missing topic (auto-creation off) also holds the account loudly: an error line naming the
//     topic at most once a minute, zb_kafka_missing_topic{account,topic} at 1 while any record
//     waits on it (or a produce was refused at once), counted in zb_kafka_missing_topic_total;
//     it goes on by itself once the topic exists.
//   - Never to be taken (too large, not authorised, invalid): released from the publisher and
//     appended to the dead-letter spool; once the append is durable the owner is told the record
//     is settled. If the spool refuses (full, I/O error) the record waits, the append is retried
//     every 10 s with an error line, and the account holds meanwhile.
//
// It settles nothing itself: it tells its owner through `settle`. Threads: the owner's (the
// event loop's). Not copyable. Its timers die with it.
#ifndef ZB_DAEMON_PIPELINE_REFUSED_RECORDS_H_
#define ZB_DAEMON_PIPELINE_REFUSED_RECORDS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/base/clock.h"
#include "daemon/base/scheduler.h"
#include "daemon/kafka/publisher.h"
#include "daemon/pipeline/account_metrics.h"
#include "daemon/state/dead_letter_spool.h"

namespace zb {

class RefusedRecords {
 public:
  // What the owner lends. Every reference outlives this object.
  struct Env {
    Scheduler& loop;
    Publisher& publisher;
    DeadLetterSpool& dead_letters;
    AccountMetrics& metrics;
    Clock& clock;
    std::string account;
    // `token`'s record is settled: durably in the spool.
    std::function<void(uint64_t token)> settle;
    // What went wrong last, for the account's status.
    std::function<void(const std::string& error)> note_error;
  };

  explicit RefusedRecords(Env env);
  ~RefusedRecords();
  RefusedRecords(const RefusedRecords&) = delete;
  RefusedRecords& operator=(const RefusedRecords&) = delete;

  // A delivery report other than kDelivered, for a record made from event `event_id` (-1 for a
  // backfilled or control record).
  void OnFailed(const DeliveryReport& report, int64_t event_id);
  // Kafka took `token`'s record: it no longer holds its topic.
  void OnDelivered(uint64_t token);
  // The producer refused `token`'s record at once and for good (InvalidArgument): to the spool,
  // and `settle(token)` once it is durable there (possibly before this returns).
  void DeadLetter(uint64_t token, int64_t event_id, OwnedKafkaRecord record, std::string error);
  // The same for a record never handed to the publisher and not waited for (a live event): the
  // spool's answer, now; nothing is retried.
  Status SpoolNow(int64_t event_id, OwnedKafkaRecord record, std::string error);
  // The producer refused a record at once because `topic` does not exist (Produce: NotFound).
  void NoteMissingTopic(const std::string& topic, int64_t event_id, const std::string& error);
  // The producer took a record for `topic` again.
  void TopicTookARecord(std::string_view topic);

 private:
  struct Letter {
    uint64_t token;
    zb::DeadLetter letter;
  };
  void ReproduceHeld();
  void SpoolOrHold(Letter pending);
  void RetrySpool();
  zb::DeadLetter MakeDeadLetter(int64_t event_id, OwnedKafkaRecord record, std::string error) const;
  // `token` is settled or dead-lettered: it no longer holds its topic.
  void ForgetMissingTopicToken(uint64_t token);
  void MissingTopicCleared(const std::string& topic);

  Env env_;
  // Failed records waiting for the re-produce timer, and the event each came from.
  std::vector<uint64_t> to_reproduce_;
  std::unordered_map<uint64_t, int64_t> event_ids_;
  Scheduler::TimerId reproduce_timer_ = 0;
  // Records waiting for the dead-letter spool to take them (it was full or failed).
  std::vector<Letter> to_spool_;
  Scheduler::TimerId spool_timer_ = 0;
  // Missing topics: records held per topic (0: a topic refused at once, no record held).
  std::map<std::string, size_t, std::less<>> missing_topics_;
  std::unordered_map<uint64_t, std::string> missing_topic_tokens_;
  std::optional<Clock::TimePoint> missing_topic_logged_at_;
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_REFUSED_RECORDS_H_
