#include "daemon/pipeline/account_fleet.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "daemon/base/log.h"
#include "daemon/base/version.h"
#include "daemon/config/reload_plan.h"

namespace zb {
namespace {

// Accounts start this far apart, so that a daemon with thousands of accounts does not open
// thousands of connections to one Zulip server in the same instant.
constexpr auto kRegistrationSpacing = std::chrono::milliseconds(10);
// Account tokens carry the slot in 16 bits.
constexpr size_t kMaxSlot = 0xffff;

KeyMode ToKeyMode(KeyChoice choice) {
  return choice == KeyChoice::kConversation ? KeyMode::kConversation : KeyMode::kAccount;
}

EventRouterOptions RouterOptions(const KafkaConfig& kafka, const AccountConfig& account) {
  EventRouterOptions options;
  options.topic_template = kafka.topic_template;
  for (const auto& [type, topic] : kafka.topics) options.topic_overrides.emplace(type, topic);
  options.control_topic = kafka.control_topic;
  options.default_key_mode = ToKeyMode(kafka.default_key);
  for (const auto& [type, key] : kafka.keys) options.key_modes.emplace(type, ToKeyMode(key));
  options.site = account.site;
  options.bridge_version = kBridgeVersion;
  return options;
}

}  // namespace

BackoffPolicy RetryBackoff(const RetryConfig& retry) {
  BackoffPolicy backoff;
  backoff.base = std::chrono::milliseconds(retry.initial_backoff_ms);
  backoff.cap = std::chrono::milliseconds(retry.max_backoff_ms);
  return backoff;
}

AccountFleet::AccountFleet(Config config, FleetEnv env)
    : config_(std::move(config)), env_(std::move(env)) {}

AccountFleet::~AccountFleet() {
  for (const auto& [slot, timer] : start_timers_) env_.loop.CancelTimer(timer);
  for (const auto& [slot, retirement] : retiring_) env_.loop.CancelTimer(retirement.deadline);
  env_.loop.CancelTimer(flush_deadline_);
}

void AccountFleet::Start() {
  ZB_DCHECK_ON_LOOP(env_.loop);
  for (const Checkpoint& checkpoint : UnconfiguredCheckpoints()) {
    // The account was removed from the configuration while the daemon was stopped. Its
    // credentials went with it, so its queue cannot be deleted from here, and the queue still
    // holds every event past the checkpoint: forgetting the checkpoint would lose them should
    // the account come back (it would register a new queue). Keep it, and say how to retire the
    // account for good (docs/decisions.md).
    LogWarn(
        "keeping the checkpoint of an account no longer configured; its Zulip queue lives on "
        "until its lifespan ends. Put the account back to resume it, or retire it with "
        "zulip-bridge decommission " +
            checkpoint.account +
            " (daemon stopped, with a configuration that has its credentials and this "
            "state_dir)",
        {{"account", checkpoint.account}, {"queue_id", checkpoint.queue_id}});
  }
  CountUnconfiguredCheckpoints();
  CountDrainingSlots();
  for (size_t i = 0; i < config_.accounts.size(); ++i) {
    AddAccount(config_.accounts[i], kRegistrationSpacing * static_cast<int>(i));
  }
}

std::vector<Checkpoint> AccountFleet::UnconfiguredCheckpoints() const {
  std::vector<Checkpoint> unconfigured;
  for (Checkpoint& checkpoint : env_.checkpoints.LoadAll()) {
    const std::string& name = checkpoint.account;
    if (std::none_of(config_.accounts.begin(), config_.accounts.end(),
                     [&](const AccountConfig& a) { return a.name == name; })) {
      unconfigured.push_back(std::move(checkpoint));
    }
  }
  return unconfigured;
}

void AccountFleet::CountUnconfiguredCheckpoints() {
  env_.metrics
      .GetGauge("zb_unconfigured_checkpoints",
                "Checkpoints of accounts no longer configured, kept (their Zulip queues live on "
                "until their lifespan ends; zulip-bridge decommission retires them)")
      .Set(static_cast<double>(UnconfiguredCheckpoints().size()));
}

void AccountFleet::AddAccount(const AccountConfig& account_config, Clock::Duration delay) {
  uint16_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else if (accounts_.size() <= kMaxSlot) {
    slot = static_cast<uint16_t>(accounts_.size());
    accounts_.emplace_back();
  } else {
    LogError("too many accounts for one daemon; not starting this one",
             {{"account", account_config.name}, {"limit", kMaxSlot + 1}});
    return;
  }
  AccountEnv env{
      env_.loop,         env_.transport, env_.publisher, env_.checkpoints,
      env_.dead_letters, env_.metrics,   env_.clock,     [this](Account& a) { RequestCommit(&a); }};
  env.per_account_type_metrics = config_.metrics.per_account_type;
  if (env_.backoff_seeds) env.backoff_seed = env_.backoff_seeds();
  accounts_[slot] =
      std::make_unique<Account>(account_config, RouterOptions(config_.kafka, account_config),
                                RetryBackoff(config_.retry), slot, env);
  Account* raw = accounts_[slot].get();
  std::optional<Checkpoint> checkpoint;
  if (StatusOr<Checkpoint> loaded = env_.checkpoints.Load(account_config.name); loaded.ok()) {
    checkpoint = std::move(*loaded);
  }
  start_timers_[slot] = env_.loop.AddTimer(delay, [this, slot, raw, checkpoint] {
    start_timers_.erase(slot);
    raw->Start(checkpoint);
  });
}

FleetReload AccountFleet::Apply(Config next) {
  ZB_DCHECK_ON_LOOP(env_.loop);
  if (stopping_) return {false, "the daemon is stopping"};
  std::vector<RunningAccount> running;
  for (size_t i = 0; i < accounts_.size(); ++i) {
    if (!accounts_[i]) continue;
    const auto slot = static_cast<uint16_t>(i);
    running.push_back({slot, accounts_[slot]->config(),
                       accounts_[slot]->state() == AccountState::kParked,
                       retiring_.count(slot) > 0});
  }
  ReloadPlan plan = PlanReload(config_, next, running);
  if (!plan.applies()) return {false, plan.Summary()};

  config_.kafka = next.kafka;
  config_.retry = next.retry;
  config_.log = next.log;
  for (ReloadPlan::Step& step : plan.steps) {
    switch (step.action) {
      case ReloadPlan::Action::kKeep:
        break;
      case ReloadPlan::Action::kRemove:
        Retire(step.slot, /*remove=*/true, std::nullopt);
        break;
      case ReloadPlan::Action::kRestart:
        Retire(step.slot, /*remove=*/false, std::move(step.next));
        break;
      case ReloadPlan::Action::kRetiringNowRemoved: {
        Retirement& retirement = retiring_.at(step.slot);
        retirement.next.reset();
        if (!retirement.finishing) {
          retirement.remove = true;
          env_.loop.CancelTimer(retirement.deadline);
          retirement.deadline = 0;
        }
        break;
      }
      case ReloadPlan::Action::kRetiringNowRestarted: {
        Retirement& retirement = retiring_.at(step.slot);
        retirement.next = std::move(step.next);
        // A removal not yet past its queue's deletion becomes a restart on the same queue.
        if (!retirement.finishing) retirement.remove = false;
        break;
      }
    }
  }
  size_t position = 0;
  for (const AccountConfig& account : plan.added) {
    AddAccount(account, kRegistrationSpacing * static_cast<int>(position++));
  }
  config_.accounts = std::move(next.accounts);
  CountUnconfiguredCheckpoints();
  return {true, plan.Summary()};
}

void AccountFleet::Retire(uint16_t slot, bool remove, std::optional<AccountConfig> next) {
  Account& account = *accounts_[slot];
  CancelStart(slot);
  account.Stop();
  Retirement& retirement = retiring_[slot];
  retirement.remove = remove;
  retirement.next = std::move(next);
  if (!remove) {
    // A restart waits a bounded time: records still unacknowledged after it are above the
    // durable watermark, so the restarted account fetches them again from its queue. A removal
    // has no later chance, so it waits for Kafka however long it takes.
    retirement.deadline =
        env_.loop.AddTimer(std::chrono::seconds(config_.kafka.flush_timeout_secs), [this, slot] {
          if (auto it = retiring_.find(slot); it != retiring_.end()) it->second.deadline = 0;
          FinishRetirement(slot);
        });
  }
  LogAccount(LogLevel::kInfo, account.name(),
             remove ? "removed by reload; stopping once Kafka acknowledged its events"
                    : "restarting for the new configuration",
             {{"in_flight", account.in_flight()}});
  env_.loop.Post([this, slot] { MaybeFinishRetirement(slot); });
}

void AccountFleet::MaybeFinishRetirement(uint16_t slot) {
  if (stopping_ || !retiring_.count(slot) || accounts_[slot]->in_flight() > 0) return;
  FinishRetirement(slot);
}

void AccountFleet::FinishRetirement(uint16_t slot) {
  auto it = retiring_.find(slot);
  if (stopping_ || it == retiring_.end() || it->second.finishing) return;
  Retirement& retirement = it->second;
  retirement.finishing = true;
  env_.loop.CancelTimer(retirement.deadline);
  retirement.deadline = 0;
  Account& account = *accounts_[slot];
  if (account.in_flight() > 0) {
    LogAccount(LogLevel::kWarn, account.name(),
               "restarting with events Kafka has not acknowledged; they will be fetched again",
               {{"unacknowledged", account.in_flight()}});
  }
  account.StageFinalCheckpoint();
  Status committed = env_.checkpoints.Commit();
  if (!committed.ok()) {
    LogError("checkpoint commit failed",
             {{"account", account.name()}, {"error", committed.message()}});
  }
  if (retirement.remove && committed.ok()) {
    account.DeleteQueueAtZulip([this, slot](bool gone) {
      // Not from inside the account's own callback: the account is destroyed there.
      env_.loop.Post([this, slot, gone] { FinishRemoval(slot, gone); });
    });
    return;
  }
  std::optional<AccountConfig> next = std::move(retirement.next);
  std::string name = account.name();
  if (retirement.remove) {
    // The watermark could not be made durable: keep the queue and the checkpoint (Zulip keeps
    // the events) rather than delete what was not safely forwarded.
    LogAccount(LogLevel::kError, name,
               "removed account stopped with its queue and checkpoint kept (checkpoint not "
               "durable); run zulip-bridge decommission once the state directory is writable");
  }
  retiring_.erase(it);
  DropAccount(slot);
  if (next) AddAccount(*next, Clock::Duration::zero());
  CountUnconfiguredCheckpoints();
}

void AccountFleet::FinishRemoval(uint16_t slot, bool queue_gone) {
  auto it = retiring_.find(slot);
  if (stopping_ || it == retiring_.end()) return;
  std::optional<AccountConfig> next = std::move(it->second.next);
  retiring_.erase(it);
  std::string name = accounts_[slot]->name();
  DropAccount(slot);
  Status removed = env_.checkpoints.Remove(name);
  if (!removed.ok()) {
    LogError("could not remove checkpoint", {{"account", name}, {"error", removed.message()}});
  }
  env_.metrics.RemoveSeriesWithLabel("account", name);
  LogInfo("account removed", {{"account", name}, {"queue_deleted", queue_gone}});
  if (next) AddAccount(*next, Clock::Duration::zero());
  CountUnconfiguredCheckpoints();
}

void AccountFleet::CancelStart(uint16_t slot) {
  if (auto it = start_timers_.find(slot); it != start_timers_.end()) {
    env_.loop.CancelTimer(it->second);
    start_timers_.erase(it);
  }
}

void AccountFleet::DropAccount(uint16_t slot) {
  CancelStart(slot);
  Account* account = accounts_[slot].get();
  commit_waiters_.erase(account);
  accounts_[slot].reset();
  // Records of the dropped account held after a failure are given up at once (see "Slots");
  // those still in the producer's hands are waited for in OnDeliveries.
  std::set<uint64_t>& outstanding = draining_slots_[slot];
  for (uint64_t token : env_.publisher.UnsettledTokens()) {
    if (Account::SlotOfToken(token) != slot) continue;
    if (env_.publisher.Release(token).ok()) continue;
    outstanding.insert(token);
  }
  // Freed from a posted task, never here: a report posted before this point (already off the
  // publisher's books) may still be queued on the loop, and must not reach a new account.
  env_.loop.Post([this, slot] { MaybeFreeSlot(slot); });
  CountDrainingSlots();
  if (env_.on_accounts_changed) env_.on_accounts_changed();
}

void AccountFleet::MaybeFreeSlot(uint16_t slot) {
  auto it = draining_slots_.find(slot);
  if (it == draining_slots_.end() || !it->second.empty()) return;
  draining_slots_.erase(it);
  free_slots_.push_back(slot);
  CountDrainingSlots();
}

void AccountFleet::SettleDrainingSlot(const DeliveryReport& report) {
  const uint16_t slot = Account::SlotOfToken(report.token);
  auto it = draining_slots_.find(slot);
  if (it == draining_slots_.end()) return;
  // A failed record of a dropped account is given up as in DropAccount. NotFound: it is in
  // flight again (a producer rebuild re-produced it), so another report follows.
  if (report.outcome != DeliveryReport::Outcome::kDelivered &&
      !env_.publisher.Release(report.token).ok()) {
    return;
  }
  it->second.erase(report.token);
  if (it->second.empty()) env_.loop.Post([this, slot] { MaybeFreeSlot(slot); });
}

void AccountFleet::CountDrainingSlots() {
  env_.metrics
      .GetGauge("zb_account_slots_draining",
                "Slots of accounts stopped by a reload whose last Kafka records are not yet "
                "settled (not reused until they are)")
      .Set(static_cast<double>(draining_slots_.size()));
}

void AccountFleet::OnDeliveries(const std::vector<DeliveryReport>& reports) {
  ZB_DCHECK_ON_LOOP(env_.loop);
  for (const DeliveryReport& report : reports) {
    uint16_t slot = Account::SlotOfToken(report.token);
    if (slot < accounts_.size() && accounts_[slot]) {
      accounts_[slot]->OnDelivery(report);
    } else {
      SettleDrainingSlot(report);
    }
  }
  for (auto& account : accounts_) {
    if (account) account->OnProducerRoom();
  }
  if (!retiring_.empty()) {
    std::vector<uint16_t> slots;
    for (const auto& [slot, retirement] : retiring_) slots.push_back(slot);
    for (uint16_t slot : slots) MaybeFinishRetirement(slot);
  }
  if (stopping_) MaybeFinishShutdown();
}

void AccountFleet::RequestCommit(Account* account) {
  commit_waiters_.insert(account);
  if (commit_scheduled_) return;
  commit_scheduled_ = true;
  // Posted tasks run after the events of this turn: every account that advanced in it shares
  // one durable write.
  env_.loop.Post([this] { CommitNow(); });
}

void AccountFleet::CommitNow() {
  commit_scheduled_ = false;
  std::set<Account*> waiters;
  waiters.swap(commit_waiters_);
  if (stopped_) return;
  Status committed = env_.checkpoints.Commit();
  if (!committed.ok()) {
    LogError("checkpoint commit failed; the affected accounts stop acknowledging",
             {{"error", committed.message()}, {"accounts", waiters.size()}});
  }
  for (Account* account : waiters) account->OnCommitted(committed);
}

void AccountFleet::BeginShutdown() {
  ZB_DCHECK_ON_LOOP(env_.loop);
  if (stopping_) return;
  stopping_ = true;
  size_t in_flight = 0;
  for (auto& account : accounts_) {
    if (!account) continue;
    account->Stop();
    in_flight += account->in_flight();
  }
  LogInfo("stopping: waiting for Kafka to acknowledge outstanding events",
          {{"in_flight", in_flight}, {"flush_timeout_secs", config_.kafka.flush_timeout_secs}});
  flush_deadline_ =
      env_.loop.AddTimer(std::chrono::seconds(config_.kafka.flush_timeout_secs), [this] {
        flush_deadline_ = 0;
        FinishShutdown();
      });
  // From a posted task, so that on_stopped never runs inside BeginShutdown.
  env_.loop.Post([this] { MaybeFinishShutdown(); });
}

void AccountFleet::MaybeFinishShutdown() {
  for (auto& account : accounts_) {
    if (account && account->in_flight() > 0) return;
  }
  FinishShutdown();
}

void AccountFleet::FinishShutdown() {
  if (stopped_) return;
  stopped_ = true;
  env_.loop.CancelTimer(flush_deadline_);
  flush_deadline_ = 0;
  size_t unacknowledged = 0;
  for (auto& account : accounts_) {
    if (!account) continue;
    account->StageFinalCheckpoint();
    unacknowledged += account->in_flight();
  }
  Status committed = env_.checkpoints.Commit();
  if (!committed.ok()) {
    LogError("final checkpoint commit failed", {{"error", committed.message()}});
  }
  if (unacknowledged > 0) {
    // Not lost: their ids are above the durable watermark, so Zulip keeps them for the next
    // start.
    LogWarn("stopped with events Kafka had not acknowledged; they will be fetched again",
            {{"unacknowledged", unacknowledged}});
  }
  if (env_.on_stopped) env_.on_stopped(committed);
}

std::vector<AccountSnapshot> AccountFleet::Snapshots() const {
  std::vector<AccountSnapshot> snapshots;
  snapshots.reserve(accounts_.size());
  for (const auto& account : accounts_) {
    if (account) snapshots.push_back(account->Snapshot());
  }
  return snapshots;
}

size_t AccountFleet::size() const {
  return static_cast<size_t>(std::count_if(accounts_.begin(), accounts_.end(),
                                           [](const auto& a) { return a != nullptr; }));
}

std::string AccountFleet::StatusLine() const {
  size_t polling = 0, backing_off = 0, parked = 0, other = 0;
  uint64_t forwarded = 0;
  for (const auto& account : accounts_) {
    if (!account) continue;
    forwarded += account->forwarded();
    switch (account->state()) {
      case AccountState::kPolling:
      case AccountState::kDraining:
      case AccountState::kCommitting:
      case AccountState::kBackfilling:
        ++polling;
        break;
      case AccountState::kBackingOff:
        ++backing_off;
        break;
      case AccountState::kParked:
        ++parked;
        break;
      default:
        ++other;
        break;
    }
  }
  return std::to_string(polling) + " polling, " + std::to_string(backing_off) + " backing off, " +
         std::to_string(parked) + " parked, " + std::to_string(other) + " starting; " +
         std::to_string(forwarded) + " events forwarded";
}

}  // namespace zb
