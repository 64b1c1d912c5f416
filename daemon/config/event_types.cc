#include "daemon/config/event_types.h"

#include <algorithm>

namespace zb {

const std::vector<std::string_view>& KnownEventTypes() {
  static const std::vector<std::string_view> kTypes = {
      "alert_words",
      "attachment",
      "custom_profile_fields",
      "default_stream_groups",
      "default_streams",
      "delete_message",
      "drafts",
      "has_zoom_token",
      "heartbeat",
      "invites_changed",
      "message",
      "muted_topics",
      "muted_users",
      "onboarding_steps",
      "presence",
      "reaction",
      "realm",
      "realm_bot",
      "realm_domains",
      "realm_emoji",
      "realm_export",
      "realm_export_consent",
      "realm_filters",
      "realm_linkifiers",
      "realm_playgrounds",
      "realm_user",
      "realm_user_settings_defaults",
      "restart",
      "saved_snippets",
      "scheduled_messages",
      "stream",
      "submessage",
      "subscription",
      "typing",
      "typing_edit_message",
      "update_display_settings",
      "update_global_notifications",
      "update_message",
      "update_message_flags",
      "user_group",
      "user_settings",
      "user_status",
      "user_topic",
      "web_reload_client",
  };
  return kTypes;
}

bool IsKnownEventType(std::string_view type) {
  const auto& known = KnownEventTypes();
  return std::find(known.begin(), known.end(), type) != known.end();
}

}  // namespace zb
