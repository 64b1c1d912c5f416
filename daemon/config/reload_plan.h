// The reload plan: what a new configuration does to the running daemon, decided without
// touching it (no clock, no disk, no accounts), so that the rules of a reload can be tested as a
// table. The fleet carries the plan out (pipeline/account_fleet.cc, AccountFleet::Apply).
//
// The rules (README "Reload"): all or nothing; a change to a restart-only key (state_dir, http,
// kafka.brokers, kafka.properties, dead_letter, metrics) applies nothing and says which; else, by
// account name: unchanged → kept; added → started; removed → retired and its queue deleted;
// changed, parked (retried by every reload), or every account when Kafka routing or retry
// changed → restarted on the same queue after its records settle. An account still settling
// from an earlier reload ends the way the new configuration says: removed, or restarted with
// the new configuration (a removal not yet past its queue's deletion becomes a restart).
//
// Pure functions of their arguments; any thread.
#ifndef ZB_DAEMON_CONFIG_RELOAD_PLAN_H_
#define ZB_DAEMON_CONFIG_RELOAD_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/config/config.h"

namespace zb {

// What the plan needs to know of one running account.
struct RunningAccount {
  uint16_t slot = 0;
  AccountConfig config;
  bool parked = false;
  bool retiring = false;  // being stopped by an earlier reload, records still settling
};

struct ReloadPlan {
  enum class Action {
    kKeep,                  // untouched: same queue, same connection
    kRemove,                // retire and delete its queue and checkpoint
    kRestart,               // retire, then start `next` on the same queue
    kRetiringNowRemoved,    // already retiring: end by removal
    kRetiringNowRestarted,  // already retiring: end by starting `next`
  };
  struct Step {
    uint16_t slot = 0;
    Action action = Action::kKeep;
    std::optional<AccountConfig> next;  // kRestart, kRetiringNowRestarted
  };

  // Set when nothing may be applied: the restart-only keys that changed, in a fixed order.
  std::vector<std::string> restart_only_changes;
  bool log_changed = false;
  std::vector<Step> steps;           // one per running account, in the order given
  std::vector<AccountConfig> added;  // in the new configuration's order
  size_t removed = 0, restarted = 0, unchanged = 0;

  bool applies() const { return restart_only_changes.empty(); }
  // "1 added, 1 removed, 0 restarted, 1 unchanged", or why nothing was applied.
  std::string Summary() const;
};

ReloadPlan PlanReload(const Config& running, const Config& next,
                      const std::vector<RunningAccount>& accounts);

}  // namespace zb

#endif  // ZB_DAEMON_CONFIG_RELOAD_PLAN_H_
