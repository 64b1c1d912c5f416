#include "tests/sim/simulation.h"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <utility>

#include "daemon/base/fs.h"
#include "daemon/base/log.h"
#include "daemon/base/metrics.h"
#include "daemon/kafka/producer_rebuilder.h"
#include "daemon/pipeline/account.h"
#include "daemon/pipeline/account_fleet.h"
#include "daemon/pipeline/gap_recovery.h"
#include "daemon/state/checkpoint_store.h"
#include "daemon/state/dead_letter_spool.h"
#include "tests/sim/model_kafka.h"
#include "tests/sim/model_zulip.h"
#include "tests/sim/sim_fs.h"
#include "tests/sim/sim_runtime.h"
#include "tests/test_support.h"

namespace zb::sim {
namespace {

using namespace std::chrono_literals;

constexpr char kAccount[] = "sim";
constexpr char kSite[] = "https://zulip.sim";
constexpr char kStateDir[] = "/state";

// The spool writes through its own file descriptors (only its syncs go through Fs), so it lives
// in a real temporary directory; a sync there is made a no-op to keep runs fast. An append
// that returns OK is as good as durable: the simulation never crashes that directory.
class NoSyncFs final : public PosixFs {
 public:
  Status SyncFile(const std::string&) override { return Status::Ok(); }
  Status SyncFs(const std::string&) override { return Status::Ok(); }
  Status SyncDir(const std::string&) override { return Status::Ok(); }
};

std::string HeaderOf(const OwnedKafkaRecord& record, std::string_view name) {
  for (const auto& [key, value] : record.headers) {
    if (key == name) return value;
  }
  return "";
}

class World {
 public:
  explicit World(const SimulationOptions& options)
      : options_(options),
        rng_(options.seed),
        runtime_(Clock::WallTimePoint(std::chrono::seconds(1798761600))),  // 2027-01-01
        fs_(rng_),
        registration_(ChooseRegistration(rng_)),
        zulip_(runtime_, rng_, registration_),
        kafka_(runtime_, rng_, ModelKafkaOptions()) {
    account_.name = kAccount;
    account_.site = kSite;
    account_.email = "bot@zulip.sim";
    account_.api_key = Secret("sim-key");
    account_.fetch_event_types = {"message"};
    account_.all_public_streams = registration_.all_public_streams;
    if (!registration_.narrow_sender.empty()) {
      account_.narrow = {{"sender", registration_.narrow_sender}};
    }
    config_.state_dir = kStateDir;
    config_.kafka.flush_timeout_secs = 10;
    // Messages spread over partitions in most runs (acknowledgements then come out of order).
    if (rng_() % 3 != 2) config_.kafka.keys["message"] = KeyChoice::kConversation;
    config_.retry.initial_backoff_ms = 1000;
    config_.retry.max_backoff_ms = 30000;
    // As the supervisor wires the producer's poll thread to the loop: reports to the fleet, a
    // fatal error to the rebuilder.
    kafka_.set_sink([this](const DeliveryReport& report) {
      if (fleet_) fleet_->OnDeliveries({report});
    });
    kafka_.set_on_fatal([this] {
      if (process_) process_->Post([this] { rebuilder_->Request(); });
    });
    kafka_.set_on_log([this](const OwnedKafkaRecord& record) { OnLog(record); });
    zulip_.set_prune_check(
        [this](const std::string& queue, int64_t last, const std::vector<QueueEvent>& pruned) {
          return CheckPrune(queue, last, pruned);
        });
  }

  SimulationResult Run() {
    SetLogSinkForTest([this](std::string_view line) { Trace(std::string(line)); },
                      [this] { return runtime_.Now(); }, false);
    auto spool = DeadLetterSpool::Open(spool_dir_.path(), spool_fs_, metrics_, {});
    if (!spool.ok()) return Failed("cannot open the spool: " + spool.status().message());
    spool_ = std::move(*spool);
    (void)fs_.CreateDir(kStateDir, 0700);
    StartBridge();
    ScheduleChaos();
    const Clock::TimePoint chaos_end = runtime_.Now() + options_.chaos;
    while (failure_.empty() && runtime_.Step(chaos_end)) CheckViolations();
    runtime_.AdvanceTo(chaos_end);
    if (failure_.empty()) Settle();
    SimulationResult result;
    result.ok = failure_.empty();
    result.failure = failure_;
    result.steps = runtime_.steps();
    result.messages = zulip_.CommittedMessageIds().size();
    result.records = kafka_.log_size();
    result.crashes = crashes_;
    result.queues_lost = zulip_.queues_reported_lost().size();
    for (const std::string& line : trace_) result.trace += line + "\n";
    fleet_.reset();
    rebuilder_.reset();
    process_.reset();
    SetLogSinkForTest(nullptr, nullptr, false);
    return result;
  }

