// The effective configuration as YAML, what --check-config prints: every key with its value
// after defaults, secrets redacted. Adding a key to Config means adding it here too, so that
// operators see what the daemon runs with.
//
// Public (config.h includes this header, so callers need only config.h). Depends on
// config.h's types and, in the .cc, on the section readers' name tables (daemon_section.h,
// kafka_section.h); nothing in the loader depends on it. Pure; any thread.
#ifndef ZB_DAEMON_CONFIG_RENDER_CONFIG_H_
#define ZB_DAEMON_CONFIG_RENDER_CONFIG_H_

#include <string>
#include <string_view>

namespace zb {

struct Config;

// The effective configuration as YAML: every key with its value after defaults, with the API
// keys and sensitive librdkafka properties redacted.
std::string RenderConfig(const Config& config);

// True for librdkafka properties whose value must never be printed: those librdkafka itself
// marks sensitive, and any name containing "password" or "secret".
bool IsSensitiveKafkaProperty(std::string_view name);

}  // namespace zb

#endif  // ZB_DAEMON_CONFIG_RENDER_CONFIG_H_
