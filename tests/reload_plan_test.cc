// The reload plan as a table: a running configuration, its accounts, a new configuration, and
// what each account is to do. No clock, no disk, no accounts.
#include "daemon/config/reload_plan.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace zb {
namespace {

using Action = ReloadPlan::Action;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

AccountConfig Named(const std::string& name) {
  AccountConfig account;
  account.name = name;
  account.site = "https://chat.example.com";
  account.email = name + "-bot@example.com";
  return account;
}

Config With(std::vector<AccountConfig> accounts) {
  Config config;
  config.state_dir = "/var/lib/zulip-bridge";
  config.accounts = std::move(accounts);
  return config;
}

std::vector<RunningAccount> Running(const Config& config) {
  std::vector<RunningAccount> running;
  uint16_t slot = 0;
  for (const AccountConfig& account : config.accounts) running.push_back({slot++, account});
  return running;
}

std::vector<Action> Actions(const ReloadPlan& plan) {
  std::vector<Action> actions;
  for (const ReloadPlan::Step& step : plan.steps) actions.push_back(step.action);
  return actions;
}

TEST(ReloadPlanTest, AddedRemovedAndUnchangedAccountsByName) {
  Config running = With({Named("alpha"), Named("beta")});
  Config next = With({Named("alpha"), Named("gamma")});
  ReloadPlan plan = PlanReload(running, next, Running(running));
  ASSERT_TRUE(plan.applies());
  EXPECT_THAT(Actions(plan), ElementsAre(Action::kKeep, Action::kRemove));
  ASSERT_EQ(plan.added.size(), 1u);
  EXPECT_EQ(plan.added[0].name, "gamma");
  EXPECT_EQ(plan.Summary(), "1 added, 1 removed, 0 restarted, 1 unchanged");
}

TEST(ReloadPlanTest, AChangedAccountIsRestartedWithItsNewConfiguration) {
  Config running = With({Named("alpha"), Named("beta")});
  Config next = running;
  next.accounts[1].apply_markdown = !next.accounts[1].apply_markdown;
  ReloadPlan plan = PlanReload(running, next, Running(running));
  EXPECT_THAT(Actions(plan), ElementsAre(Action::kKeep, Action::kRestart));
  ASSERT_TRUE(plan.steps[1].next.has_value());
  EXPECT_EQ(plan.steps[1].next->apply_markdown, next.accounts[1].apply_markdown);
}

TEST(ReloadPlanTest, AParkedAccountIsRetriedEvenWhenUnchanged) {
  Config running = With({Named("alpha")});
  std::vector<RunningAccount> accounts = Running(running);
  accounts[0].parked = true;
  ReloadPlan plan = PlanReload(running, running, accounts);
  EXPECT_THAT(Actions(plan), ElementsAre(Action::kRestart));
}

TEST(ReloadPlanTest, RoutingOrRetryChangesRestartEveryAccount) {
  Config running = With({Named("alpha"), Named("beta")});
  for (int change = 0; change < 3; ++change) {
    Config next = running;
    if (change == 0) next.kafka.topic_template = "chat.{account}.{type}";
    if (change == 1) next.kafka.control_topic = "bridge.control";
    if (change == 2) next.retry.max_backoff_ms += 1;
    ReloadPlan plan = PlanReload(running, next, Running(running));
    EXPECT_THAT(Actions(plan), ElementsAre(Action::kRestart, Action::kRestart)) << change;
  }
}

TEST(ReloadPlanTest, ARestartOnlyChangeAppliesNothingAndNamesEachKey) {
  Config running = With({Named("alpha")});
  Config next = With({Named("alpha"), Named("beta")});
  next.state_dir = "/elsewhere";
  next.kafka.brokers = {"kafka:9092"};
  ReloadPlan plan = PlanReload(running, next, Running(running));
  EXPECT_FALSE(plan.applies());
  EXPECT_THAT(plan.restart_only_changes, ElementsAre("state_dir", "kafka.brokers"));
  EXPECT_TRUE(plan.steps.empty());
  EXPECT_TRUE(plan.added.empty()) << "beta was started although nothing may be applied";
  EXPECT_THAT(plan.Summary(), HasSubstr("changed: state_dir, kafka.brokers"));
}

TEST(ReloadPlanTest, AnAccountStillRetiringEndsTheWayTheNewConfigurationSays) {
  Config running = With({Named("alpha"), Named("beta")});
  std::vector<RunningAccount> accounts = Running(running);
  accounts[0].retiring = true;
  accounts[1].retiring = true;
  Config next = With({Named("beta")});
  ReloadPlan plan = PlanReload(running, next, accounts);
  EXPECT_THAT(Actions(plan),
              ElementsAre(Action::kRetiringNowRemoved, Action::kRetiringNowRestarted));
  EXPECT_TRUE(plan.added.empty()) << "a retiring account is not started a second time";
  EXPECT_EQ(plan.Summary(), "0 added, 1 removed, 1 restarted, 0 unchanged");
}

TEST(ReloadPlanTest, ALogChangeIsAppliedWithoutTouchingAccounts) {
  Config running = With({Named("alpha")});
  Config next = running;
  next.log.level = LogLevel::kDebug;
  ReloadPlan plan = PlanReload(running, next, Running(running));
  EXPECT_TRUE(plan.log_changed);
  EXPECT_THAT(Actions(plan), ElementsAre(Action::kKeep));
}

}  // namespace
}  // namespace zb