 private:
  // Most accounts plain; some all_public_streams, some narrowed to one sender.
  static ModelZulip::Registration ChooseRegistration(std::mt19937_64& rng) {
    ModelZulip::Registration registration;
    switch (rng() % 5) {
      case 0:
        registration.all_public_streams = true;
        break;
      case 1:
        registration.narrow_sender = "iago@zulip.sim";
        break;
      default:
        break;
    }
    return registration;
  }

  SimulationResult Failed(std::string why) {
    SimulationResult result;
    result.ok = false;
    result.failure = std::move(why);
    return result;
  }

  void Trace(std::string line) {
    // Log lines carry the machine's time and a newline: the simulated time stands instead.
    if (line.rfind("ts=", 0) == 0) line.erase(0, line.find(' ') + 1);
    while (!line.empty() && line.back() == '\n') line.pop_back();
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(runtime_.Now() - Clock::TimePoint{});
    std::string at = "t=" + std::to_string(ms.count() / 1000) + "." +
                     std::to_string(1000 + ms.count() % 1000).substr(1) + " ";
    trace_.push_back(at + line);
    while (trace_.size() > options_.trace_lines) trace_.pop_front();
  }

  void Fail(std::string why) {
    if (failure_.empty()) {
      failure_ = std::move(why);
      Trace("VIOLATION: " + failure_);
    }
  }

  void CheckViolations() {
    if (!zulip_.violations().empty()) Fail(zulip_.violations().front());
    if (kafka_.max_owned_seen() > ModelKafkaOptions().max_records) {
      Fail("the producer held more records than its limit");
    }
  }

  // Kafka's log, indexed for the oracle.
  void OnLog(const OwnedKafkaRecord& record) {
    std::string dedup = HeaderOf(record, "zulip-dedup-key");
    const std::string message_prefix = std::string("msg:") + kSite + ":";
    if (dedup.rfind(message_prefix, 0) == 0) {
      const int64_t id = std::stoll(dedup.substr(message_prefix.size()));
      messages_in_kafka_.insert(id);
      if (history_restarts_ > 0) logged_since_history_restart_.insert(id);
    }
    std::string queue = HeaderOf(record, "zulip-queue-id");
    std::string event = HeaderOf(record, "zulip-event-id");
    if (!queue.empty() && !event.empty()) {
      events_in_kafka_.insert({queue, std::stoll(event)});
      // Headers that lie (finding #11): a live event says which server level it came from.
      if (std::string level = HeaderOf(record, "zulip-feature-level");
          level != std::to_string(ModelZulip::kFeatureLevel)) {
        Fail("event " + event + " of " + queue + " went to Kafka with zulip-feature-level '" +
             level + "'");
      }
    }
    if (HeaderOf(record, "bridge-record-type") == "gap") {
      size_t at = record.value.find("\"lost_queue_id\":\"");
      if (at != std::string::npos) {
        at += 17;
        gap_lost_queues_.insert(record.value.substr(at, record.value.find('"', at) - at));
      }
    }
  }

  // The spool file's text, read again only when its size changed (it only grows here).
  const std::string& SpoolText() {
    const std::string path = spool_dir_.path() + "/" + DeadLetterSpool::kFileName;
    std::error_code error;
    const uintmax_t size = std::filesystem::file_size(path, error);
    if (!error && size != spool_size_) {
      StatusOr<std::string> text = spool_fs_.ReadFile(path);
      if (text.ok()) {
        spool_text_ = std::move(*text);
        spool_size_ = size;
      }
    }
    return spool_text_;
  }

  bool Spooled(const std::string& dedup_key) {
    return SpoolText().find("\"" + dedup_key + "\"") != std::string::npos;
  }

  // A gap record Kafka refused for good is in the spool (its value escaped in a JSON string,
  // or as is).
  bool SpooledGapRecord(const std::string& lost_queue) {
    const std::string& text = SpoolText();
    return text.find("\\\"lost_queue_id\\\":\\\"" + lost_queue + "\\\"") != std::string::npos ||
           text.find("\"lost_queue_id\":\"" + lost_queue + "\"") != std::string::npos;
  }

