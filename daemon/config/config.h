// The daemon's configuration: plain structs filled by LoadConfig from the YAML file that
// --config names, with every default applied, every credential resolved and every rule of
// docs/configuration.md checked. config/zulip-bridge.example.yaml documents each key once.
//
// These are values: LoadConfig builds them on the main thread, once at startup and again on
// each reload; then they are shared read-only, so no locking is needed. Only the loader's files
// in daemon/config/ include yaml-cpp; this header and the ones it includes do not.
//
// This header is what other layers include: the data types, LoadConfig, and (through the
// headers below) the rules they share with the loader. The loader inside daemon/config/, with
// dependencies going one way, top first:
//   config.cc             LoadConfig: reads the file, visits the top-level keys in order
//   account_section.h     accounts:       kafka_section.h   kafka:
//   daemon_section.h      state_dir, http, log, metrics, retry, dead_letter
//   credentials.h         ${ENV}, paths, credential files, zuliprc, API keys
//   diagnostics.h         reading YAML values, "<file>:<line>:<col>: <key.path>: ..." messages
// and beside it, public and free of YAML:
//   render_config.h       RenderConfig (--check-config's output), IsSensitiveKafkaProperty
//   topic_template.h      {type}/{account} expansion and checks, CheckTopicName
//   zulip_site.h          NormalizeSite, ZulipApiBaseUrl (python-zulip-api's rule)
//   event_types.h         KnownEventTypes
#ifndef ZB_DAEMON_CONFIG_CONFIG_H_
#define ZB_DAEMON_CONFIG_CONFIG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/base/log.h"  // LogLevel, LogFormat
#include "daemon/base/status.h"
#include "daemon/config/event_types.h"     // KnownEventTypes
#include "daemon/config/render_config.h"   // RenderConfig, IsSensitiveKafkaProperty
#include "daemon/config/topic_template.h"  // CheckTopicName
#include "daemon/config/zulip_site.h"      // NormalizeSite

namespace zb {

// A credential (an API key) that cannot be printed by accident: streaming it, or rendering
// a configuration that holds it, writes "<redacted>". Reveal() is the only way to the bytes;
// call it where they go on the wire, nowhere else.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  const std::string& Reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  friend bool operator==(const Secret&, const Secret&) = default;

 private:
  std::string value_;
};

// Writes "<redacted>", whatever the secret holds.
std::ostream& operator<<(std::ostream& os, const Secret& secret);

inline constexpr std::string_view kRedacted = "<redacted>";

// What a record's Kafka key is made of. kConversation is only valid for `message` events:
// "<stream id>:<topic>" for channel messages, the sorted recipient ids for direct messages.
enum class KeyChoice { kAccount, kConversation };

struct KafkaConfig {
  // bootstrap.servers, one "host:port" per element.
  std::vector<std::string> brokers;
  // Topic for an event; placeholders {type} and {account} (topic_template.h).
  std::string topic_template = "zulip.{type}";
  // Per event type overrides of topic_template (same placeholders).
  std::map<std::string, std::string, std::less<>> topics;
  // Gap records and other operator-relevant happenings.
  std::string control_topic = "zulip.bridge.control";
  // Key for every type without an entry in `keys`.
  KeyChoice default_key = KeyChoice::kAccount;
  std::map<std::string, KeyChoice, std::less<>> keys;
  // How long shutdown waits for outstanding deliveries.
  int64_t flush_timeout_secs = 30;
  // Passed to librdkafka as-is (after ${ENV} substitution). Never contains settings that
  // break at-least-once delivery (LoadConfig refuses them).
  std::map<std::string, std::string, std::less<>> properties;

  // The topic an event of `type` from `account` goes to: the per-type override or the template.
  std::string TopicFor(std::string_view type, std::string_view account) const;
  KeyChoice KeyFor(std::string_view type) const;

  friend bool operator==(const KafkaConfig&, const KafkaConfig&) = default;
};

struct HttpConfig {
  // The address of /healthz, /readyz and /metrics, as written ("127.0.0.1:9187", "[::1]:9187").
  std::string listen = "127.0.0.1:9187";
  std::string host = "127.0.0.1";  // without brackets
  uint16_t port = 9187;            // 0: any free port

  friend bool operator==(const HttpConfig&, const HttpConfig&) = default;
};

