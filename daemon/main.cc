// zulip-bridge: flags -> configuration -> objects -> run -> exit code.
#include <cstdio>
#include <string>

#include <curl/curlver.h>
#include <librdkafka/rdkafka.h>
#include <CLI/CLI.hpp>

#include "daemon/version.h"

namespace {

// Exit codes, documented in the README.
constexpr int kExitOk = 0;
constexpr int kExitUsage = 64;  // EX_USAGE: bad flags

void PrintVersion() {
  std::printf("zulip-bridge %s (librdkafka %s, libcurl %s)\n", zb::kBridgeVersion,
              rd_kafka_version_str(), LIBCURL_VERSION);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"zulip-bridge: forwards Zulip's real-time events to Kafka, losing none"};
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and the library versions, then exit");
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
  std::fprintf(stderr, "zulip-bridge: nothing to do yet; see --help\n");
  return kExitUsage;
}