  static std::string CheckpointPath() {
    return std::string(kStateDir) + "/" + kAccount + ".checkpoint.json";
  }

  std::string CheckPrune(const std::string& queue, int64_t last,
                         const std::vector<QueueEvent>& pruned) {
    // The disk must hold what Zulip is told.
    std::optional<std::string> durable = fs_.DurableContent(CheckpointPath());
    StatusOr<Checkpoint> checkpoint = durable
                                          ? CheckpointStore::Parse(*durable, "durable checkpoint")
                                          : StatusOr<Checkpoint>(Status::NotFound("none"));
    if (!checkpoint.ok() || checkpoint->queue_id != queue || checkpoint->watermark < last) {
      return "GET /events on " + queue + " acknowledged " + std::to_string(last) +
             " but the durable checkpoint holds " +
             (checkpoint.ok() ? checkpoint->queue_id + "@" + std::to_string(checkpoint->watermark)
                              : checkpoint.status().message());
    }
    for (const QueueEvent& event : pruned) {
      if (event.heartbeat) continue;
      if (events_in_kafka_.count({queue, event.id})) continue;
      if (event.message_id && messages_in_kafka_.count(*event.message_id)) continue;
      std::string dedup =
          event.message_id ? "msg:" + std::string(kSite) + ":" + std::to_string(*event.message_id)
                           : std::string(kSite) + ":" + queue + ":" + std::to_string(event.id);
      if (Spooled(dedup)) continue;
      return "Zulip pruned event " + std::to_string(event.id) + " of " + queue +
             (event.message_id ? " (message " + std::to_string(*event.message_id) + ")" : "") +
             " on last_event_id " + std::to_string(last) +
             ", and it is neither in Kafka nor in the dead-letter spool";
    }
    return "";
  }

  void StartBridge() {
    Trace("world: the bridge starts");
    zulip_.set_bridge_running(true);
    auto store = CheckpointStore::Open(kStateDir, fs_);
    if (!store.ok()) {
      // A failing disk at start: systemd restarts the daemon a little later.
      Trace("world: the bridge cannot start: " + store.status().message());
      runtime_.AddTimer(5s, [this] { StartBridge(); });
      zulip_.set_bridge_running(false);
      return;
    }
    store_ = std::move(*store);
    if (change_config_ && std::bernoulli_distribution(0.25)(rng_)) {
      // The operator changed a register argument between runs (one that does not change what
      // the queue sees): the account replaces its queue, a gap said as one, and backfills.
      FlipLifespan();
      Trace("world: the configuration changed while stopped (queue_lifespan_secs " +
            std::to_string(account_.queue_lifespan_secs) + ")");
    }
    process_ = std::make_unique<SimProcess>(runtime_);
    FleetEnv env{*process_, zulip_,
                 kafka_,    *store_,
                 *spool_,   metrics_,
                 runtime_,  [this](const Status& final_commit) { OnStopped(final_commit); },
                 nullptr,   [this] { return rng_(); }};
    fleet_ = std::make_unique<AccountFleet>(ConfigNow(), std::move(env));
    rebuilder_ = std::make_unique<ProducerRebuilder>(*process_, runtime_, kafka_, metrics_,
                                                     RetryBackoff(config_.retry), rng_());
    fleet_->Start();
    bridge_up_ = true;
  }

  // The configuration as the operator has it now.
  Config ConfigNow() const {
    Config config = config_;
    if (configured_) config.accounts = {account_};
    return config;
  }

  void FlipLifespan() {
    account_.queue_lifespan_secs = account_.queue_lifespan_secs == 604800 ? 86400 : 604800;
  }

  // The process is gone: its timers, its producer's queue, its connections.
  void EndProcess() {
    fleet_.reset();
    rebuilder_.reset();
    store_.reset();
    process_.reset();
    bridge_up_ = false;
    zulip_.DropConnections();
    zulip_.set_bridge_running(false);
  }

  // kill -9: nothing but what is durable survives.
  void CrashBridge() {
    Trace("world: kill -9");
    ++crashes_;
    EndProcess();
    kafka_.Crash();
    fs_.Crash();
    ScheduleRestart();
  }

