// AccountFleet: the daemon's accounts as one whole — which account lives in which slot, the
// group commit they share, how a reload is carried out on them, how delivery reports reach
// them, and the stop sequence. The Supervisor owns the process around it (state directory lock,
// event loop, HTTP transport, Kafka producer, health server, systemd); the deterministic
// simulation (tests/sim/) runs the same fleet against its model Zulip and Kafka.
//
// Slots: an account's Kafka tokens carry its slot in their top 16 bits (InFlightRecords), so a
// report finds its account. A slot whose account was dropped is not reused until the publisher
// has reported every record of it (the publisher's UnsettledTokens): a new account's tokens
// would collide with them. Records of a dropped account held after a failure are released at
// once: nothing would produce them again (they are above its durable watermark, so its queue
// has them), and held they would take room from every other account.
//
// Group commit: an account that staged a checkpoint asks for a commit; every account that asked
// during one loop turn shares one CheckpointStore::Commit at the end of it (group_commit.h).
//
// Reload (Apply): PlanReload decides (reload_plan.h); the fleet carries the plan out —
//   kept: untouched, queue and connection included;
//   removed: stopped; once Kafka acknowledged its records (however long that takes) and its
//     watermark is durable, its Zulip queue is deleted and its checkpoint removed;
//   added: started like at boot;
//   restarted: stopped, its records settled (up to kafka.flush_timeout_secs; any not
//     acknowledged by then are above the durable watermark, so its queue has them and they are
//     fetched again), then started from its checkpoint in a new slot or the same one.
//
// Stop (BeginShutdown): every account stops polling; deliveries are awaited up to
// kafka.flush_timeout_secs; the settled watermarks are committed; then `on_stopped` learns
// whether that last commit worked. Zulip queues are kept: the next start resumes them.
//
// Threads: the loop thread only (the scheduler's), every method and callback. Everything in
// FleetEnv is borrowed and outlives the fleet.
#ifndef ZB_DAEMON_PIPELINE_ACCOUNT_FLEET_H_
#define ZB_DAEMON_PIPELINE_ACCOUNT_FLEET_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/base/backoff.h"
#include "daemon/base/clock.h"
#include "daemon/base/metrics.h"
#include "daemon/base/scheduler.h"
#include "daemon/base/status.h"
#include "daemon/config/config.h"
#include "daemon/kafka/publisher.h"
#include "daemon/pipeline/account.h"
#include "daemon/pipeline/group_commit.h"
#include "daemon/state/checkpoint_store.h"
#include "daemon/state/dead_letter_spool.h"
#include "daemon/zulip/http_transport.h"

namespace zb {

// What the fleet borrows from the process.
struct FleetEnv {
  Scheduler& loop;
  HttpTransport& transport;
  ProcessPublisher& publisher;
  CheckpointStore& checkpoints;
  DeadLetterSpool& dead_letters;
  MetricsRegistry& metrics;
  Clock& clock;
  // Called once the stop sequence's last commit was attempted, with its result. From a posted
  // task or a timer, never from inside BeginShutdown; the fleet may be destroyed in it.
  std::function<void(const Status& final_commit)> on_stopped;
  // Called when an account was dropped (a reload finished retiring it): /readyz may refresh.
  std::function<void()> on_accounts_changed;
  // The seeds of the accounts' backoff jitter; unset: from std::random_device (AccountEnv).
  std::function<uint64_t()> backoff_seeds;
};

// What a reload did (ReloadPlan::Summary()), or why it did nothing.
struct FleetReload {
  bool applied = false;
  std::string summary;
};

// The accounts' retry settings (and the producer rebuilder's: a dead producer holds every
// account, as a failing Zulip holds one).
BackoffPolicy RetryBackoff(const RetryConfig& retry);

class AccountFleet {
 public:
  AccountFleet(Config config, FleetEnv env);
  ~AccountFleet();
  AccountFleet(const AccountFleet&) = delete;
  AccountFleet& operator=(const AccountFleet&) = delete;

  // Builds every configured account and starts each from its durable checkpoint, spread out
  // so that thousands of accounts do not register in the same instant. Warns about (and keeps)
  // checkpoints of accounts the configuration does not name (docs/decisions.md).
  void Start();

  // Carries out `next` as described above, or nothing if PlanReload says it cannot apply.
  // Log settings are the caller's: the fleet only keeps them in config().
  FleetReload Apply(Config next);

  // Reports from the publisher, in the order it made them.
  void OnDeliveries(const std::vector<DeliveryReport>& reports);

  // Starts the stop sequence described above. Idempotent; a reload is refused from then on.
  void BeginShutdown();
  bool stopping() const { return stopping_; }

  // The running configuration (the last applied).
  const Config& config() const { return config_; }
  std::vector<AccountSnapshot> Snapshots() const;
  // "N polling, N backing off, N parked, N starting; N events forwarded".
  std::string StatusLine() const;
  // Accounts built (started or not, retiring included).
  size_t size() const;
  // Slots whose dropped account still has records to be reported.
  size_t draining_slots() const { return draining_slots_.size(); }

 private:
  // An account being stopped by a reload, until its records settled.
  struct Retirement {
    bool remove = false;  // true: delete its queue and checkpoint; false: start `next`
    std::optional<AccountConfig> next;
    Scheduler::TimerId deadline = 0;
    bool finishing = false;
  };

  // The durable checkpoints of accounts the configuration does not name, and their gauge.
  std::vector<Checkpoint> UnconfiguredCheckpoints() const;
  void CountUnconfiguredCheckpoints();
  // Builds an account in a free slot and starts it from its durable checkpoint after `delay`.
  void AddAccount(const AccountConfig& account_config, Clock::Duration delay);
  void Retire(uint16_t slot, bool remove, std::optional<AccountConfig> next);
  void MaybeFinishRetirement(uint16_t slot);
  void FinishRetirement(uint16_t slot);
  void FinishRemoval(uint16_t slot, bool queue_gone);
  // Destroys the account in `slot` (see "Slots" above).
  void DropAccount(uint16_t slot);
  void MaybeFreeSlot(uint16_t slot);
  // A report for a slot whose account was dropped.
  void SettleDrainingSlot(const DeliveryReport& report);
  void CountDrainingSlots();
  // Cancels the delayed Start of the account in `slot`, if it has not run yet.
  void CancelStart(uint16_t slot);
  void RequestCommit(Account* account);
  void MaybeFinishShutdown();
  void FinishShutdown();

  Config config_;
  FleetEnv env_;
  std::vector<std::unique_ptr<Account>> accounts_;  // index = slot; null: free
  std::vector<uint16_t> free_slots_;
  // Slots of dropped accounts, with the tokens the publisher has still to report for them.
  std::map<uint16_t, std::set<uint64_t>> draining_slots_;
  std::map<uint16_t, Retirement> retiring_;
  std::map<uint16_t, Scheduler::TimerId> start_timers_;  // accounts not started yet
  GroupCommit group_commit_;
  bool stopping_ = false;
  bool stopped_ = false;
  Scheduler::TimerId flush_deadline_ = 0;
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_ACCOUNT_FLEET_H_
