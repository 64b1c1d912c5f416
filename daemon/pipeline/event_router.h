// Decides where an event goes in Kafka and what travels with it: the record's topic, key and
// headers, exactly as DESIGN.md "Kafka records" says. A plain value built from configuration;
// no I/O, no librdkafka.
//
// Threads: Route() fills a per-router cache of expanded topics, so one router is used by one
// thread at a time (the event loop). Copies are independent.
//
// Heartbeats are never routed: the caller settles them at once (DESIGN.md) and Route() refuses
// them with InvalidArgument, so a heartbeat that reaches it is a bug the caller sees.
#ifndef ZB_DAEMON_PIPELINE_EVENT_ROUTER_H_
#define ZB_DAEMON_PIPELINE_EVENT_ROUTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/zulip/event.h"

namespace zb {

// What a record's key is, per event type.
enum class KeyMode {
  kAccount,       // the account name (default): one account's events stay in one partition
  kConversation,  // messages only: the conversation, see ConversationKey(); other types (and a
                  // message that names no conversation) fall back to the account name
  kNone,          // no key: librdkafka spreads the records over the partitions
};

struct EventRouterOptions {
  // kafka.topic_template: "{type}" becomes the event type, "{account}" the account name; any
  // other text is kept as written (ExpandTopic, config/topic_template.h).
  std::string topic_template = "zulip.{type}";
  // Per-type topics, which win over the template; they may use {type} and {account} too.
  std::map<std::string, std::string, std::less<>> topic_overrides;
  // Where gap records and other operator-relevant happenings go.
  std::string control_topic = "zulip.bridge.control";
  KeyMode default_key_mode = KeyMode::kAccount;
  std::map<std::string, KeyMode, std::less<>> key_modes;  // per event type
  // The Zulip site the accounts routed by this router live on (e.g. "https://chat.example.com"),
  // as it appears in zulip-site and the dedup keys. Accounts on different sites need different
  // routers (the daemon builds one per account; they are cheap).
  std::string site;
  std::string bridge_version;  // bridge-version header
};

// Where one event goes. Route() refills it; reusing one across calls reuses its buffers.
struct RoutedRecord {
  std::string_view topic;  // valid while the router lives
  std::optional<std::string> key;
  std::vector<std::pair<std::string, std::string>> headers;  // (name, value), in a fixed order
};

// One event to route.
struct RouteInput {
  std::string_view account;   // the account's configured name
  const EventHeader& event;   // event.id < 0 marks a backfilled message (no queue event id)
  std::string_view queue_id;  // the queue the event came from; ignored for backfilled events
  int64_t feature_level = 0;  // the server's zulip_feature_level at register
};

class EventRouter {
 public:
  explicit EventRouter(EventRouterOptions options);

  // Fills `out` for `in`: its topic, its key, and its headers as BuildEventHeaders writes them
  // (record_headers.h: the order and the dedup key are described there).
  // InvalidArgument for a heartbeat, an event without a type, or a backfilled (id < 0) event
  // that is not a message with a message id; `out` is then unspecified.
  Status Route(const RouteInput& in, RoutedRecord& out) const;

  // The topic for `type` and `account` (template or override, expanded). Cached.
  std::string_view TopicFor(std::string_view type, std::string_view account) const;

  const std::string& control_topic() const { return options_.control_topic; }
  const EventRouterOptions& options() const { return options_; }

  // The conversation key of a message event, or nullopt when it names no conversation:
  //   channel message: "stream:<stream id>:<topic>"   (the topic's exact UTF-8 bytes; the
  //                                                    first two ':' delimit, the topic may
  //                                                    contain more)
  //   direct message:  "dm:<user id>,<user id>,..."   (every participant, the sender included,
  //                                                    ascending, no spaces; "dm:42" for a
  //                                                    message to oneself)
  static std::optional<std::string> ConversationKey(const EventHeader& event);

 private:
  KeyMode KeyModeFor(std::string_view type) const;

  EventRouterOptions options_;
  // "<type>" or "<account>\0<type>" (when the pattern uses {account}) -> expanded topic.
  mutable std::map<std::string, std::string, std::less<>> topic_cache_;
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_EVENT_ROUTER_H_
