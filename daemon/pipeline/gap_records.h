// GapRecords: the gap records of one account that Kafka has not acknowledged yet (DESIGN.md
// "Gaps"). A gap record is how consumers learn that events were lost, so it is kept like an
// event: written into the account's checkpoint with the new queue (Durable()), produced once
// that is durable (ProduceAll), produced again at every start (Restore) and after every refusal
// (a retry timer, or the re-produce path for a failed delivery), and forgotten only when Kafka
// acknowledged it or the dead-letter spool holds it (OnSettled), with the next checkpoint.
//
// Threads: the owner's (the account's event loop). Not copyable. Its timer dies with it.
#ifndef ZB_DAEMON_PIPELINE_GAP_RECORDS_H_
#define ZB_DAEMON_PIPELINE_GAP_RECORDS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "daemon/base/clock.h"
#include "daemon/base/scheduler.h"
#include "daemon/kafka/publisher.h"
#include "daemon/pipeline/refused_records.h"

namespace zb {

class GapRecords {
 public:
  // What the owner lends. Every reference outlives this object.
  struct Env {
    Scheduler& loop;
    Publisher& publisher;
    RefusedRecords& refused;  // where one Kafka will never take goes
    Clock& clock;
    std::string account;
    std::string site;
    std::string control_topic;
    std::string bridge_version;
    // A token for a new record (unique among the account's records in the publisher).
    std::function<uint64_t()> next_token;
    // `token`'s record was handed to the publisher: the owner routes its report back here.
    std::function<void(uint64_t token, int64_t timestamp_ms)> produced;
  };

  explicit GapRecords(Env env);
  ~GapRecords();
  GapRecords(const GapRecords&) = delete;
  GapRecords& operator=(const GapRecords&) = delete;

  // Records from a checkpoint (none in flight).
  void Restore(const std::vector<std::string>& records);
  // A new gap record (control-topic JSON); not produced until ProduceAll().
  void Add(std::string json);
  // Produces every record not in flight; what the publisher refuses now is tried again after a
  // pause. Stop() ends the retries (what is left stays in the checkpoint).
  void ProduceAll();
  void Stop();
  // `token`'s record is in Kafka or in the spool. False if it is not a gap record.
  bool OnSettled(uint64_t token);

  // What the next checkpoint keeps.
  std::vector<std::string> Durable() const;
  // A record was settled since the last MarkStaged(): the checkpoint on disk still has it.
  bool changed_since_staged() const { return changed_; }
  void MarkStaged() { changed_ = false; }

 private:
  struct Pending {
    std::string json;
    uint64_t token = 0;  // 0: not in flight
  };

  Env env_;
  std::vector<KafkaHeader> headers_;  // the same for every gap record (record_headers.h)
  std::vector<Pending> pending_;
  bool changed_ = false;
  bool stopped_ = false;
  Scheduler::TimerId retry_timer_ = 0;
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_GAP_RECORDS_H_
