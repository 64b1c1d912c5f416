// Supervisor: owns everything the daemon runs — the event loop, the HTTP transport, the one
// Kafka producer, the checkpoint store and the accounts — and the order in which they start and
// stop.
//
// Start: lock the state directory, open the checkpoints and the dead-letter spool (in the state
// directory, capped by dead_letter.max_bytes; the accounts append to it), build the producer (it
// does not wait for brokers: Kafka may be down at boot), build one Account per configured account
// and start each from its checkpoint (resuming its queue), forget checkpoints of accounts no longer
// configured, then READY=1. Registrations are spread out so that many accounts starting at
// once stay inside Zulip's rate limits.
//
// While running: delivery reports from the producer's poll thread are posted to the loop and
// handed to their accounts; checkpoint commits requested during one loop turn are done together
// at the end of it (group commit) and each account is told the result; a fatal producer error
// rebuilds the producer in-process (every unacknowledged record is produced again); the
// watchdog is fed from a loop timer, so it says only "the loop turns".
//
// Stop (SIGTERM/SIGINT through RequestStop): the accounts stop polling, outstanding deliveries
// are awaited up to kafka.flush_timeout_secs, the settled watermarks are committed, STOPPING=1,
// and Run returns. Zulip queues are kept: the next start resumes them.
//
// Threads: Run() on the main thread turns the event loop; RequestStop() from any thread.
#ifndef ZB_DAEMON_SUPERVISOR_H_
#define ZB_DAEMON_SUPERVISOR_H_

#include <atomic>
#include <memory>
#include <mutex>
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
#include "daemon/state_dir_lock.h"
#include "daemon/status.h"
#include "daemon/systemd_notify.h"

namespace zb {

class HealthServer;

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

  // Snapshots of every account, refreshed by the loop about once a second. Any thread.
  std::vector<AccountSnapshot> AccountSnapshots() const;
  // True once config, state and producer are up (what READY=1 and /readyz say).
  bool ready() const { return ready_.load(); }
  MetricsRegistry& metrics() { return metrics_; }
  // True when the event loop refreshed the snapshots within `within` (what /healthz says).
  bool LoopAliveWithin(std::chrono::seconds within) const;

 private:
  Status StartUp();
  void StartAccounts();
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
  void RebuildProducer();
  std::string StatusLine() const;

  const Config config_;
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
  std::unique_ptr<HealthServer> health_;
  std::vector<std::unique_ptr<Account>> accounts_;  // index = slot

  // Loop thread only.
  std::set<Account*> commit_waiters_;
  bool commit_scheduled_ = false;
  bool stopping_ = false;
  bool rebuilding_ = false;
  EventLoop::TimerId flush_deadline_ = 0;
  Status exit_status_;

  std::atomic<bool> ready_{false};
  std::atomic<int64_t> loop_heartbeat_ns_{0};  // steady clock, set by the loop every second
  std::atomic<bool> stop_requested_{false};
  std::atomic<EventLoop*> loop_for_stop_{nullptr};
  mutable std::mutex snapshots_mu_;
  std::vector<AccountSnapshot> snapshots_;  // guarded by snapshots_mu_
};

}  // namespace zb

#endif  // ZB_DAEMON_SUPERVISOR_H_
