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

class OperatorCommandsTest : public BridgeTest {
 protected:
  void SetUp() override {
    BridgeTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    zulip_ = std::make_unique<FakeZulip>(dir_.path(), std::vector<FakeZulip::User>{{kBot, kKey}});
    WriteFile(dir_.Sub("ops.key"), std::string(kKey) + "\n");
    WriteFile(config_path(),
              "kafka:\n  brokers: [" + brokers_ + "]\n  topic_template: \"" + UniqueTopic("zbops") +
                  ".{type}\"\nstate_dir: " + dir_.Sub("state") +
                  "\nhttp:\n  listen: 127.0.0.1:" + std::to_string(FreeLoopbackPort()) +
                  "\naccounts:\n" + AccountYaml("ops", zulip_->site(), kBot, dir_.Sub("ops.key")));
  }

  std::string StartDaemonAndWaitForItsQueue() {
    StartBridge();
    std::string queue = zulip_->WaitForOneQueue(kBot);
    EXPECT_FALSE(queue.empty()) << "the daemon registered no queue";
    return queue;
  }

  std::unique_ptr<FakeZulip> zulip_;
};

TEST_F(OperatorCommandsTest, StatusShowsTheRunningDaemonsAccountsAndFailsWhenNoneRuns) {
  auto [down_code, down] = RunCommand({"status"});
  EXPECT_EQ(down_code, 1);
  EXPECT_NE(down.find("is it running?"), std::string::npos) << down;

  std::string queue = StartDaemonAndWaitForItsQueue();
  std::string table;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto [code, out] = RunCommand({"status"});
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
        auto [code, out] = RunCommand({"status"});
        table = out;
        return code == 0 && out.find(" ago") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << table;
}

TEST_F(OperatorCommandsTest, DecommissionDeletesTheQueueOnlyWithTheDaemonStopped) {
  std::string queue = StartDaemonAndWaitForItsQueue();
  auto [busy_code, busy] = RunCommand({"decommission", "ops"});
  EXPECT_EQ(busy_code, 1) << busy;
  EXPECT_NE(busy.find("in use by another zulip-bridge"), std::string::npos) << busy;
  EXPECT_EQ(zulip_->QueuesOf(kBot), std::vector<std::string>{queue});

  ASSERT_NO_FATAL_FAILURE(StopBridge());
  auto [code, out] = RunCommand({"decommission", "ops"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(queue + " deleted"), std::string::npos) << out;
  EXPECT_TRUE(zulip_->QueuesOf(kBot).empty()) << "the queue is still on Zulip";

  auto [unknown_code, unknown] = RunCommand({"decommission", "nobody"});
  EXPECT_EQ(unknown_code, 64) << unknown;
  EXPECT_NE(unknown.find("\"nobody\" is not in the configuration"), std::string::npos);
}

}  // namespace
}  // namespace zb::testing
