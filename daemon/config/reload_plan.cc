#include "daemon/config/reload_plan.h"

#include <algorithm>
#include <set>

namespace zb {

std::string ReloadPlan::Summary() const {
  if (!applies()) {
    std::string keys;
    for (const std::string& key : restart_only_changes) keys += (keys.empty() ? "" : ", ") + key;
    return "changed: " + keys +
           "; these apply only at a restart, so nothing was applied (restart zulip-bridge, or "
           "undo them and reload)";
  }
  return std::to_string(added.size()) + " added, " + std::to_string(removed) + " removed, " +
         std::to_string(restarted) + " restarted, " + std::to_string(unchanged) + " unchanged";
}

ReloadPlan PlanReload(const Config& running, const Config& next,
                      const std::vector<RunningAccount>& accounts) {
  ReloadPlan plan;
  if (next.state_dir != running.state_dir) plan.restart_only_changes.push_back("state_dir");
  if (next.http != running.http) plan.restart_only_changes.push_back("http");
  if (next.kafka.brokers != running.kafka.brokers) {
    plan.restart_only_changes.push_back("kafka.brokers");
  }
  if (next.kafka.properties != running.kafka.properties) {
    plan.restart_only_changes.push_back("kafka.properties");
  }
  if (next.dead_letter != running.dead_letter) plan.restart_only_changes.push_back("dead_letter");
  if (next.metrics != running.metrics) plan.restart_only_changes.push_back("metrics");
  if (!plan.applies()) return plan;

  const KafkaConfig& was = running.kafka;
  // Routing and retries are built into each account: every one is restarted to take them.
  const bool restart_all =
      next.kafka.topic_template != was.topic_template || next.kafka.topics != was.topics ||
      next.kafka.control_topic != was.control_topic || next.kafka.default_key != was.default_key ||
      next.kafka.keys != was.keys || next.retry != running.retry;
  plan.log_changed = next.log != running.log;

  std::set<std::string> names;
  for (const RunningAccount& account : accounts) {
    names.insert(account.config.name);
    auto wanted =
        std::find_if(next.accounts.begin(), next.accounts.end(),
                     [&](const AccountConfig& a) { return a.name == account.config.name; });
    ReloadPlan::Step step;
    step.slot = account.slot;
    if (account.retiring) {
      if (wanted == next.accounts.end()) {
        step.action = ReloadPlan::Action::kRetiringNowRemoved;
        ++plan.removed;
      } else {
        step.action = ReloadPlan::Action::kRetiringNowRestarted;
        step.next = *wanted;
        ++plan.restarted;
      }
    } else if (wanted == next.accounts.end()) {
      step.action = ReloadPlan::Action::kRemove;
      ++plan.removed;
    } else if (restart_all || !(*wanted == account.config) || account.parked) {
      // A parked account is retried even when its configuration is the same: what parked it
      // (a deactivated user, a key file) may have been fixed outside this file.
      step.action = ReloadPlan::Action::kRestart;
      step.next = *wanted;
      ++plan.restarted;
    } else {
      ++plan.unchanged;
    }
    plan.steps.push_back(std::move(step));
  }
  for (const AccountConfig& account : next.accounts) {
    if (!names.count(account.name)) plan.added.push_back(account);
  }
  return plan;
}

}  // namespace zb
