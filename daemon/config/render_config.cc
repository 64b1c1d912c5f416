// RenderConfig and the redaction rule. See render_config.h.
#include "daemon/config/render_config.h"

#include <algorithm>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "daemon/config/config.h"
#include "daemon/config/daemon_section.h"
#include "daemon/config/diagnostics.h"
#include "daemon/config/kafka_section.h"

namespace zb {
namespace {

using config_internal::KeyChoiceName;
using config_internal::LogFormatName;
using config_internal::LogLevelName;

const char* SourceName(CredentialSource s) {
  switch (s) {
    case CredentialSource::kZuliprc:
      return "zuliprc";
    case CredentialSource::kApiKeyFile:
      return "api_key_file";
    case CredentialSource::kApiKey:
      return "api_key";
    case CredentialSource::kSystemdCredential:
      return "systemd_credential";
  }
  return "?";
}

void EmitStringList(YAML::Emitter& out, const std::vector<std::string>& items) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const std::string& item : items) out << item;
  out << YAML::EndSeq;
}

}  // namespace

bool IsSensitiveKafkaProperty(std::string_view name) {
  // librdkafka 2.x marks these _RK_SENSITIVE (rdkafka_conf.c).
  static const config_internal::Keys kSensitive = {"ssl.key.location",
                                                   "ssl.key.password",
                                                   "ssl.key.pem",
                                                   "ssl_key",
                                                   "ssl.ca.pem",
                                                   "ssl.keystore.password",
                                                   "sasl.username",
                                                   "sasl.password",
                                                   "sasl.oauthbearer.config",
                                                   "sasl.oauthbearer.client.secret"};
  std::string lower = config_internal::ToLower(name);
  if (std::find(kSensitive.begin(), kSensitive.end(), lower) != kSensitive.end()) return true;
  return lower.find("password") != std::string::npos || lower.find("secret") != std::string::npos;
}

std::string RenderConfig(const Config& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "kafka" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "brokers" << YAML::Value;
  EmitStringList(out, c.kafka.brokers);
  out << YAML::Key << "topic_template" << YAML::Value << c.kafka.topic_template;
  out << YAML::Key << "topics" << YAML::Value << YAML::BeginMap;
  for (const auto& [type, topic] : c.kafka.topics) out << YAML::Key << type << YAML::Value << topic;
  out << YAML::EndMap;
  out << YAML::Key << "control_topic" << YAML::Value << c.kafka.control_topic;
  out << YAML::Key << "key" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "default" << YAML::Value << std::string(KeyChoiceName(c.kafka.default_key));
  for (const auto& [type, key] : c.kafka.keys) {
    out << YAML::Key << type << YAML::Value << std::string(KeyChoiceName(key));
  }
  out << YAML::EndMap;
  out << YAML::Key << "flush_timeout_secs" << YAML::Value << c.kafka.flush_timeout_secs;
  out << YAML::Key << "properties" << YAML::Value << YAML::BeginMap;
  for (const auto& [name, value] : c.kafka.properties) {
    out << YAML::Key << name << YAML::Value;
    if (IsSensitiveKafkaProperty(name)) {
      out << std::string(kRedacted);
    } else {
      out << YAML::DoubleQuoted << value;
    }
  }
  out << YAML::EndMap << YAML::EndMap;

  out << YAML::Key << "state_dir" << YAML::Value << c.state_dir;
  out << YAML::Key << "http" << YAML::Value << YAML::BeginMap << YAML::Key << "listen"
      << YAML::Value << c.http.listen << YAML::EndMap;
  out << YAML::Key << "log" << YAML::Value << YAML::BeginMap << YAML::Key << "level" << YAML::Value
      << std::string(LogLevelName(c.log.level)) << YAML::Key << "format" << YAML::Value
      << std::string(LogFormatName(c.log.format)) << YAML::EndMap;
  out << YAML::Key << "metrics" << YAML::Value << YAML::BeginMap << YAML::Key << "per_account_type"
      << YAML::Value << c.metrics.per_account_type << YAML::EndMap;
  out << YAML::Key << "retry" << YAML::Value << YAML::BeginMap << YAML::Key << "initial_backoff_ms"
      << YAML::Value << c.retry.initial_backoff_ms << YAML::Key << "max_backoff_ms" << YAML::Value
      << c.retry.max_backoff_ms << YAML::EndMap;
  out << YAML::Key << "dead_letter" << YAML::Value << YAML::BeginMap << YAML::Key << "max_bytes"
      << YAML::Value << c.dead_letter.max_bytes << YAML::EndMap;

  out << YAML::Key << "accounts" << YAML::Value << YAML::BeginSeq;
  for (const AccountConfig& a : c.accounts) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << a.name;
    out << YAML::Key << "site" << YAML::Value << a.site;
    out << YAML::Key << "email" << YAML::Value << a.email;
    out << YAML::Key << "api_key" << YAML::Value << std::string(kRedacted);
    out << YAML::Key << "api_key_from" << YAML::Value
        << (a.credential_path.empty()
                ? std::string(SourceName(a.credential_source))
                : std::string(SourceName(a.credential_source)) + " " + a.credential_path);
    out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "ca_bundle" << YAML::Value << a.tls.ca_bundle;
    out << YAML::Key << "client_cert" << YAML::Value << a.tls.client_cert;
    out << YAML::Key << "client_cert_key" << YAML::Value << a.tls.client_cert_key;
    out << YAML::Key << "insecure_skip_verify" << YAML::Value << a.tls.insecure_skip_verify;
    out << YAML::EndMap;
    out << YAML::Key << "event_types" << YAML::Value;
    if (a.event_types) {
      EmitStringList(out, *a.event_types);
    } else {
      out << "all";
    }
    out << YAML::Key << "fetch_event_types" << YAML::Value;
    EmitStringList(out, a.fetch_event_types);
    out << YAML::Key << "narrow" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& [op, operand] : a.narrow) {
      out << YAML::Flow << YAML::BeginSeq << op << operand << YAML::EndSeq;
    }
    out << YAML::EndSeq;
    out << YAML::Key << "all_public_streams" << YAML::Value << a.all_public_streams;
    out << YAML::Key << "apply_markdown" << YAML::Value << a.apply_markdown;
    out << YAML::Key << "client_gravatar" << YAML::Value << a.client_gravatar;
    out << YAML::Key << "slim_presence" << YAML::Value << a.slim_presence;
    out << YAML::Key << "client_capabilities" << YAML::Value << YAML::BeginMap;
    for (const auto& [name, on] : a.client_capabilities) {
      out << YAML::Key << name << YAML::Value << on;
    }
    out << YAML::EndMap;
    out << YAML::Key << "queue_lifespan_secs" << YAML::Value << a.queue_lifespan_secs;
    out << YAML::Key << "backfill_from" << YAML::Value << a.backfill_from.text;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace zb
