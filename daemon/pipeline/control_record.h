// Records for the control topic (kafka.control_topic, default zulip.bridge.control): versioned
// JSON objects about what happened to the stream itself rather than events from Zulip, for the
// consumers and operators who must know when the stream is not the whole story.
#ifndef ZB_DAEMON_PIPELINE_CONTROL_RECORD_H_
#define ZB_DAEMON_PIPELINE_CONTROL_RECORD_H_

#include <cstdint>
#include <string>
#include <vector>

namespace zb {

// A lost event queue (DESIGN.md "Gaps"). Between last_event_id on the lost queue and the start
// of the new one, events were not received. Messages are recovered by the backfill (records with
// the zulip-backfill header) when `backfill` is true, within its `limits`; every other event
// type of that interval is not recoverable.
struct GapRecord {
  std::string account;
  std::string site;
  std::string lost_queue_id;
  int64_t last_event_id = -1;    // the last event id acknowledged on the lost queue
  int64_t last_message_id = -1;  // the highest message id published before the gap
  std::string new_queue_id;
  int64_t last_good_poll_unix_ms = 0;  // 0: none since the daemon started
  int64_t detected_at_unix_ms = 0;
  std::string reason;  // Zulip's words
  bool backfill = true;
  // What the backfill cannot read back, or reads back differently, in words (PlanBackfill():
  // deleted messages, narrow terms judged as messages are now rather than as they were sent).
  std::vector<std::string> limits;
};

// {"version":1,"type":"gap",...} with times as RFC 3339 UTC strings (millisecond precision) and
// "limits" an array of strings (empty when nothing is backfilled). The version changes only
// when a field changes meaning or goes away; fields are added under the same version (README,
// "Gaps").
std::string GapRecordJson(const GapRecord& gap);

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_CONTROL_RECORD_H_