  // SIGTERM: the fleet's stop sequence (stop polling, wait up to flush_timeout_secs for
  // deliveries, commit), then exit.
  void TerminateBridge() {
    Trace("world: SIGTERM");
    ++crashes_;
    bridge_up_ = false;  // no other stop or reload while this one drains
    fleet_->BeginShutdown();
    zulip_.set_bridge_running(false);
  }
  void OnStopped(const Status& final_commit) {
    if (!final_commit.ok()) Trace("world: final commit failed: " + final_commit.message());
    // The exit, after the fleet's own callback has returned.
    runtime_.Post([this] {
      EndProcess();
      kafka_.Crash();  // what was still in flight at the exit
      ScheduleRestart();
    });
  }

  // SIGHUP with the configuration file edited: one of the changes an operator makes.
  void ReloadBridge() {
    std::uniform_int_distribution<int> kind(0, 9);
    switch (kind(rng_)) {
      case 0:
      case 1:
        // Removed, or added back: history starts again at the new first queue.
        configured_ = !configured_;
        if (configured_ && !fs_.DurableContent(CheckpointPath())) {
          // The removal finished (its checkpoint is gone): a new stream begins.
          zulip_.StartHistoryAgain();
          ++history_restarts_;
          logged_since_history_restart_.clear();
          Trace("world: reload adds the account back");
        } else if (configured_) {
          // The removal never finished (a kill -9, a failed commit): the account resumes its
          // kept checkpoint, and its stream goes on.
          Trace("world: reload adds the account back (its checkpoint was kept)");
        } else {
          removed_lost_queues_.insert(zulip_.queues_reported_lost().begin(),
                                      zulip_.queues_reported_lost().end());
          Trace("world: reload removes the account");
        }
        break;
      case 2:
      case 3:
      case 4:
        // A register argument: a new queue, a gap record "configuration changed", a backfill.
        FlipLifespan();
        Trace("world: reload changes queue_lifespan_secs to " +
              std::to_string(account_.queue_lifespan_secs));
        break;
      case 5:
      case 6:
        // Retry settings: every account restarts on its queue.
        config_.retry.initial_backoff_ms = config_.retry.initial_backoff_ms == 1000 ? 500 : 1000;
        Trace("world: reload changes retry.initial_backoff_ms to " +
              std::to_string(config_.retry.initial_backoff_ms));
        break;
      default:
        Trace("world: reload with nothing changed");
        break;
    }
    FleetReload reload = fleet_->Apply(ConfigNow());
    Trace("world: reload " + std::string(reload.applied ? "applied: " : "refused: ") +
          reload.summary);
  }

  void ScheduleRestart() {
    std::uniform_int_distribution<int> ms(500, 30000);
    runtime_.AddTimer(std::chrono::milliseconds(ms(rng_)), [this] { StartBridge(); });
  }

  void ScheduleChaos() {
    std::exponential_distribution<double> gap(1.0 / 1.5);  // an action every 1.5 s on average
    runtime_.AddTimer(DurationFromSeconds(gap(rng_)), [this] {
      if (!chaos_) return;
      ChaosAction();
      CheckViolations();
      ScheduleChaos();
    });
  }

