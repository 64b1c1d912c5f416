// The one home of topic templates: kafka.topic_template and the per-type kafka.topics name a
// Kafka topic with the placeholders {type} (the event type) and {account} (the account's
// name). The configuration checks templates with CheckTopicTemplatePlaceholders and
// CheckTopicName at load; the event router (pipeline/event_router.cc) expands them with
// AppendTopic, once per (type, account) it meets, and caches the result.
//
// Expansion keeps any other text as written, including an unknown "{site}" (the loader refuses
// those, so only a router built by hand sees them).
//
// Pure functions and constants; any thread.
#ifndef ZB_DAEMON_CONFIG_TOPIC_TEMPLATE_H_
#define ZB_DAEMON_CONFIG_TOPIC_TEMPLATE_H_

#include <array>
#include <string>
#include <string_view>

#include "daemon/base/status.h"

namespace zb {

inline constexpr std::string_view kTypePlaceholder = "{type}";
inline constexpr std::string_view kAccountPlaceholder = "{account}";
// Every placeholder a template may use, in the order messages list them.
inline constexpr std::array<std::string_view, 2> kTopicPlaceholders = {kTypePlaceholder,
                                                                       kAccountPlaceholder};

// Appends `tmpl` to `out` with each {type} replaced by `type` and each {account} by `account`.
// Allocates only if `out` has to grow.
void AppendTopic(std::string_view tmpl, std::string_view type, std::string_view account,
                 std::string& out);

// AppendTopic into a new string.
std::string ExpandTopic(std::string_view tmpl, std::string_view type, std::string_view account);

// True if expanding `tmpl` depends on the account (it contains {account}).
inline bool TopicNamesAccount(std::string_view tmpl) {
  return tmpl.find(kAccountPlaceholder) != std::string_view::npos;
}

// OK if every '{' ... '}' in `tmpl` is one of kTopicPlaceholders. InvalidArgument otherwise,
// the message saying what is wrong and listing the placeholders (it ends up in the
// configuration's diagnostics as written).
Status CheckTopicTemplatePlaceholders(std::string_view tmpl);

// OK if `topic` is a valid Kafka topic name: 1..249 of [a-zA-Z0-9._-], not "." or "..".
Status CheckTopicName(std::string_view topic);

}  // namespace zb

#endif  // ZB_DAEMON_CONFIG_TOPIC_TEMPLATE_H_
