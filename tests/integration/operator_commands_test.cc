// The operator's commands against the real binary (issues 9 and 10): `zulip-bridge status` asks
// a running daemon for its accounts; `zulip-bridge decommission ACCOUNT` deletes the account's
// Zulip queue and checkpoint, and refuses while a daemon holds the state directory. Each test
// fails when the command's behaviour breaks: a table without the account or its state, a
// decommission that leaves the queue on Zulip, or one that races a running daemon.
#include <signal.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/bridge_harness.h"
#include "tests/test_support.h"

namespace zb::testing {
namespace {

constexpr char kBot[] = "ops-bot@example.com";
constexpr char kKey[] = "opsKey456789abcdefghijklmnopqrst";

class OperatorCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    brokers_ = KafkaBrokersFromEnv();
    if (brokers_.empty()) {
      if (RunningInCi()) FAIL() << "ZB_KAFKA_BROKERS is not set under CI";
      GTEST_SKIP() << "ZB_KAFKA_BROKERS is not set; run the tests through ./dev test";
    }
    zulip_ = std::make_unique<FakeZulip>(dir_.path(), std::vector<FakeZulip::User>{{kBot, kKey}});
    WriteFile(dir_.Sub("ops.key"), std::string(kKey) + "\n");
    WriteFile(config(), "kafka:\n  brokers: [" + brokers_ + "]\n  topic_template: \"" +
                            UniqueTopic("zbops") + ".{type}\"\nstate_dir: " + dir_.Sub("state") +
                            "\nhttp:\n  listen: 127.0.0.1:" + std::to_string(FreeLoopbackPort()) +
                            "\naccounts:\n  - name: ops\n    site: " + zulip_->site() +
                            "\n    email: " + kBot + "\n    api_key_file: " + dir_.Sub("ops.key") +
                            "\n");
  }

  void TearDown() override {
    if (HasFailure() && bridge_) std::cerr << "---- bridge log ----\n" << bridge_->Log();
  }

  std::string config() const { return dir_.Sub("zulip-bridge.yaml"); }

  // Runs `zulip-bridge <args> --config F` to the end; its exit code and output.
  std::pair<int, std::string> Command(std::vector<std::string> args) {
    args.insert(args.begin(), BridgeBinary());
    args.push_back("--config");
    args.push_back(config());
    std::string log = dir_.Sub("command-" + std::to_string(++commands_) + ".out");
    Subprocess command(args, log);
    std::optional<int> code = command.Wait(std::chrono::seconds(60));
    EXPECT_TRUE(code.has_value()) << args[1] << " did not finish";
    return {code.value_or(-1), command.Log()};
  }

  std::string StartDaemonAndWaitForItsQueue() {
    bridge_ = std::make_unique<Subprocess>(
        std::vector<std::string>{BridgeBinary(), "--config", config()}, dir_.Sub("bridge.log"));
    std::string queue;
    EXPECT_TRUE(WaitFor(
        [&] {
          std::vector<std::string> queues = zulip_->QueuesOf(kBot);
          if (queues.size() != 1) return false;
          queue = queues[0];
          return true;
        },
        std::chrono::seconds(30)));
    return queue;
  }

  TempDir dir_;
  std::string brokers_;
  std::unique_ptr<FakeZulip> zulip_;
  std::unique_ptr<Subprocess> bridge_;
  int commands_ = 0;
};

TEST_F(OperatorCommandsTest, StatusShowsTheRunningDaemonsAccountsAndFailsWhenNoneRuns) {
  auto [down_code, down] = Command({"status"});
  EXPECT_EQ(down_code, 1);
  EXPECT_NE(down.find("is it running?"), std::string::npos) << down;

  std::string queue = StartDaemonAndWaitForItsQueue();
  std::string table;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto [code, out] = Command({"status"});
        table = out;
        // The snapshot is refreshed every second: wait for the polling state and its queue.
        return code == 0 && out.find("polling") != std::string::npos &&
               out.find(queue) != std::string::npos;
      },
      std::chrono::seconds(30)))
      << table;
  EXPECT_NE(table.find("ACCOUNT"), std::string::npos) << table;
  EXPECT_NE(table.find("ops "), std::string::npos) << table;
  EXPECT_EQ(table.find(kKey), std::string::npos);
  EXPECT_EQ(table.find(" ago"), std::string::npos) << "a last event before any event\n" << table;

  // An event: the LAST EVENT column shows its age.
  ASSERT_EQ(zulip_
                ->PushEvent(kBot, R"({"type":"typing","op":"start","sender":{"user_id":4,)"
                                  R"("email":"x@example.com"},"recipients":[]})")
                .size(),
            1u);
  EXPECT_TRUE(WaitFor(
      [&] {
        auto [code, out] = Command({"status"});
        table = out;
        return code == 0 && out.find(" ago") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << table;
}

TEST_F(OperatorCommandsTest, DecommissionDeletesTheQueueOnlyWithTheDaemonStopped) {
  std::string queue = StartDaemonAndWaitForItsQueue();
  auto [busy_code, busy] = Command({"decommission", "ops"});
  EXPECT_EQ(busy_code, 1) << busy;
  EXPECT_NE(busy.find("in use by another zulip-bridge"), std::string::npos) << busy;
  EXPECT_EQ(zulip_->QueuesOf(kBot), std::vector<std::string>{queue});

  bridge_->Signal(SIGTERM);
  ASSERT_EQ(bridge_->Wait(std::chrono::seconds(40)), 0);
  auto [code, out] = Command({"decommission", "ops"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(queue + " deleted"), std::string::npos) << out;
  EXPECT_TRUE(zulip_->QueuesOf(kBot).empty()) << "the queue is still on Zulip";

  auto [unknown_code, unknown] = Command({"decommission", "nobody"});
  EXPECT_EQ(unknown_code, 64) << unknown;
  EXPECT_NE(unknown.find("\"nobody\" is not in the configuration"), std::string::npos);
}

}  // namespace
}  // namespace zb::testing