  void ChaosAction() {
    std::uniform_real_distribution<double> p(0, 1);
    double roll = p(rng_) * 100;
    if ((roll -= 55) < 0) {
      zulip_.SendMessage(/*big=*/p(rng_) < 0.02);
    } else if ((roll -= 20) < 0) {
      zulip_.SendTyping();
    } else if ((roll -= 3) < 0) {
      Trace("world: Zulip loses queue " + zulip_.newest_queue());
      zulip_.LoseQueue(zulip_.newest_queue());
    } else if ((roll -= 1) < 0) {
      Trace("world: Zulip crashes and loses every queue");
      zulip_.LoseAllQueues();
    } else if ((roll -= 3) < 0) {
      if (options_.long_outages && kafka_down_ && runtime_.Now() < long_outage_until_) {
        zulip_.SendMessage();  // Kafka stays down through a long outage
        return;
      }
      kafka_down_ = !kafka_down_;
      Trace(std::string("world: Kafka ") + (kafka_down_ ? "goes down" : "comes back"));
      kafka_.set_down(kafka_down_);
      if (kafka_down_ && options_.long_outages && p(rng_) < 0.5) {
        // A long outage: the transfer of a big backlog stays paused for minutes.
        std::uniform_int_distribution<int> secs(310, 700);
        const uint64_t outage = ++kafka_outage_;
        Trace("world: Kafka stays down for minutes");
        runtime_.AddTimer(std::chrono::seconds(secs(rng_)), [this, outage] {
          if (!chaos_ || outage != kafka_outage_ || !kafka_down_) return;
          kafka_down_ = false;
          Trace("world: Kafka comes back after a long outage");
          kafka_.set_down(false);
        });
        long_outage_until_ = runtime_.Now() + std::chrono::seconds(310);
      }

    } else if ((roll -= 3) < 0) {
      bool on = p(rng_) < 0.5;
      double retryable = on ? p(rng_) * 0.2 : 0, permanent = on ? p(rng_) * 0.01 : 0;
      Trace("world: Kafka fails " + std::to_string(retryable) + " retryably, " +
            std::to_string(permanent) + " for good");
      kafka_.set_fault_rates(retryable, permanent);
    } else if ((roll -= 2) < 0) {
      double rate = p(rng_) < 0.5 ? p(rng_) * 0.3 : 0;
      Trace("world: Zulip fails " + std::to_string(rate) + " of requests");
      zulip_.set_fault_rate(rate);
    } else if ((roll -= 2) < 0) {
      double rate = p(rng_) < 0.5 ? p(rng_) * 0.2 : 0;
      Trace("world: the disk fails " + std::to_string(rate) + " of writes and syncs");
      fs_.set_fault_rate(rate);
    } else if ((roll -= 0.5) < 0) {
      std::string topic =
          missing_topic_.empty() ? (p(rng_) < 0.5 ? "zulip.typing" : "zulip.message") : "";
      Trace(topic.empty() ? "world: the missing topic is created"
                          : "world: topic " + topic + " is deleted (auto-creation off)");
      missing_topic_ = topic;
      kafka_.set_missing_topic(topic);
    } else if ((roll -= 0.005) < 0) {
      Trace("world: Zulip refuses every GET /messages from now on (400)");
      zulip_.RefuseMessagesForGood();
    } else if ((roll -= 1) < 0) {
      if (bridge_up_) ReloadBridge();
    } else if ((roll -= 0.3) < 0) {
      if (!bridge_up_) return;
      Trace("world: the Kafka producer dies (fatal error)");
      if (p(rng_) < 0.3) kafka_.FailNextRebuilds(1 + static_cast<int>(rng_() % 4));
      kafka_.KillProducer();
    } else if ((roll -= 2) < 0) {
      if (bridge_up_) CrashBridge();
    } else if ((roll -= 2) < 0) {
      if (bridge_up_) TerminateBridge();
    } else {
      zulip_.SendMessage();
    }
  }

  // The faults stop; everything must arrive within the settle time.
  void Settle() {
    chaos_ = false;
    Trace("world: the faults stop");
    kafka_down_ = false;
    kafka_.set_down(false);
    kafka_.set_fault_rates(0, 0);
    missing_topic_.clear();
    kafka_.set_missing_topic("");
    zulip_.set_fault_rate(0);
    fs_.set_fault_rate(0);
    const Clock::TimePoint deadline = runtime_.Now() + options_.settle;
    std::string why;
    Clock::TimePoint next_check = runtime_.Now();
    while (failure_.empty()) {
      if (runtime_.Now() >= next_check) {
        if (Settled(&why)) return;
        next_check = runtime_.Now() + 1s;
      }
      if (runtime_.Now() >= deadline) {
        Fail("liveness: " + why + " " + std::to_string(options_.settle.count()) +
             " s after the faults stopped");
        return;
      }
      if (!runtime_.Step(std::min(deadline, next_check))) {
        runtime_.AdvanceTo(std::min(deadline, next_check));
      }
    }
  }

