// The section reader of the configuration's `kafka:` mapping: brokers, topic templates and
// per-type topics, the control topic, record keys, the flush timeout and the librdkafka
// properties passed through (after ${ENV} substitution), refusing the properties that would
// break at-least-once delivery.
//
// Private to daemon/config/. Depends on diagnostics.h (reading, reporting), credentials.h
// (${ENV}), topic_template.h and event_types.h; config.cc's loader calls it, never the reverse.
// Threads: the main thread, during a load (at start and on each reload).
#ifndef ZB_DAEMON_CONFIG_KAFKA_SECTION_H_
#define ZB_DAEMON_CONFIG_KAFKA_SECTION_H_

#include <string_view>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/config/diagnostics.h"

namespace zb::config_internal {

// Reads `entry` (the kafka mapping) into *out, which holds the defaults; each problem goes to
// ctx.diag and leaves that key's default. Every topic a template yields is checked for each
// name in `accounts` (the accounts already read; a placeholder name when there are none), so
// the accounts must be read first.
void ReadKafkaSection(const LoadContext& ctx, const Entry& entry,
                      const std::vector<AccountConfig>& accounts, KafkaConfig* out);

// "account" or "conversation", as kafka.key spells them.
std::string_view KeyChoiceName(KeyChoice key);

}  // namespace zb::config_internal

#endif  // ZB_DAEMON_CONFIG_KAFKA_SECTION_H_
