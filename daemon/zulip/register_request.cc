#include "daemon/zulip/register_request.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>

namespace zb {
namespace {

std::string JsonString(std::string_view text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  return buffer.GetString();
}

std::string JsonStringArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += JsonString(items[i]);
  }
  return out + "]";
}

const char* JsonBool(bool b) { return b ? "true" : "false"; }

}  // namespace

std::vector<std::pair<std::string, std::string>> RegisterFields(const AccountConfig& config) {
  std::vector<std::pair<std::string, std::string>> fields;
  if (config.event_types) fields.emplace_back("event_types", JsonStringArray(*config.event_types));
  fields.emplace_back("fetch_event_types", JsonStringArray(config.fetch_event_types));
  std::string narrow = "[";
  for (size_t i = 0; i < config.narrow.size(); ++i) {
    if (i > 0) narrow += ',';
    narrow +=
        "[" + JsonString(config.narrow[i].first) + "," + JsonString(config.narrow[i].second) + "]";
  }
  fields.emplace_back("narrow", narrow + "]");
  fields.emplace_back("all_public_streams", JsonBool(config.all_public_streams));
  fields.emplace_back("apply_markdown", JsonBool(config.apply_markdown));
  fields.emplace_back("client_gravatar", JsonBool(config.client_gravatar));
  fields.emplace_back("slim_presence", JsonBool(config.slim_presence));
  std::string capabilities = "{";
  bool first = true;
  for (const auto& [name, value] : config.client_capabilities) {
    if (!first) capabilities += ',';
    first = false;
    capabilities += JsonString(name) + ":" + JsonBool(value);
  }
  fields.emplace_back("client_capabilities", capabilities + "}");
  fields.emplace_back("queue_lifespan_secs", std::to_string(config.queue_lifespan_secs));
  return fields;
}

std::string RegisterFingerprint(const AccountConfig& config) {
  // FNV-1a over the user and the register form exactly as sent: any difference Zulip would see
  // changes it, and it is the same in every build.
  uint64_t hash = 0xcbf29ce484222325ULL;
  auto mix = [&hash](std::string_view text) {
    for (unsigned char c : text) {
      hash ^= c;
      hash *= 0x100000001b3ULL;
    }
    hash ^= 0xff;  // a separator no UTF-8 text contains
    hash *= 0x100000001b3ULL;
  };
  mix(config.site);
  mix(config.email);
  for (const auto& [name, value] : RegisterFields(config)) {
    mix(name);
    mix(value);
  }
  char out[32];
  std::snprintf(out, sizeof(out), "fnv1a64:%016llx", static_cast<unsigned long long>(hash));
  return out;
}

ZulipClientOptions ZulipClientOptionsFor(const AccountConfig& config) {
  ZulipClientOptions options;
  options.site = config.site;
  options.email = config.email;
  options.api_key = config.api_key.Reveal();
  options.tls.ca_bundle = config.tls.ca_bundle;
  options.tls.client_cert = config.tls.client_cert;
  options.tls.client_key = config.tls.client_cert_key;
  options.tls.verify = !config.tls.insecure_skip_verify;
  return options;
}

}  // namespace zb
