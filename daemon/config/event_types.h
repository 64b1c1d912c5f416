// The event types Zulip documents for GET /events (FACTS.md section 6): the configuration
// refuses any other name in event_types, kafka.topics and kafka.key, since a typo would
// silently match nothing. Constant data; any thread.
#ifndef ZB_DAEMON_CONFIG_EVENT_TYPES_H_
#define ZB_DAEMON_CONFIG_EVENT_TYPES_H_

#include <string_view>
#include <vector>

namespace zb {

// Includes "heartbeat" (which is never published).
const std::vector<std::string_view>& KnownEventTypes();

bool IsKnownEventType(std::string_view type);

}  // namespace zb

#endif  // ZB_DAEMON_CONFIG_EVENT_TYPES_H_
