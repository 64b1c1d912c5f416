// zulip-bridge: flags -> configuration -> objects -> run -> exit code.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <thread>

#include <curl/curlver.h>
#include <librdkafka/rdkafka.h>
#include <CLI/CLI.hpp>

#include "daemon/base/fs.h"
#include "daemon/base/log.h"
#include "daemon/base/version.h"
#include "daemon/config/config.h"
#include "daemon/ops/decommission.h"
#include "daemon/ops/reload_command.h"
#include "daemon/ops/replay_dead_letters.h"
#include "daemon/ops/status_command.h"
#include "daemon/process/supervisor.h"

namespace {

// Exit codes, documented in the README and docs/configuration.md.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // the daemon could not start, or stopped on an error
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

// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads the configuration. The signals are
// blocked in every thread and taken by one sigwait thread, which asks the supervisor: no work
// in a signal handler.
int RunDaemon(zb::Config config) {
  zb::LogOptions log;
  log.level = config.log.level;
  log.format = config.log.format;
  zb::ConfigureLog(log);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  zb::Supervisor supervisor(std::move(config));
  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    while (true) {
      int signo = 0;
      if (sigwait(&signals, &signo) != 0) continue;
      if (done) return;
      if (signo == SIGHUP) {
        supervisor.RequestReload();
        continue;
      }
      zb::LogInfo("stop requested", {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
      supervisor.RequestStop();
    }
  });
  zb::Status status = supervisor.Run();
  done = true;
  // Not to end the thread: SIGTERM is blocked in every thread, so this only wakes its sigwait,
  // and the thread, seeing `done`, returns.
  // NOLINTNEXTLINE(bugprone-bad-signal-to-kill-thread): see above
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  if (!status.ok()) {
    zb::LogError("zulip-bridge stopped on an error", {{"error", status.message()}});
    return kExitFailure;
  }
  return kExitOk;
}

// The whole program; main() only adds what happens to an exception that escapes it.
int Main(int argc, char** argv) {
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
  // Subcommands take the top-level --config too (fallthrough): `replay-dead-letters --config F`.
  CLI::App* replay = app.add_subcommand(
      "replay-dead-letters",
      "Send the records of the dead-letter spool to Kafka again; delivered ones leave the spool "
      "(0: all delivered, 1: some still failing); safe while the daemon runs");
  replay->fallthrough();
  CLI::App* status = app.add_subcommand(
      "status",
      "Print a table of the running daemon's accounts (state, queue, watermark, lag, last "
      "event, parked reason), asked from its HTTP listener (0: answered, 1: no answer)");
  status->fallthrough();
  CLI::App* reload = app.add_subcommand(
      "reload",
      "Ask the running daemon to reload its configuration (SIGHUP) and wait for the outcome "
      "(0: applied, 1: not applied or no answer, 78: the configuration is invalid)");
  reload->fallthrough();
  std::string decommission_account;
  CLI::App* decommission = app.add_subcommand(
      "decommission",
      "Delete ACCOUNT's Zulip event queue, then its checkpoint, for good; run it with the "
      "daemon stopped, before removing the account from the configuration (0: done, 1: not)");
  decommission->add_option("ACCOUNT", decommission_account, "The account's configured name")
      ->required();
  decommission->fallthrough();
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
    if (reload->parsed()) {
      std::fputs("zulip-bridge: not reloaded: the running daemon keeps its configuration\n",
                 stderr);
    }
    return kExitConfig;
  }
  if (replay->parsed()) {
    zb::LogOptions log;
    log.level = config->log.level;
    log.format = config->log.format;
    zb::ConfigureLog(log);
    return zb::RunReplayDeadLetters(*config, stdout);
  }
  if (reload->parsed()) {
    zb::StatusOr<std::string> outcome = zb::RequestReload(*config);
    if (!outcome.ok()) {
      PrintError(outcome.status());
      return kExitFailure;
    }
    std::printf("%s\n", outcome->c_str());
    return kExitOk;
  }
  if (status->parsed()) {
    zb::StatusOr<std::string> table = zb::QueryStatus(*config);
    if (!table.ok()) {
      PrintError(table.status());
      return kExitFailure;
    }
    std::fputs(table->c_str(), stdout);
    return kExitOk;
  }
  if (decommission->parsed()) {
    zb::PosixFs fs;
    zb::StatusOr<zb::DecommissionResult> result =
        zb::Decommission(*config, decommission_account, fs);
    if (!result.ok()) {
      PrintError(result.status());
      return result.status().IsNotFound() ? kExitUsage : kExitFailure;
    }
    if (result->queue_id.empty()) {
      std::printf("%s: no checkpoint, so no Zulip queue to delete\n", decommission_account.c_str());
    } else {
      std::printf("%s: Zulip queue %s %s; checkpoint removed\n", decommission_account.c_str(),
                  result->queue_id.c_str(), result->queue_deleted ? "deleted" : "was already gone");
    }
    return kExitOk;
  }
  if (check_config) {
    std::printf("# %s: configuration OK; effective values, secrets redacted\n%s",
                config_path.c_str(), zb::RenderConfig(*config).c_str());
    return kExitOk;
  }
  return RunDaemon(std::move(*config));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (...) {
    // An exception here is a bug: nothing below main may let one out (flag parsing catches its
    // own). std::terminate inside the handler prints the exception's type and what() and
    // aborts, as an exception escaping main always did; catching first says so in code.
    std::terminate();
  }
}