struct LogConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kLogfmt;

  friend bool operator==(const LogConfig&, const LogConfig&) = default;
};

struct MetricsConfig {
  // Series per account x event type (off: per account and per type separately).
  bool per_account_type = false;

  friend bool operator==(const MetricsConfig&, const MetricsConfig&) = default;
};

struct RetryConfig {
  int64_t initial_backoff_ms = 1000;
  int64_t max_backoff_ms = 120000;

  friend bool operator==(const RetryConfig&, const RetryConfig&) = default;
};

struct DeadLetterConfig {
  // Size cap of the dead-letter spool in the state directory.
  int64_t max_bytes = int64_t{1} << 30;

  friend bool operator==(const DeadLetterConfig&, const DeadLetterConfig&) = default;
};

// TLS towards one Zulip server. Paths are absolute (LoadConfig resolved them).
struct TlsConfig {
  std::string ca_bundle;        // empty: the system CAs
  std::string client_cert;      // empty: no client certificate
  std::string client_cert_key;  // empty: the key is in client_cert
  bool insecure_skip_verify = false;

  friend bool operator==(const TlsConfig&, const TlsConfig&) = default;
};

// Where an account starts backfilling message history the first time it runs.
struct BackfillFrom {
  enum class Kind { kNone, kMessageId, kTime };
  Kind kind = Kind::kNone;
  int64_t message_id = 0;    // kMessageId
  int64_t unix_seconds = 0;  // kTime (UTC)
  std::string text;          // as written, for rendering ("none" when kNone)

  friend bool operator==(const BackfillFrom&, const BackfillFrom&) = default;
};

enum class CredentialSource { kZuliprc, kApiKeyFile, kApiKey, kSystemdCredential };

struct AccountConfig {
  // [A-Za-z0-9._-]{1,64}, not "." or "..": used in file names and Kafka keys and headers.
  std::string name;
  // NormalizeSite (zulip_site.h): normalised as Zulip's Python bindings do, without the "/api"
  // suffix and without a trailing slash, e.g. "https://chat.example.com".
  std::string site;
  std::string email;
  Secret api_key;
  CredentialSource credential_source = CredentialSource::kApiKey;
  // The zuliprc, api_key_file or systemd credential file the key came from; empty for api_key.
  std::string credential_path;
  TlsConfig tls;

  // The register arguments. nullopt event_types: every type (the parameter is not sent).
  std::optional<std::vector<std::string>> event_types;
  std::vector<std::string> fetch_event_types = {"message", "realm"};
  std::vector<std::pair<std::string, std::string>> narrow;  // [operator, operand] pairs
  bool all_public_streams = false;
  bool apply_markdown = false;
  bool client_gravatar = false;
  bool slim_presence = false;
  std::map<std::string, bool, std::less<>> client_capabilities;
  int64_t queue_lifespan_secs = 604800;

  BackfillFrom backfill_from;

  // "<site>/api/v1/": prefix of every endpoint URL.
  std::string ApiBaseUrl() const { return site + "/api/v1/"; }

  friend bool operator==(const AccountConfig&, const AccountConfig&) = default;
};

struct Config {
  std::string path;  // the file it was loaded from
  KafkaConfig kafka;
  std::string state_dir = "/var/lib/zulip-bridge";  // absolute
  HttpConfig http;
  LogConfig log;
  MetricsConfig metrics;
  RetryConfig retry;
  DeadLetterConfig dead_letter;
  std::vector<AccountConfig> accounts;
};

// Where LoadConfig looks up environment variables (${NAME} and $CREDENTIALS_DIRECTORY).
// Returns nullopt for an unset variable. The default reads the process environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnv();

// Reads, validates and resolves the configuration at `path`. Relative paths in it are
// relative to the directory of `path`. Creates state_dir (mode 0700) when missing and checks
// that it is writable, and reads every credential.
// OK: a complete Config. InvalidArgument: the file is not a valid configuration; the message
// holds one line per problem, each "<file>:<line>:<column>: <key.path>: <what is wrong;
// what was expected>", and never a secret. IOError: the file itself cannot be read.
StatusOr<Config> LoadConfig(const std::string& path, const EnvLookup& env);
StatusOr<Config> LoadConfig(const std::string& path);

}  // namespace zb

#endif  // ZB_DAEMON_CONFIG_CONFIG_H_
