#include "daemon/supervisor.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <utility>

#include "daemon/health_server.h"
#include "daemon/kafka_statistics.h"
#include "daemon/log.h"
#include "daemon/reload_plan.h"
#include "daemon/version.h"

namespace zb {
namespace {

// Accounts start this far apart, so that a daemon with thousands of accounts does not open
// thousands of connections to one Zulip server in the same instant.
constexpr auto kRegistrationSpacing = std::chrono::milliseconds(10);
constexpr auto kSnapshotInterval = std::chrono::seconds(1);
constexpr auto kStatusInterval = std::chrono::seconds(5);
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

std::string JoinBrokers(const std::vector<std::string>& brokers) {
  std::string out;
  for (const std::string& b : brokers) {
    if (!out.empty()) out += ',';
    out += b;
  }
  return out;
}

}  // namespace

Supervisor::Supervisor(Config config) : config_(std::move(config)) {}

Supervisor::~Supervisor() {
  // The health server reads snapshots; the publisher's poll thread posts to the loop; accounts
  // borrow the transport and publisher. Tear down in the reverse order of use.
  health_.reset();
  accounts_.clear();
  rebuilder_.reset();
  publisher_.reset();
  transport_.reset();
  loop_.reset();
}

Status Supervisor::StartUp() {
  StatusOr<std::unique_ptr<StateDirLock>> lock = StateDirLock::Acquire(config_.state_dir);
  ZB_RETURN_IF_ERROR(lock.status());
  lock_ = std::move(*lock);

  StatusOr<std::unique_ptr<CheckpointStore>> checkpoints =
      CheckpointStore::Open(config_.state_dir, fs_);
  ZB_RETURN_IF_ERROR(checkpoints.status());
  checkpoints_ = std::move(*checkpoints);

  StatusOr<std::unique_ptr<DeadLetterSpool>> dead_letters = DeadLetterSpool::Open(
      config_.state_dir, fs_, metrics_, {.max_bytes = config_.dead_letter.max_bytes});
  ZB_RETURN_IF_ERROR(dead_letters.status().WithContext("dead-letter spool"));
  dead_letters_ = std::move(*dead_letters);
  if (int64_t bytes = dead_letters_->RefreshSize(); bytes > 0) {
    LogWarn(
        "the dead-letter spool holds records Kafka refused; replay them with "
        "zulip-bridge replay-dead-letters once the cause is fixed",
        {{"spool", dead_letters_->path()}, {"bytes", bytes}});
  }

  StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create(clock_);
  ZB_RETURN_IF_ERROR(loop.status());
  loop_ = std::move(*loop);

  StatusOr<std::unique_ptr<CurlTransport>> transport = CurlTransport::Create(*loop_);
  ZB_RETURN_IF_ERROR(transport.status());
  transport_ = std::move(*transport);

  KafkaPublisherOptions kafka;
  kafka.brokers = JoinBrokers(config_.kafka.brokers);
  for (const auto& [name, value] : config_.kafka.properties) kafka.properties[name] = value;
  // librdkafka's statistics feed a few gauges; an explicit statistics.interval.ms (0: off) wins.
  kafka.properties.emplace("statistics.interval.ms", kDefaultKafkaStatisticsIntervalMs);
  kafka.on_statistics =
      [stats = std::make_shared<KafkaStatisticsMetrics>(metrics_)](std::string_view json) {
        if (Status updated = stats->Update(json); !updated.ok()) {
          LogWarn("Kafka statistics", {{"error", updated.message()}});
        }
      };
  kafka.on_delivery = [this](std::vector<DeliveryReport> reports) {
    loop_->Post(
        [this, reports = std::move(reports)]() mutable { OnDeliveries(std::move(reports)); });
  };
  kafka.on_error = [this](const KafkaErrorReport& error) {
    if (error.fatal) {
      LogError("Kafka producer hit a fatal error; rebuilding it", {{"error", error.error}});
      loop_->Post([this] { rebuilder_->Request(); });
    } else {
      LogWarn("Kafka", {{"error", error.error}});
    }
  };
  StatusOr<std::unique_ptr<KafkaPublisher>> publisher = KafkaPublisher::Create(std::move(kafka));
  ZB_RETURN_IF_ERROR(publisher.status().WithContext("kafka"));
  publisher_ = std::move(*publisher);
  // The accounts' retry settings: a dead producer holds every account, as a failing Zulip
  // holds one, and the operator has tuned how patiently those are retried.
  rebuilder_ = std::make_unique<ProducerRebuilder>(*loop_, clock_, *publisher_, metrics_,
                                                   AccountBackoff(), std::random_device{}());

  StatusOr<std::unique_ptr<HealthServer>> health = HealthServer::Start(config_.http, *this);
  ZB_RETURN_IF_ERROR(health.status());
  health_ = std::move(*health);
  return Status::Ok();
}

void Supervisor::StartAccounts() {
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

std::vector<Checkpoint> Supervisor::UnconfiguredCheckpoints() const {
  std::vector<Checkpoint> unconfigured;
  for (Checkpoint& checkpoint : checkpoints_->LoadAll()) {
    const std::string& name = checkpoint.account;
    if (std::none_of(config_.accounts.begin(), config_.accounts.end(),
                     [&](const AccountConfig& a) { return a.name == name; })) {
      unconfigured.push_back(std::move(checkpoint));
    }
  }
  return unconfigured;
}

void Supervisor::CountUnconfiguredCheckpoints() {
  metrics_
      .GetGauge("zb_unconfigured_checkpoints",
                "Checkpoints of accounts no longer configured, kept (their Zulip queues live on "
                "until their lifespan ends; zulip-bridge decommission retires them)")
      .Set(static_cast<double>(UnconfiguredCheckpoints().size()));
}

BackoffPolicy Supervisor::AccountBackoff() const {
  BackoffPolicy backoff;
  backoff.base = std::chrono::milliseconds(config_.retry.initial_backoff_ms);
  backoff.cap = std::chrono::milliseconds(config_.retry.max_backoff_ms);
  return backoff;
}

void Supervisor::AddAccount(const AccountConfig& account_config, Clock::Duration delay) {
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
      *loop_,         *transport_, *publisher_, *checkpoints_,
      *dead_letters_, metrics_,    clock_,      [this](Account& a) { RequestCommit(&a); }};
  env.per_account_type_metrics = config_.metrics.per_account_type;
  accounts_[slot] = std::make_unique<Account>(
      account_config, RouterOptions(config_.kafka, account_config), AccountBackoff(), slot, env);
  Account* raw = accounts_[slot].get();
  std::optional<Checkpoint> checkpoint;
  if (StatusOr<Checkpoint> loaded = checkpoints_->Load(account_config.name); loaded.ok()) {
    checkpoint = std::move(*loaded);
  }
  start_timers_[slot] = loop_->AddTimer(delay, [this, slot, raw, checkpoint] {
    start_timers_.erase(slot);
    raw->Start(checkpoint);
  });
}

Status Supervisor::Run() {
  Status started = StartUp();
  if (!started.ok()) return started;
  StartAccounts();
  // Alerts on refused reloads need the series before the first reload.
  for (const char* result : {"applied", "refused"}) {
    metrics_.GetCounter("zb_reloads_total", "Configuration reloads, by result",
                        {{"result", result}});
  }
  metrics_
      .GetGauge("zb_reload_last_applied",
                "1 when the last reload was applied (or none was asked), 0 when refused")
      .Set(1);

  if (auto watchdog = SystemdNotifier::WatchdogPingInterval()) {
    PingWatchdog(std::chrono::duration_cast<Clock::Duration>(*watchdog));
  }
  RefreshSnapshotsEverySecond();
  loop_->AddTimer(kStatusInterval, [this] { ReportStatus(); });

  // Publish the loop to RequestStop() before checking for an early stop request: one of the
  // two then posts the shutdown (posting it twice is harmless).
  loop_for_stop_ = loop_.get();
  ready_ = true;
  notifier_.Ready();
  LogInfo("zulip-bridge started", {{"version", kBridgeVersion},
                                   {"accounts", config_.accounts.size()},
                                   {"state_dir", config_.state_dir},
                                   {"http", config_.http.listen}});
  if (stop_requested_) loop_->Post([this] { BeginShutdown(); });
  if (reload_requested_) loop_->Post([this] { Reload(); });

  Status ran = loop_->Run();
  if (!ran.ok()) return ran;
  return exit_status_;
}

void Supervisor::RequestStop() {
  stop_requested_ = true;
  if (EventLoop* loop = loop_for_stop_.load()) loop->Post([this] { BeginShutdown(); });
}

void Supervisor::RequestReload() {
  reload_requested_ = true;
  if (EventLoop* loop = loop_for_stop_.load()) loop->Post([this] { Reload(); });
}

ReloadOutcome Supervisor::LastReload() const {
  std::lock_guard<std::mutex> lock(reload_mu_);
  return last_reload_;
}

void Supervisor::Reload() {
  // Two requests can be posted for one SIGHUP (see Run): the first does the work.
  if (!reload_requested_.exchange(false) || stopping_) return;
  notifier_.Reloading();
  LogInfo("reloading the configuration", {{"config", config_.path}});
  ReloadOutcome outcome;
  StatusOr<Config> loaded = LoadConfig(config_.path);
  if (!loaded.ok()) {
    outcome.message = "the new configuration is invalid; the running one stays:\n" +
                      std::string(loaded.status().message());
  } else {
    outcome = ApplyConfig(std::move(*loaded));
  }
  {
    std::lock_guard<std::mutex> lock(reload_mu_);
    outcome.generation = last_reload_.generation + 1;
    last_reload_ = outcome;
  }
  metrics_
      .GetCounter("zb_reloads_total", "Configuration reloads, by result",
                  {{"result", outcome.applied ? "applied" : "refused"}})
      .Inc();
  metrics_
      .GetGauge("zb_reload_last_applied",
                "1 when the last reload was applied (or none was asked), 0 when refused")
      .Set(outcome.applied ? 1 : 0);
  if (outcome.applied) {
    LogInfo("configuration reloaded", {{"outcome", outcome.message}});
  } else {
    LogError("configuration not reloaded", {{"why", outcome.message}});
  }
  CountUnconfiguredCheckpoints();
  RefreshSnapshots();
  notifier_.Ready();
  notifier_.Status(StatusLine());
}

ReloadOutcome Supervisor::ApplyConfig(Config next) {
  std::vector<RunningAccount> running;
  for (size_t i = 0; i < accounts_.size(); ++i) {
    if (!accounts_[i]) continue;
    const auto slot = static_cast<uint16_t>(i);
    running.push_back({slot, accounts_[slot]->config(),
                       accounts_[slot]->state() == AccountState::kParked,
                       retiring_.count(slot) > 0});
  }
  ReloadPlan plan = PlanReload(config_, next, running);
  if (!plan.applies()) return {0, false, plan.Summary()};

  if (plan.log_changed) {
    LogOptions log;
    log.level = next.log.level;
    log.format = next.log.format;
    ConfigureLog(log);
  }
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
          loop_->CancelTimer(retirement.deadline);
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
  return {0, true, plan.Summary()};
}

void Supervisor::Retire(uint16_t slot, bool remove, std::optional<AccountConfig> next) {
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
        loop_->AddTimer(std::chrono::seconds(config_.kafka.flush_timeout_secs), [this, slot] {
          if (auto it = retiring_.find(slot); it != retiring_.end()) it->second.deadline = 0;
          FinishRetirement(slot);
        });
  }
  LogAccount(LogLevel::kInfo, account.name(),
             remove ? "removed by reload; stopping once Kafka acknowledged its events"
                    : "restarting for the new configuration",
             {{"in_flight", account.in_flight()}});
  loop_->Post([this, slot] { MaybeFinishRetirement(slot); });
}

