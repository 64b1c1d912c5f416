#include "daemon/pipeline/event_router.h"

#include <charconv>

#include "daemon/config/topic_template.h"
#include "daemon/pipeline/record_headers.h"

namespace zb {
namespace {

void AppendInt(std::string& out, int64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, end);
}

}  // namespace

EventRouter::EventRouter(EventRouterOptions options) : options_(std::move(options)) {}

KeyMode EventRouter::KeyModeFor(std::string_view type) const {
  auto it = options_.key_modes.find(type);
  return it == options_.key_modes.end() ? options_.default_key_mode : it->second;
}

std::string_view EventRouter::TopicFor(std::string_view type, std::string_view account) const {
  auto override_it = options_.topic_overrides.find(type);
  const std::string& pattern =
      override_it == options_.topic_overrides.end() ? options_.topic_template : override_it->second;
  // Most templates don't name the account: then one entry per type serves every account.
  std::string cache_key;
  if (TopicNamesAccount(pattern)) {
    cache_key.reserve(account.size() + 1 + type.size());
    cache_key.append(account).push_back('\0');
  }
  cache_key.append(type);
  auto it = topic_cache_.find(cache_key);
  if (it == topic_cache_.end()) {
    it = topic_cache_.emplace(std::move(cache_key), ExpandTopic(pattern, type, account)).first;
  }
  return it->second;
}

std::optional<std::string> EventRouter::ConversationKey(const EventHeader& event) {
  if (event.stream_id) {
    std::string key = "stream:";
    AppendInt(key, *event.stream_id);
    key += ':';
    key += event.topic;
    return key;
  }
  if (!event.dm_user_ids.empty()) {
    std::string key = "dm:";
    for (size_t i = 0; i < event.dm_user_ids.size(); ++i) {
      if (i > 0) key += ',';
      AppendInt(key, event.dm_user_ids[i]);
    }
    return key;
  }
  return std::nullopt;
}

Status EventRouter::Route(const RouteInput& in, RoutedRecord& out) const {
  const EventHeader& event = in.event;
  if (event.type.empty()) return Status::InvalidArgument("route: event without a type");
  if (event.type == "heartbeat") {
    return Status::InvalidArgument("route: heartbeats are settled, never published");
  }
  const bool is_message = event.type == "message";
  const bool backfilled = event.id < 0;
  if (backfilled && !(is_message && event.message_id)) {
    return Status::InvalidArgument("route: a " + event.type +
                                   " event without an event id (only messages are backfilled)");
  }

  out.topic = TopicFor(event.type, in.account);

  switch (KeyModeFor(event.type)) {
    case KeyMode::kNone:
      out.key.reset();
      break;
    case KeyMode::kConversation:
      if (is_message) {
        if (auto key = ConversationKey(event)) {
          out.key = std::move(key);
          break;
        }
      }
      [[fallthrough]];
    case KeyMode::kAccount:
      if (out.key) {
        out.key->assign(in.account);
      } else {
        out.key.emplace(in.account);
      }
      break;
  }

  BuildEventHeaders({options_.site, in.account, options_.bridge_version}, event, in.queue_id,
                    in.feature_level, out.headers);
  return Status::Ok();
}

}  // namespace zb
