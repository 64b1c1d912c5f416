// `zulip-bridge --check-config` as an operator runs it: a subprocess, its exit code, what it
// prints on stdout and stderr, and that no secret is ever among it.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ::zb::testing::TempDir;

constexpr char kBridge[] = ZB_BRIDGE_BIN;  // the built target, wherever CMake puts it

// The secrets the good configurations in tests/testdata/config use (see config_test.cc).
const std::vector<std::string> kSecrets = {
    "zbSecretKeyFromEnv0001", "zbSecretKeyFromFile0002", "zbSecretKeyZuliprc0003",
    "zbSecretKeyZuliprc0004", "zbSecretKeyZuliprc0005",  "zbSecretKeyZuliprc0006",
    "zbKafkaPassword0007",    "zbSslKeyPassword0008",    "zbOauthSecret0009",
    "zbInlineKey0010",        "zbSaslUser0011",
};

struct BridgeRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class CheckConfigTest : public ::testing::Test {
 protected:
  CheckConfigTest() {
    std::filesystem::copy(ZB_SOURCE_DIR "/tests/testdata/config", dir_.path(),
                          std::filesystem::copy_options::recursive);
    env_ = {{"ZB_TEST_API_KEY", "zbSecretKeyFromEnv0001"},
            {"ZB_TEST_KAFKA_PASSWORD", "zbKafkaPassword0007"},
            {"CREDENTIALS_DIRECTORY", dir_.Sub("secrets")},
            {"PATH", "/usr/bin:/bin"}};
  }

  // Runs the bridge with `args` and only env_ as its environment; waits for it to exit.
  BridgeRun RunBridge(const std::vector<std::string>& args) {
    std::string out_path = dir_.Sub("stdout"), err_path = dir_.Sub("stderr");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    std::vector<std::string> argv_strings = {kBridge};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (const auto& [name, value] : env_) env_strings.push_back(name + "=" + value);
    // Sanitizer settings must reach the child, or a leak report would change its exit code.
    for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"}) {
      if (const char* value = std::getenv(name))
        env_strings.push_back(std::string(name) + "=" + value);
    }
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    BridgeRun run;
    pid_t pid = 0;
    int rc = posix_spawn(&pid, kBridge, &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn " << kBridge << ": " << std::strerror(rc);
      return run;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run.out = ReadFile(out_path);
    run.err = ReadFile(err_path);
    return run;
  }

  void ExpectNoSecret(const BridgeRun& run, const std::string& what) {
    for (const std::string& secret : kSecrets) {
      EXPECT_THAT(run.out, Not(HasSubstr(secret))) << what;
      EXPECT_THAT(run.err, Not(HasSubstr(secret))) << what;
    }
  }

  TempDir dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(CheckConfigTest, PrintsEveryGoodConfigurationWithoutItsSecrets) {
  for (const char* name :
       {"minimal.yaml", "api_key_file.yaml", "zuliprc.yaml", "localhost_insecure.yaml",
        "systemd_credential.yaml", "kafka_secrets.yaml"}) {
    std::string path = dir_.Sub(std::string("good/") + name);
    BridgeRun run = RunBridge({"--check-config", "--config", path});
    EXPECT_EQ(run.exit_code, 0) << name << ": " << run.err;
    EXPECT_THAT(run.out, StartsWith("# " + path + ": configuration OK")) << name;
    EXPECT_THAT(run.out, HasSubstr("api_key: <redacted>")) << name;
    EXPECT_EQ(run.err, "") << name;
    ExpectNoSecret(run, name);
  }
}

TEST_F(CheckConfigTest, PrintsTheShippedExample) {
  std::string yaml = ReadFile(ZB_SOURCE_DIR "/config/zulip-bridge.example.yaml");
  size_t at = yaml.find("state_dir: /var/lib/zulip-bridge");
  ASSERT_NE(at, std::string::npos);
  yaml.replace(at, 32, "state_dir: state");
  std::ofstream(dir_.Sub("example.yaml")) << yaml;
  env_["ZULIP_API_KEY"] = "zbSecretKeyFromEnv0001";
  BridgeRun run = RunBridge({"--check-config", "--config", dir_.Sub("example.yaml")});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("name: analytics-bot"));
  ExpectNoSecret(run, "example");
}

TEST_F(CheckConfigTest, RefusesABrokenConfigurationWithFileLineColumnAndKey) {
  std::string path = dir_.Sub("broken.yaml");
  std::ofstream(path) << "kafka:\n"
                         "  brokers: [localhost:9092]\n"
                         "  properties:\n"
                         "    acks: 1\n"
                         "state_dir: state\n"
                         "accounts:\n"
                         "  - name: bot\n"
                         "    zuliprc: zuliprc/plain.zuliprc\n"
                         "    api_key_fle: secrets/bot.key\n";
  BridgeRun run = RunBridge({"--check-config", "--config", path});
  EXPECT_EQ(run.exit_code, 78);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err,
            "zulip-bridge: " + path +
                ":4:11: kafka.properties.acks: acks=1 would let a broker failure lose "
                "acknowledged events, breaking at-least-once delivery; expected all (or remove "
                "it)\n"
                "zulip-bridge: " +
                path +
                ":9:5: accounts[0].api_key_fle: unknown key; did you mean 'api_key_file'?\n");
  ExpectNoSecret(run, "broken");
}

TEST_F(CheckConfigTest, NeverPrintsTheKeyOfABrokenZuliprc) {
  std::ofstream(dir_.Sub("typo.zuliprc"))
      << "[api]\nkey=zbSecretKeyZuliprc0003\nemail=bot@example.com\nsite example.com\n";
  std::string path = dir_.Sub("typo.yaml");
  std::ofstream(path) << "kafka: {brokers: [localhost:9092]}\nstate_dir: state\n"
                         "accounts:\n  - {name: bot, zuliprc: typo.zuliprc}\n";
  BridgeRun run = RunBridge({"--check-config", "--config", path});
  EXPECT_EQ(run.exit_code, 78);
  EXPECT_EQ(run.err, "zulip-bridge: " + path + ":4:26: accounts[0].zuliprc: " +
                         dir_.Sub("typo.zuliprc") + ": line 4: expected name = value\n");
  ExpectNoSecret(run, "typo");
}

TEST_F(CheckConfigTest, DaemonRefusesToStartOnTheSameProblems) {
  std::string path = dir_.Sub("broken.yaml");
  std::ofstream(path) << "kafka: {brokers: [localhost:9092]}\nstate_dir: state\n"
                         "accounts:\n  - {name: bot, site: example.com, email: b@example.com, "
                         "api_key: \"${ZB_NOT_SET}\"}\n";
  BridgeRun run = RunBridge({"--config", path});
  EXPECT_EQ(run.exit_code, 78);
  EXPECT_EQ(run.err,
            "zulip-bridge: " + path +
                ":4:67: accounts[0].api_key: environment variable ZB_NOT_SET is not set\n");
}

TEST_F(CheckConfigTest, ReportsAnUnreadableConfigurationFile) {
  std::string path = dir_.Sub("missing.yaml");
  BridgeRun run = RunBridge({"--check-config", "--config", path});
  EXPECT_EQ(run.exit_code, 78);
  EXPECT_EQ(run.err, "zulip-bridge: " + path + ": No such file or directory\n");
}

TEST_F(CheckConfigTest, RefusesAnUnknownFlagAsUsageError) {
  BridgeRun run =
      RunBridge({"--check-config", "--online", "--config", dir_.Sub("good/minimal.yaml")});
  EXPECT_EQ(run.exit_code, 64);
}

}  // namespace
}  // namespace zb