void Supervisor::MaybeFinishRetirement(uint16_t slot) {
  if (stopping_ || !retiring_.count(slot) || accounts_[slot]->in_flight() > 0) return;
  FinishRetirement(slot);
}

void Supervisor::FinishRetirement(uint16_t slot) {
  auto it = retiring_.find(slot);
  if (stopping_ || it == retiring_.end() || it->second.finishing) return;
  Retirement& retirement = it->second;
  retirement.finishing = true;
  loop_->CancelTimer(retirement.deadline);
  retirement.deadline = 0;
  Account& account = *accounts_[slot];
  if (account.in_flight() > 0) {
    LogAccount(LogLevel::kWarn, account.name(),
               "restarting with events Kafka has not acknowledged; they will be fetched again",
               {{"unacknowledged", account.in_flight()}});
  }
  account.StageFinalCheckpoint();
  Status committed = checkpoints_->Commit();
  if (!committed.ok()) {
    LogError("checkpoint commit failed",
             {{"account", account.name()}, {"error", committed.message()}});
  }
  if (retirement.remove && committed.ok()) {
    account.DeleteQueueAtZulip([this, slot](bool gone) {
      // Not from inside the account's own callback: the account is destroyed there.
      loop_->Post([this, slot, gone] { FinishRemoval(slot, gone); });
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

void Supervisor::FinishRemoval(uint16_t slot, bool queue_gone) {
  auto it = retiring_.find(slot);
  if (stopping_ || it == retiring_.end()) return;
  std::optional<AccountConfig> next = std::move(it->second.next);
  retiring_.erase(it);
  std::string name = accounts_[slot]->name();
  DropAccount(slot);
  Status removed = checkpoints_->Remove(name);
  if (!removed.ok()) {
    LogError("could not remove checkpoint", {{"account", name}, {"error", removed.message()}});
  }
  metrics_.RemoveSeriesWithLabel("account", name);
  LogInfo("account removed", {{"account", name}, {"queue_deleted", queue_gone}});
  if (next) AddAccount(*next, Clock::Duration::zero());
  CountUnconfiguredCheckpoints();
}

void Supervisor::CancelStart(uint16_t slot) {
  if (auto it = start_timers_.find(slot); it != start_timers_.end()) {
    loop_->CancelTimer(it->second);
    start_timers_.erase(it);
  }
}

void Supervisor::DropAccount(uint16_t slot) {
  CancelStart(slot);
  Account* account = accounts_[slot].get();
  commit_waiters_.erase(account);
  accounts_[slot].reset();
  // A slot whose records may still be reported is not reused until they are: a new account's
  // tokens would collide with them. The publisher knows every token still to be reported.
  // Records of the dropped account held after a failure are given up at once: nothing would
  // produce them again (they are above its durable watermark, so its queue has them), and
  // held they would take room from every other account (they count against the producer's
  // limits). Those still in librdkafka are waited for in OnDeliveries.
  std::set<uint64_t>& outstanding = draining_slots_[slot];
  for (uint64_t token : publisher_->UnsettledTokens()) {
    if (Account::SlotOfToken(token) != slot) continue;
    if (publisher_->Release(token).ok()) continue;
    outstanding.insert(token);
  }
  // Freed from a posted task, never here: a report posted before this point (already off the
  // publisher's books) may still be queued on the loop, and must not reach a new account.
  loop_->Post([this, slot] { MaybeFreeSlot(slot); });
  CountDrainingSlots();
  RefreshSnapshots();
}

void Supervisor::MaybeFreeSlot(uint16_t slot) {
  auto it = draining_slots_.find(slot);
  if (it == draining_slots_.end() || !it->second.empty()) return;
  draining_slots_.erase(it);
  free_slots_.push_back(slot);
  CountDrainingSlots();
}

void Supervisor::SettleDrainingSlot(const DeliveryReport& report) {
  const uint16_t slot = Account::SlotOfToken(report.token);
  auto it = draining_slots_.find(slot);
  if (it == draining_slots_.end()) return;
  // A failed record of a dropped account is given up as in DropAccount. NotFound: it is in
  // flight again (a producer rebuild re-produced it), so another report follows.
  if (report.outcome != DeliveryReport::Outcome::kDelivered &&
      !publisher_->Release(report.token).ok()) {
    return;
  }
  it->second.erase(report.token);
  if (it->second.empty()) loop_->Post([this, slot] { MaybeFreeSlot(slot); });
}

void Supervisor::CountDrainingSlots() {
  metrics_
      .GetGauge("zb_account_slots_draining",
                "Slots of accounts stopped by a reload whose last Kafka records are not yet "
                "settled (not reused until they are)")
      .Set(static_cast<double>(draining_slots_.size()));
}

void Supervisor::OnDeliveries(std::vector<DeliveryReport> reports) {
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

void Supervisor::RequestCommit(Account* account) {
  commit_waiters_.insert(account);
  if (commit_scheduled_) return;
  commit_scheduled_ = true;
  // Posted tasks run after the events of this turn: every account that advanced in it shares
  // one durable write.
  loop_->Post([this] { CommitNow(); });
}

void Supervisor::CommitNow() {
  commit_scheduled_ = false;
  std::set<Account*> waiters;
  waiters.swap(commit_waiters_);
  Status committed = checkpoints_->Commit();
  if (!committed.ok()) {
    LogError("checkpoint commit failed; the affected accounts stop acknowledging",
             {{"error", committed.message()}, {"accounts", waiters.size()}});
  }
  for (Account* account : waiters) account->OnCommitted(committed);
}

void Supervisor::BeginShutdown() {
  if (stopping_) return;
  stopping_ = true;
  notifier_.Stopping();
  size_t in_flight = 0;
  for (auto& account : accounts_) {
    if (!account) continue;
    account->Stop();
    in_flight += account->in_flight();
  }
  LogInfo("stopping: waiting for Kafka to acknowledge outstanding events",
          {{"in_flight", in_flight}, {"flush_timeout_secs", config_.kafka.flush_timeout_secs}});
  flush_deadline_ = loop_->AddTimer(std::chrono::seconds(config_.kafka.flush_timeout_secs), [this] {
    flush_deadline_ = 0;
    FinishShutdown();
  });
  MaybeFinishShutdown();
}

void Supervisor::MaybeFinishShutdown() {
  for (auto& account : accounts_) {
    if (account && account->in_flight() > 0) return;
  }
  FinishShutdown();
}

void Supervisor::FinishShutdown() {
  if (!loop_) return;
  loop_->CancelTimer(flush_deadline_);
  flush_deadline_ = 0;
  size_t unacknowledged = 0;
  for (auto& account : accounts_) {
    if (!account) continue;
    account->StageFinalCheckpoint();
    unacknowledged += account->in_flight();
  }
  Status committed = checkpoints_->Commit();
  if (!committed.ok()) {
    LogError("final checkpoint commit failed", {{"error", committed.message()}});
    exit_status_ = committed;
  }
  if (unacknowledged > 0) {
    // Not lost: their ids are above the durable watermark, so Zulip keeps them for the next
    // start.
    LogWarn("stopped with events Kafka had not acknowledged; they will be fetched again",
            {{"unacknowledged", unacknowledged}});
  }
  RefreshSnapshots();
  LogInfo("stopped; Zulip event queues kept for the next start");
  loop_->Stop();
}

// Fed by a loop timer and nothing else: the watchdog says the loop turns, never that Zulip or
// Kafka are healthy, or an outage would become a restart loop.
void Supervisor::PingWatchdog(Clock::Duration interval) {
  notifier_.WatchdogPing();
  loop_->AddTimer(interval, [this, interval] { PingWatchdog(interval); });
}

void Supervisor::RefreshSnapshotsEverySecond() {
  RefreshSnapshots();
  loop_->AddTimer(kSnapshotInterval, [this] { RefreshSnapshotsEverySecond(); });
}

void Supervisor::ReportStatus() {
  notifier_.Status(StatusLine());
  // A replay in another process shrinks the spool; keep zb_dead_letter_bytes near the truth.
  dead_letters_->RefreshSize();
  loop_->AddTimer(kStatusInterval, [this] { ReportStatus(); });
}

void Supervisor::RefreshSnapshots() {
  loop_heartbeat_ns_ = clock_.Now().time_since_epoch().count();
  std::vector<AccountSnapshot> snapshots;
  snapshots.reserve(accounts_.size());
  for (const auto& account : accounts_) {
    if (account) snapshots.push_back(account->Snapshot());
  }
  std::lock_guard<std::mutex> lock(snapshots_mu_);
  snapshots_.swap(snapshots);
}

bool Supervisor::LoopAliveWithin(std::chrono::seconds within) const {
  int64_t beat = loop_heartbeat_ns_.load();
  if (beat == 0) return true;  // still starting
  return clock_.Now().time_since_epoch().count() - beat <
         std::chrono::duration_cast<Clock::Duration>(within).count();
}

std::vector<AccountSnapshot> Supervisor::AccountSnapshots() const {
  std::lock_guard<std::mutex> lock(snapshots_mu_);
  return snapshots_;
}

std::string Supervisor::StatusLine() const {
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
