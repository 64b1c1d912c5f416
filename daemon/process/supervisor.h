// Supervisor: owns the process — the state directory lock, the event loop, the HTTP transport,
// the one Kafka producer and its rebuilder, the checkpoint store, the dead-letter spool, the
// health server, systemd notifications — and the AccountFleet that runs the accounts on them
// (account_fleet.h: slots, group commit, how a reload and a stop are carried out).
//
// Start: lock the state directory, open the checkpoints and the dead-letter spool (in the state
// directory, capped by dead_letter.max_bytes; the accounts append to it), build the producer (it
// does not wait for brokers: Kafka may be down at boot), start the fleet (one Account per
// configured account, each from its checkpoint), then READY=1.
//
// While running: delivery reports from the producer's poll thread are posted to the loop and
// handed to the fleet; a fatal producer error rebuilds the producer in-process (every
// unacknowledged record is produced again; a rebuild that fails is retried with the `retry`
// backoff until one works: ProducerRebuilder); the watchdog is fed from a loop timer, so it
// says only "the loop turns".
//
// Reload (SIGHUP through RequestReload; `zulip-bridge reload` sends it and waits for the
// outcome in /readyz): RELOADING=1, read the configuration file again, hand it to the fleet,
// then READY=1. Nothing changes unless the whole new configuration is valid and every change
// can be applied while running (reload_plan.h); otherwise the running configuration stays and
// the outcome says why. Log settings are applied here, at once; the rest by the fleet.
//
// Stop (SIGTERM/SIGINT through RequestStop): STOPPING=1 and the fleet's stop sequence (the
// accounts stop polling, deliveries are awaited up to kafka.flush_timeout_secs, the settled
// watermarks are committed); then the loop ends and Run returns. Zulip queues are kept: the
// next start resumes them.
//
// Threads: Run() on the main thread turns the event loop; RequestStop() and RequestReload()
// from any thread.
#ifndef ZB_DAEMON_PROCESS_SUPERVISOR_H_
#define ZB_DAEMON_PROCESS_SUPERVISOR_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>
#include "daemon/base/mutex.h"

#include "daemon/base/clock.h"
#include "daemon/base/event_loop.h"
#include "daemon/base/fs.h"
#include "daemon/base/metrics.h"
#include "daemon/base/status.h"
#include "daemon/config/config.h"
#include "daemon/kafka/kafka_publisher.h"
#include "daemon/kafka/producer_rebuilder.h"
#include "daemon/pipeline/account.h"
#include "daemon/pipeline/account_fleet.h"
#include "daemon/process/health_source.h"
#include "daemon/process/systemd_notify.h"
#include "daemon/state/checkpoint_store.h"
#include "daemon/state/dead_letter_spool.h"
#include "daemon/state/state_dir_lock.h"
#include "daemon/zulip/curl_transport.h"

namespace zb {

class HealthServer;

class Supervisor final : public HealthSource {
 public:
  explicit Supervisor(Config config);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Runs the daemon until RequestStop(). OK after a clean stop. An error when the daemon could
  // not start (state directory locked or unwritable, producer refused its configuration,
  // listener address taken) or had to stop (an unrecoverable checkpoint or loop error); the
  // message says what and where.
  Status Run();

  // Asks Run() to stop as described above. Any thread; idempotent.
  void RequestStop();

  // Asks Run() to read the configuration file again and apply it as described above. Any
  // thread. Requests made before the daemon is up are applied once it is.
  void RequestReload();

  // HealthSource (health_source.h), for the health server; any thread.
  ReloadOutcome LastReload() const override;
  // Snapshots of every account, refreshed by the loop about once a second.
  std::vector<AccountSnapshot> AccountSnapshots() const override;
  bool ready() const override { return ready_.load(); }
  MetricsRegistry& metrics() override { return metrics_; }
  // True when the event loop refreshed the snapshots within `within`.
  bool LoopAliveWithin(std::chrono::seconds within) const override;

 private:
  Status StartUp();
  void Reload();
  void BeginStop();
  void OnFleetStopped(const Status& final_commit);
  void RefreshSnapshots();
  void RefreshSnapshotsEverySecond();
  void PingWatchdog(Clock::Duration interval);
  void ReportStatus();

  Config config_;  // the configuration started with; the fleet keeps the running one
  RealClock& clock_ = RealClock::Instance();
  MetricsRegistry metrics_;
  SystemdNotifier notifier_;
  PosixFs fs_;
  std::unique_ptr<StateDirLock> lock_;
  std::unique_ptr<CheckpointStore> checkpoints_;
  std::unique_ptr<DeadLetterSpool> dead_letters_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<CurlTransport> transport_;
  std::unique_ptr<KafkaPublisher> publisher_;
  std::unique_ptr<ProducerRebuilder> rebuilder_;  // after publisher_: it borrows it
  std::unique_ptr<AccountFleet> fleet_;           // after what it borrows
  std::unique_ptr<HealthServer> health_;

  // Loop thread only.
  Status exit_status_;

  std::atomic<bool> ready_{false};
  std::atomic<int64_t> loop_heartbeat_ns_{0};  // steady clock, set by the loop every second
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> reload_requested_{false};
  mutable Mutex reload_mu_;
  ReloadOutcome last_reload_ ZB_GUARDED_BY(reload_mu_);
  std::atomic<EventLoop*> loop_for_stop_{nullptr};
  mutable Mutex snapshots_mu_;
  std::vector<AccountSnapshot> snapshots_ ZB_GUARDED_BY(snapshots_mu_);
};

}  // namespace zb

#endif  // ZB_DAEMON_PROCESS_SUPERVISOR_H_
