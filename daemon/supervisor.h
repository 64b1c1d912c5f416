// Supervisor: owns everything the daemon runs — the event loop, the HTTP transport, the one
// Kafka producer, the checkpoint store and the accounts — and the order in which they start and
// stop.
//
// Start: lock the state directory, open the checkpoints and the dead-letter spool (in the state
// directory, capped by dead_letter.max_bytes; the accounts append to it), build the producer (it
// does not wait for brokers: Kafka may be down at boot), build one Account per configured account
// and start each from its checkpoint (resuming its queue), keep (and warn about, naming
// `zulip-bridge decommission`) checkpoints of accounts no longer configured, then READY=1.
// Registrations are spread out so that many accounts starting at once stay inside Zulip's rate
// limits.
//
// While running: delivery reports from the producer's poll thread are posted to the loop and
// handed to their accounts; checkpoint commits requested during one loop turn are done together
// at the end of it (group commit) and each account is told the result; a fatal producer error
// rebuilds the producer in-process (every unacknowledged record is produced again; a rebuild
// that fails is retried with the `retry` backoff until one works: ProducerRebuilder); the
// watchdog is fed from a loop timer, so it says only "the loop turns".
//
// Reload (SIGHUP through RequestReload; `zulip-bridge reload` sends it and waits for the
// outcome in /readyz): RELOADING=1, read the configuration file again, then READY=1. Nothing
// changes unless the whole new configuration is valid and every change can be applied while
// running; otherwise the running configuration stays and the outcome says why. Changes that
// need a restart: state_dir, http, kafka.brokers, kafka.properties, dead_letter, metrics.
// Applied: log (at once); per account, by name —
//   unchanged (and not parked): kept as it is, queue and connection included;
//   removed: stopped; once Kafka acknowledged its records and the watermark is durable, its
//     Zulip queue is deleted and its checkpoint removed;
//   added: started like at boot;
//   changed (credentials, TLS, register arguments, backfill_from), parked, or every account
//     when kafka routing (topics, keys, control topic) or retry changed: restarted — stopped,
//     its records settled (up to kafka.flush_timeout_secs; any not acknowledged by then are
//     fetched again from the queue), then started from its checkpoint. It keeps its queue
//     unless the register arguments changed; then Account registers a new queue, publishes a
//     gap record "configuration changed", backfills messages and deletes the old queue.
//
// Stop (SIGTERM/SIGINT through RequestStop): the accounts stop polling, outstanding deliveries
// are awaited up to kafka.flush_timeout_secs, the settled watermarks are committed, STOPPING=1,
// and Run returns. Zulip queues are kept: the next start resumes them.
//
// Threads: Run() on the main thread turns the event loop; RequestStop() and RequestReload()
// from any thread.
#ifndef ZB_DAEMON_SUPERVISOR_H_
#define ZB_DAEMON_SUPERVISOR_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/account.h"
#include "daemon/checkpoint_store.h"
#include "daemon/clock.h"
#include "daemon/config.h"
#include "daemon/curl_transport.h"
#include "daemon/dead_letter_spool.h"
#include "daemon/event_loop.h"
#include "daemon/fs.h"
#include "daemon/kafka_publisher.h"
#include "daemon/metrics.h"
#include "daemon/producer_rebuilder.h"
#include "daemon/state_dir_lock.h"
#include "daemon/status.h"
#include "daemon/systemd_notify.h"

namespace zb {

class HealthServer;

// What the last reload did, for /readyz and `zulip-bridge reload`.
struct ReloadOutcome {
  uint64_t generation = 0;  // reloads attempted since start; 0: none yet
  bool applied = false;
  std::string message;  // a summary when applied, why not otherwise
};

class Supervisor {
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
  ReloadOutcome LastReload() const;

  // Snapshots of every account, refreshed by the loop about once a second. Any thread.
  std::vector<AccountSnapshot> AccountSnapshots() const;
  // True once config, state and producer are up (what READY=1 and /readyz say).
  bool ready() const { return ready_.load(); }
  MetricsRegistry& metrics() { return metrics_; }
  // True when the event loop refreshed the snapshots within `within` (what /healthz says).
  bool LoopAliveWithin(std::chrono::seconds within) const;

 private:
  // An account being stopped by a reload, until its records settled.
  struct Retirement {
    bool remove = false;  // true: delete its queue and checkpoint; false: start `next`
    std::optional<AccountConfig> next;
    EventLoop::TimerId deadline = 0;
    bool finishing = false;
  };

  Status StartUp();
  void StartAccounts();
  // The durable checkpoints of accounts the configuration does not name (kept: see
  // StartAccounts), and the gauge that counts them.
  std::vector<Checkpoint> UnconfiguredCheckpoints() const;
  void CountUnconfiguredCheckpoints();
  // Builds an account in a free slot and starts it from its durable checkpoint after `delay`.
  void AddAccount(const AccountConfig& account_config, Clock::Duration delay);
  void Reload();
  ReloadOutcome ApplyConfig(Config next);
  void Retire(uint16_t slot, bool remove, std::optional<AccountConfig> next);
  void MaybeFinishRetirement(uint16_t slot);
  void FinishRetirement(uint16_t slot);
  void FinishRemoval(uint16_t slot, bool queue_gone);
  // Destroys the account in `slot`. Its records held failed in the publisher are released; the
  // slot is reused once the publisher has reported every other record of it.
  void DropAccount(uint16_t slot);
  void MaybeFreeSlot(uint16_t slot);
  // A report for a slot whose account was dropped.
  void SettleDrainingSlot(const DeliveryReport& report);
  void CountDrainingSlots();
  // Cancels the delayed Start of the account in `slot`, if it has not run yet.
  void CancelStart(uint16_t slot);
  BackoffPolicy AccountBackoff() const;
  void OnDeliveries(std::vector<DeliveryReport> reports);
  void RequestCommit(Account* account);
  void CommitNow();
  void BeginShutdown();
  void MaybeFinishShutdown();
  void FinishShutdown();
  void RefreshSnapshots();
  void RefreshSnapshotsEverySecond();
  void PingWatchdog(Clock::Duration interval);
  void ReportStatus();
  std::string StatusLine() const;

  Config config_;  // replaced by a reload (loop thread)
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
  std::unique_ptr<HealthServer> health_;
  std::vector<std::unique_ptr<Account>> accounts_;  // index = slot; null: free
  std::vector<uint16_t> free_slots_;
  // Slots of dropped accounts, with the tokens the publisher has still to report for them.
  std::map<uint16_t, std::set<uint64_t>> draining_slots_;
  std::map<uint16_t, Retirement> retiring_;
  std::map<uint16_t, EventLoop::TimerId> start_timers_;  // accounts not started yet

  // Loop thread only.
  std::set<Account*> commit_waiters_;
  bool commit_scheduled_ = false;
  bool stopping_ = false;
  EventLoop::TimerId flush_deadline_ = 0;
  Status exit_status_;

  std::atomic<bool> ready_{false};
  std::atomic<int64_t> loop_heartbeat_ns_{0};  // steady clock, set by the loop every second
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> reload_requested_{false};
  mutable std::mutex reload_mu_;
  ReloadOutcome last_reload_;  // guarded by reload_mu_
  std::atomic<EventLoop*> loop_for_stop_{nullptr};
  mutable std::mutex snapshots_mu_;
  std::vector<AccountSnapshot> snapshots_;  // guarded by snapshots_mu_
};

}  // namespace zb

#endif  // ZB_DAEMON_SUPERVISOR_H_
