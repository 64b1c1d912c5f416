#include "daemon/process/supervisor.h"

#include <chrono>
#include <random>
#include <utility>

#include "daemon/base/log.h"
#include "daemon/base/version.h"
#include "daemon/kafka/kafka_statistics.h"
#include "daemon/process/health_server.h"

namespace zb {
namespace {

constexpr auto kSnapshotInterval = std::chrono::seconds(1);
constexpr auto kStatusInterval = std::chrono::seconds(5);
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
  fleet_.reset();
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
    loop_->Post([this, reports = std::move(reports)] {
      if (fleet_) fleet_->OnDeliveries(reports);
    });
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
  rebuilder_ = std::make_unique<ProducerRebuilder>(
      *loop_, clock_, *publisher_, metrics_, RetryBackoff(config_.retry), std::random_device{}());

  StatusOr<std::unique_ptr<HealthServer>> health = HealthServer::Start(config_.http, *this);
  ZB_RETURN_IF_ERROR(health.status());
  health_ = std::move(*health);
  return Status::Ok();
}

Status Supervisor::Run() {
  Status started = StartUp();
  if (!started.ok()) return started;
  FleetEnv env{*loop_,
               *transport_,
               *publisher_,
               *checkpoints_,
               *dead_letters_,
               metrics_,
               clock_,
               [this](const Status& final_commit) { OnFleetStopped(final_commit); },
               [this] { RefreshSnapshots(); },
               nullptr};
  fleet_ = std::make_unique<AccountFleet>(config_, std::move(env));
  fleet_->Start();
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
  if (stop_requested_) loop_->Post([this] { BeginStop(); });
  if (reload_requested_) loop_->Post([this] { Reload(); });

  Status ran = loop_->Run();
  if (!ran.ok()) return ran;
  return exit_status_;
}

void Supervisor::RequestStop() {
  stop_requested_ = true;
  if (EventLoop* loop = loop_for_stop_.load()) loop->Post([this] { BeginStop(); });
}

void Supervisor::RequestReload() {
  reload_requested_ = true;
  if (EventLoop* loop = loop_for_stop_.load()) loop->Post([this] { Reload(); });
}

ReloadOutcome Supervisor::LastReload() const {
  MutexLock lock(&reload_mu_);
  return last_reload_;
}

void Supervisor::Reload() {
  // Two requests can be posted for one SIGHUP (see Run): the first does the work.
  if (!reload_requested_.exchange(false) || fleet_->stopping()) return;
  notifier_.Reloading();
  LogInfo("reloading the configuration", {{"config", config_.path}});
  ReloadOutcome outcome;
  StatusOr<Config> loaded = LoadConfig(config_.path);
  if (!loaded.ok()) {
    outcome.message = "the new configuration is invalid; the running one stays:\n" +
                      std::string(loaded.status().message());
  } else {
    const bool log_changed = loaded->log != fleet_->config().log;
    FleetReload reload = fleet_->Apply(std::move(*loaded));
    outcome.applied = reload.applied;
    outcome.message = std::move(reload.summary);
    if (reload.applied && log_changed) {
      LogOptions log;
      log.level = fleet_->config().log.level;
      log.format = fleet_->config().log.format;
      ConfigureLog(log);
    }
  }
  {
    MutexLock lock(&reload_mu_);
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
  RefreshSnapshots();
  notifier_.Ready();
  notifier_.Status(fleet_->StatusLine());
}

void Supervisor::BeginStop() {
  if (fleet_->stopping()) return;
  notifier_.Stopping();
  fleet_->BeginShutdown();
}

void Supervisor::OnFleetStopped(const Status& final_commit) {
  if (!final_commit.ok()) exit_status_ = final_commit;
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
  notifier_.Status(fleet_->StatusLine());
  // A replay in another process shrinks the spool; keep zb_dead_letter_bytes near the truth.
  dead_letters_->RefreshSize();
  loop_->AddTimer(kStatusInterval, [this] { ReportStatus(); });
}

void Supervisor::RefreshSnapshots() {
  loop_heartbeat_ns_ = clock_.Now().time_since_epoch().count();
  std::vector<AccountSnapshot> snapshots = fleet_->Snapshots();
  MutexLock lock(&snapshots_mu_);
  snapshots_.swap(snapshots);
}

bool Supervisor::LoopAliveWithin(std::chrono::seconds within) const {
  int64_t beat = loop_heartbeat_ns_.load();
  if (beat == 0) return true;  // still starting
  return clock_.Now().time_since_epoch().count() - beat <
         std::chrono::duration_cast<Clock::Duration>(within).count();
}

std::vector<AccountSnapshot> Supervisor::AccountSnapshots() const {
  MutexLock lock(&snapshots_mu_);
  return snapshots_;
}

}  // namespace zb
