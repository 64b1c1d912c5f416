// zulip-bridge: flags -> configuration -> objects -> run -> exit code.
#include <cstdio>
#include <string>
#include <string_view>

#include <curl/curlver.h>
#include <librdkafka/rdkafka.h>
#include <CLI/CLI.hpp>

#include "daemon/config.h"
#include "daemon/version.h"

namespace {

// Exit codes, documented in the README and docs/configuration.md.
constexpr int kExitOk = 0;
constexpr int kExitUsage = 64;   // EX_USAGE: bad flags
constexpr int kExitConfig = 78;  // EX_CONFIG: the configuration is invalid or unreadable

constexpr char kDefaultConfigPath[] = "/etc/zulip-bridge/zulip-bridge.yaml";

void PrintVersion() {
  std::printf("zulip-bridge %s (librdkafka %s, libcurl %s)\n", zb::kBridgeVersion,
              rd_kafka_version_str(), LIBCURL_VERSION);
}

// One "zulip-bridge: <line>" on stderr per line of the status message.
void PrintError(const zb::Status& status) {
  std::string_view message = status.message();
  while (true) {
    size_t end = message.find('\n');
    std::fprintf(stderr, "zulip-bridge: %.*s\n", static_cast<int>(message.substr(0, end).size()),
                 message.data());
    if (end == std::string_view::npos) break;
    message.remove_prefix(end + 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"zulip-bridge: forwards Zulip's real-time events to Kafka, losing none"};
  bool show_version = false;
  bool check_config = false;
  std::string config_path = kDefaultConfigPath;
  app.add_flag("--version", show_version, "Print the version and the library versions, then exit");
  app.add_option("--config", config_path, "The configuration file")
      ->capture_default_str()
      ->type_name("FILE");
  app.add_flag("--check-config", check_config,
               "Validate the configuration, print it with secrets redacted, then exit "
               "(0: valid, 78: invalid)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (show_version) {
    PrintVersion();
    return kExitOk;
  }

  zb::StatusOr<zb::Config> config = zb::LoadConfig(config_path);
  if (!config.ok()) {
    PrintError(config.status());
    return kExitConfig;
  }
  if (check_config) {
    std::printf("# %s: configuration OK; effective values, secrets redacted\n%s",
                config_path.c_str(), zb::RenderConfig(*config).c_str());
    return kExitOk;
  }
  // TODO(lead): build the publisher, the accounts and the supervisor, then run.
  std::fprintf(stderr, "zulip-bridge: configuration OK; the daemon itself is not built yet\n");
  return kExitUsage;
}