  bool Settled(std::string* why) {
    CheckViolations();
    if (!bridge_up_ || zulip_.pending_commits()) {
      *why = "the bridge is not up, or messages are being sent";
      return false;
    }
    if (fleet_->draining_slots() > 0) {
      *why = "a dropped account's slot still waits for reports";
      return false;
    }
    if (!configured_) {
      // Removed by a reload: the removal must finish (its records settled, its queue deleted);
      // nothing more is owed.
      if (fleet_->size() == 0) return true;
      *why = "the removed account is still running";
      return false;
    }
    std::vector<AccountSnapshot> accounts = fleet_->Snapshots();
    if (accounts.size() != 1) {
      *why = "the account is not running";
      return false;
    }
    if (zulip_.refuses_messages()) {
      // No backfill can finish: the account must say so by parking, not retry for ever. (It may
      // also never need one again; then it polls on.)
      AccountState state = accounts[0].state;
      if (state == AccountState::kParked || state == AccountState::kPolling) return true;
      *why = "GET /messages is refused for good and the account is " +
             std::string(AccountStateName(state)) + ", not parked";
      return false;
    }
    // Nothing the account's stream does not owe: history sent well before its first queue (the
    // read-back may reach back to the margin before it) never reaches Kafka. Before a history
    // restart every message in Kafka counts; after one, only those logged since.
    for (int64_t id : history_restarts_ > 0 ? logged_since_history_restart_ : messages_in_kafka_) {
      if (zulip_.HistorySentLongBefore(id, std::chrono::seconds(kBackfillRewindSeconds) + 5s)) {
        *why = "message " + std::to_string(id) +
               " is history sent long before the account's first queue, and it is in Kafka";
        Fail(*why);
        return false;
      }
    }
    const int64_t floor = zulip_.first_max_message_id().value_or(-1);
    const std::vector<int64_t> visible = zulip_.CommittedMessageIds(/*visible_only=*/true);
    for (int64_t id : zulip_.CommittedMessageIds()) {
      if (!std::binary_search(visible.begin(), visible.end(), id)) {
        if (messages_in_kafka_.count(id)) {
          *why = "message " + std::to_string(id) + " is in Kafka, but the account cannot see it";
          Fail(*why);
          return false;
        }
        continue;
      }
      if (messages_in_kafka_.count(id)) continue;
      // History, not owed: committed before the first queue was registered. A lower id
      // committed after it reached that queue as an event, so it is owed.
      if (id <= floor && zulip_.CommittedAtFirstRegistration(id)) {
        continue;
      }
      if (Spooled("msg:" + std::string(kSite) + ":" + std::to_string(id))) continue;
      *why = "message " + std::to_string(id) + " is not in Kafka";
      return false;
    }
    for (const std::string& lost : zulip_.queues_reported_lost()) {
      if (removed_lost_queues_.count(lost)) continue;
      if (!gap_lost_queues_.count(lost) && !SpooledGapRecord(lost)) {
        *why = "queue " + lost + " was lost and no gap record names it";
        return false;
      }
    }
    return true;
  }

  const SimulationOptions options_;
  std::mt19937_64 rng_;
  SimRuntime runtime_;
  SimFs fs_;
  const ModelZulip::Registration registration_;
  ModelZulip zulip_;
  ModelKafka kafka_;
  testing::TempDir spool_dir_;
  NoSyncFs spool_fs_;
  MetricsRegistry metrics_;
  // The configuration: one account, in it (configured_) or removed by a reload.
  Config config_;
  AccountConfig account_;
  bool configured_ = true;
  // Queues Zulip reported lost before a reload removed the account: it owes no gap record
  // for them (its history ended with the removal).
  std::set<std::string> removed_lost_queues_;
  std::unique_ptr<DeadLetterSpool> spool_;
  // One bridge process, while it runs: what it schedules, its checkpoints, its accounts.
  std::unique_ptr<SimProcess> process_;
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<AccountFleet> fleet_;
  std::unique_ptr<ProducerRebuilder> rebuilder_;
  bool bridge_up_ = false;
  bool chaos_ = true;
  // Whether restarts may come with a changed configuration (SimulationOptions).
  const bool change_config_ = options_.config_changes;
  bool kafka_down_ = false;
  std::string missing_topic_;
  uint64_t kafka_outage_ = 0;
  Clock::TimePoint long_outage_until_{};
  uint64_t crashes_ = 0;
  std::set<int64_t> messages_in_kafka_;
  // Messages logged since the account was last added back (history started again), and how
  // many times it was.
  std::set<int64_t> logged_since_history_restart_;
  uint64_t history_restarts_ = 0;
  std::set<std::pair<std::string, int64_t>> events_in_kafka_;
  std::set<std::string> gap_lost_queues_;
  std::deque<std::string> trace_;
  std::string spool_text_;
  uintmax_t spool_size_ = 0;
  std::string failure_;
};

}  // namespace

SimulationResult RunSimulation(const SimulationOptions& options) {
  World world(options);
  return world.Run();
}

}  // namespace zb::sim
