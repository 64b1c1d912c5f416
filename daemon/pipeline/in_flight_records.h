// InFlightRecords: the records one account handed to the publisher and not yet settled, by the
// token each carries, and the tokens themselves. A token is the account's slot in the top 16
// bits and a per-account sequence below, so that one producer can serve every account of the
// process and a delivery report finds its account by the slot alone (Supervisor).
//
// Threads: the owner's (the account's event loop). Copyable only by accident: don't.
#ifndef ZB_DAEMON_PIPELINE_IN_FLIGHT_RECORDS_H_
#define ZB_DAEMON_PIPELINE_IN_FLIGHT_RECORDS_H_

#include <cstdint>
#include <optional>
#include <unordered_map>

#include "daemon/pipeline/account_metrics.h"

namespace zb {

enum class RecordKind {
  kLive,        // an event of the account's queue: settles its id in the watermark
  kBackfilled,  // a message read back after a gap: settles its backfill batch
  kControl,     // a gap record for the control topic
};

struct InFlightRecord {
  uint64_t generation = 0;  // which queue the event came from (a lost queue's ids don't settle)
  int64_t event_id = -1;    // -1 for backfilled and control records
  std::optional<int64_t> message_id;  // a `message` event or a backfilled message
  RecordKind kind = RecordKind::kLive;
  int64_t timestamp_ms = 0;  // the record's timestamp: when the daemon received the event
  const AccountTypeSeries* type_series = nullptr;  // live events: counted as published by type
};

class InFlightRecords {
 public:
  explicit InFlightRecords(uint16_t slot) : slot_(slot) {}

  // The slot a token was made for.
  static uint16_t SlotOfToken(uint64_t token) { return static_cast<uint16_t>(token >> 48); }

  // A token no record of this account holds (the sequence wraps after 2^48 records).
  uint64_t NextToken() { return (uint64_t{slot_} << 48) | (next_sequence_++ & kSequenceMask); }
  void Add(uint64_t token, InFlightRecord record) { records_.emplace(token, record); }
  // The record of `token`, or nullptr (settled already, or a repeat after a producer rebuild).
  const InFlightRecord* Find(uint64_t token) const {
    auto it = records_.find(token);
    return it == records_.end() ? nullptr : &it->second;
  }
  // Removes and returns the record of `token`; nullopt if none.
  std::optional<InFlightRecord> Take(uint64_t token) {
    auto it = records_.find(token);
    if (it == records_.end()) return std::nullopt;
    InFlightRecord record = it->second;
    records_.erase(it);
    return record;
  }
  size_t size() const { return records_.size(); }

 private:
  static constexpr uint64_t kSequenceMask = (uint64_t{1} << 48) - 1;
  const uint16_t slot_;
  uint64_t next_sequence_ = 0;
  std::unordered_map<uint64_t, InFlightRecord> records_;
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_IN_FLIGHT_RECORDS_H_
