// What the pipeline needs to know about one Zulip event without keeping it parsed: its queue
// id, its type and, for messages, what identifies the message and its conversation. Produced
// from the event's exact bytes by ParseEventHeader (event_splitter.h); read by the router
// (topic, key, headers) and by the account (watermark, last published message id).
#ifndef ZB_DAEMON_ZULIP_EVENT_H_
#define ZB_DAEMON_ZULIP_EVENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zb {

struct EventHeader {
  // The queue's event id ("id"); -1 when the event has none (backfilled messages).
  int64_t id = -1;
  // "type", e.g. "message", "heartbeat", "update_message_flags".
  std::string type;

  // The rest is filled only for type == "message".
  std::optional<int64_t> message_id;  // message.id
  // Channel messages: message.stream_id and the topic (message.subject, or message.topic).
  std::optional<int64_t> stream_id;
  std::string topic;
  // Direct messages: the user ids of message.display_recipient, sorted ascending.
  std::vector<int64_t> dm_user_ids;
};

}  // namespace zb

#endif  // ZB_DAEMON_ZULIP_EVENT_H_
