// Account: one configured Zulip account's state machine, which keeps one server-side event queue
// drained into Kafka without ever acknowledging an event before Kafka has it (DESIGN.md, "The
// one invariant").
//
// One batch is in flight at a time:
//
//                      ┌──────────── backfilling (GapRecovery) ◄───┐
//                      ▼                 │ batch durable           │ a lost queue's messages
//   registering ─► committing the new queue ─► polling (GET /events, streamed) ─► draining
//        ▲                                         ▲                                 │
//        │ queue lost                              │ W durable                       ▼
//        └──────────────────────────────────── committing W ◄────── every id settled
//
//   any state ─► backing off (retry) · parked (an operator must act) · stopped (final)
//
// While a response streams in, each event is split out as its exact bytes (EventSplitter),
// routed (EventRouter) and produced (Publisher) at once; when the producer is full the transfer
// is paused and picked up again when deliveries make room. Heartbeats are settled at once and
// never published. Delivery reports settle ids in the Watermark; when the response is complete
// and every id of it is settled, the watermark W is staged in the CheckpointStore and the owner
// commits it with everyone else's at the end of the loop turn; only then does the next GET send
// last_event_id=W. A new queue's id is durable before its first GET, which sends
// last_event_id=-1 (FACTS §2.2: the register window).
//
// A lost queue (DESIGN.md "Gaps"): a new queue is registered; its id, a gap record and "backfill
// from A, reading back to messages sent 300 s before the lost queue's last settled poll" are
// durable together; then the messages the lost queue could have delivered are read back, one
// batch at a time (each batch in Kafka and its anchor durable before the next), and only then is
// the new queue polled. GapRecovery decides all of that and says why nothing is lost; the
// account drives it through these states and produces what it reads. A message is never skipped
// as "already published" unless Kafka acknowledged that very message id in this run
// (PublishedMessages).
//
// Errors, classified by ZulipClient: transient ones (5xx, timeouts, resets, truncated bodies)
// back off with full jitter and retry; a 429 waits its Retry-After to the fraction; a lost
// queue re-registers; a 401, a register refused as a configuration error, or a backfill page
// refused with a 4xx (a narrow naming a channel that is gone) parks the account with the
// server's reason.
//
// Collaborators, each with one job, owned here and reporting back by callback or return value:
//   InFlightRecords  the records handed to the publisher and their tokens
//   RefusedRecords   what Kafka did not take: produced again, held on a missing topic, or spooled
//   GapRecovery      a lost queue: its facts, its gap record, the backfill's plan and progress
//                    (its MessageBackfill issues the GET /messages)
//   GapRecords       gap records, durable in the checkpoint until Kafka acknowledges them
//   PublishedMessages the message ids Kafka acknowledged in this run (the skip rule's proof)
//   AccountMetrics   the account's series; register_request.h: what POST /register sends
//
// Threads: everything runs on the loop thread, delivery reports included (the owner moves them
// there). Not copyable.
#ifndef ZB_DAEMON_PIPELINE_ACCOUNT_H_
#define ZB_DAEMON_PIPELINE_ACCOUNT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/base/backoff.h"
#include "daemon/base/clock.h"
#include "daemon/base/metrics.h"
#include "daemon/base/scheduler.h"
#include "daemon/config/config.h"
#include "daemon/kafka/publisher.h"
#include "daemon/pipeline/account_metrics.h"
#include "daemon/pipeline/account_policy.h"
#include "daemon/pipeline/event_router.h"
#include "daemon/pipeline/gap_records.h"
#include "daemon/pipeline/gap_recovery.h"
#include "daemon/pipeline/in_flight_records.h"
#include "daemon/pipeline/published_messages.h"
#include "daemon/pipeline/refused_records.h"
#include "daemon/pipeline/watermark.h"
#include "daemon/state/checkpoint_store.h"
#include "daemon/state/dead_letter_spool.h"
#include "daemon/zulip/event_splitter.h"
#include "daemon/zulip/message_backfill.h"
#include "daemon/zulip/register_request.h"
#include "daemon/zulip/zulip_client.h"

namespace zb {

class Account;

// The oldest Zulip server the bridge works with: feature level 155 (Zulip Server 6.0) brought
// include_anchor on GET /messages, which the gap backfill relies on, and every error carries a
// "code" since feature level 76.
inline constexpr int64_t kMinZulipFeatureLevel = 155;

enum class AccountState {
  kIdle,             // not started yet
  kRegistering,      // POST /register in flight
  kCommittingQueue,  // a new queue id is being made durable before its first GET
  kPolling,          // GET /events in flight (possibly paused while Kafka's queue is full)
  kDraining,         // the response is complete; waiting for Kafka to acknowledge its events
  kBackfilling,      // after a gap: reading messages through GET /messages into Kafka
  kCommitting,       // the new watermark is being made durable
  kBackingOff,       // waiting before a retry
  kParked,           // stopped for a reason only an operator can fix
  kStopped,          // stopped by shutdown; in-flight records still settle
};
std::string_view AccountStateName(AccountState state);

// What the owner (the daemon) lends an account. Every reference outlives the account.
struct AccountEnv {
  Scheduler& loop;
  HttpTransport& transport;
  Publisher& publisher;
  CheckpointStore& checkpoints;
  // Where records Kafka will never take go (see the class comment).
  DeadLetterSpool& dead_letters;
  MetricsRegistry& metrics;
  Clock& clock;
  // Asks the owner to commit the checkpoint store at the end of this loop turn and then call
  // OnCommitted() on the account. Called after the account staged its checkpoint.
  std::function<void(Account&)> request_commit;
  // metrics.per_account_type: also count events per account and type (series account x type).
  bool per_account_type_metrics = false;
  // The seed of the account's backoff jitter; unset: from std::random_device. The simulation
  // (tests/sim/) sets it, so that one seed decides every wait.
  std::optional<uint64_t> backoff_seed;
};

// What /readyz, `status` and STATUS= show about an account.
struct AccountSnapshot {
  std::string name;
  AccountState state = AccountState::kIdle;
  std::string queue_id;
  int64_t durable_watermark = -1;  // the last_event_id Zulip may be told
  int64_t last_received = -1;
  size_t in_flight = 0;    // records produced and not yet settled
  uint64_t forwarded = 0;  // records Kafka acknowledged since start (live and backfilled)
  // Wall time the last event (not a heartbeat) arrived from the queue; nullopt before the first.
  std::optional<int64_t> last_event_unix_ms;
  // Set when parked: why, and parked_reason, the operator's words for it (ParkedReasonText).
  std::optional<ParkReason> park_reason;
  std::string parked_reason;
  std::string last_error;
};

class Account {
 public:
  // `slot` makes the account's Kafka tokens unique in the process (it is their top 16 bits).
  Account(const AccountConfig& config, const EventRouterOptions& router_options,
          const BackoffPolicy& backoff_policy, uint16_t slot, AccountEnv env);
  ~Account();
  Account(const Account&) = delete;
  Account& operator=(const Account&) = delete;

  // Starts from `checkpoint` (resume its queue when it is for this site and account) or, with
  // none, registers a new queue.
  void Start(std::optional<Checkpoint> checkpoint);

  // Stops taking events: cancels the request and timers in flight. Records already produced
  // still settle through OnDelivery(). Idempotent.
  void Stop();

  // For an account being removed, after Stop() and once its records settled: deletes its Zulip
  // queue (a queue kept for its lifespan keeps the bot counted as online; for an account never
  // started, the queue of its durable checkpoint) and calls `done` with whether it is gone
  // (deleted, or already gone). Without a queue, `done(true)` at once.
  void DeleteQueueAtZulip(std::function<void(bool gone)> done);

  // A delivery report for one of this account's tokens.
  void OnDelivery(const DeliveryReport& report);

  // Kafka's queue may have room again (some delivery was reported): resumes a paused transfer.
  void OnProducerRoom();

  // The owner committed the checkpoint store (OK) or failed to (the account stops
  // acknowledging and retries the commit after a backoff).
  void OnCommitted(const Status& status);

  // At shutdown, after deliveries settled: stages the settled watermark if it moved past the
  // durable one, so that the final commit keeps it. True when something was staged.
  bool StageFinalCheckpoint();

  const std::string& name() const { return config_.name; }
  const AccountConfig& config() const { return config_; }
  uint16_t slot() const { return slot_; }
  AccountState state() const { return state_; }
  size_t in_flight() const { return in_flight_.size(); }
  // Records Kafka acknowledged since start (live events and backfilled messages).
  uint64_t forwarded() const;
  AccountSnapshot Snapshot() const;

  // The slot a Kafka token was made for (InFlightRecords).
  static uint16_t SlotOfToken(uint64_t token) { return InFlightRecords::SlotOfToken(token); }

 private:
  void Register();
  void OnRegistered(const ZulipReply<RegisterResult>& reply);
  void Poll();
  bool OnBodyChunk(std::string_view chunk);
  bool OnEvent(std::string_view event_json);
  void OnPollDone(ZulipOutcome outcome);
  void MaybeAdvance();
  // `token`'s record is in Kafka or durably in the dead-letter spool: its id counts as settled.
  void Settle(uint64_t token);
  void StageCheckpoint(AccountState next);
  // `action` failed as `outcome` says: park, re-register after a lost queue, or do `action`
  // again after a backoff.
  void HandleFailure(const ZulipOutcome& outcome, RetryAction action);
  // Does `action` after the backoff's next delay (or the server's Retry-After), unless the
  // account stopped or parked meanwhile.
  void RetryLater(std::optional<double> retry_after_seconds, RetryAction action);
  void Retry(RetryAction action);
  // Stages the checkpoint again and asks for its commit, as `state` (after a failed commit).
  void Recommit(AccountState state);
  // `detail`: the server's words, or what the account found (ParkedReasonText).
  void Park(ParkReason reason, std::string_view detail);
  void LoseQueue(const std::string& reason);
  // What the gap record says about the queue being left, as of now.
  LostQueue FactsOfQueueLeft(std::string reason) const;
  // DELETE /events for `queue_id` (the account's queue when it is removed, or the old queue
  // of a configuration change once the new one is durable, so that Zulip does not keep it,
  // and the bot counted as online, for its whole lifespan). Logs the outcome; `done`, if set,
  // learns whether the queue is gone.
  void DeleteQueue(const std::string& queue_id, std::function<void(bool gone)> done);
  // Gaps (DESIGN.md "Gaps", GapRecovery): the gap record, then the backfill one batch at a time,
  // each batch acknowledged by Kafka and its anchor made durable before the next.
  // `gap` is kept (and in the next checkpoint) until Kafka has it; produced once the new queue
  // is durable.
  void AddGapRecord(const GapRecord& gap);
  void RunBackfillBatch();
  void OnBackfillBatch(const ZulipOutcome& outcome, const BackfillBatch& batch);
  // Routes and produces one backfilled message, received at `now_ms`, for GapRecovery.
  BackfillProduce ProduceBackfilled(const BackfilledMessage& message, int64_t now_ms);
  void SetState(AccountState state);
  void NotePacing(const RateLimitInfo& info);
  // An event (not a heartbeat) arrived: the last event time and its gauge.
  void NoteEventReceived();
  Checkpoint CurrentCheckpoint(int64_t watermark) const;

  const AccountConfig config_;
  const std::string register_fingerprint_;
  const uint16_t slot_;
  AccountEnv env_;
  ZulipClient client_;
  EventRouter router_;
  Backoff backoff_;
  std::unique_ptr<AccountMetrics> metrics_;

  AccountState state_ = AccountState::kIdle;
  std::string queue_id_;
  uint64_t generation_ = 0;
  int64_t feature_level_ = 0;
  std::optional<int64_t> longpoll_timeout_seconds_;
  Watermark watermark_;
  int64_t durable_watermark_ = -1;
  int64_t staged_watermark_ = -1;
  int64_t last_published_message_id_ = -1;
  int64_t registered_at_unix_ms_ = 0;
  int64_t last_good_poll_unix_ms_ = 0;
  int64_t last_event_unix_ms_ = 0;
  int64_t poll_sent_unix_ms_ = 0;            // when the GET in flight was sent
  int64_t last_good_poll_sent_unix_ms_ = 0;  // when the last GET that returned 200 was sent  // 0:
                                             // no event yet (heartbeats do not count)
  // When the last poll whose events all settled returned (see Checkpoint).
  int64_t settled_poll_unix_ms_ = 0;
  // Messages Kafka acknowledged in this run: a message event or a backfilled message whose id
  // is here is settled without publishing it again; nothing else is ever skipped.
  PublishedMessages published_messages_;
  // The queue a configuration change replaces, until the new queue is durable and it is deleted.
  std::string replaced_queue_id_;
  ZulipClient::Handle delete_request_ = 0;

  // A lost queue and the backfill after it (or after a first start with backfill_from),
  // checkpointed.
  GapRecovery recovery_;
  std::optional<ParkReason> park_reason_;
  std::string parked_reason_;
  std::string last_error_;

  // The GET in flight.
  ZulipClient::Handle request_ = 0;
  std::unique_ptr<EventSplitter> splitter_;
  bool transfer_paused_ = false;
  bool response_complete_ = false;
  Status event_error_;  // why OnEvent refused the body (not a pause)
  int64_t receive_time_ms_ = 0;
  RoutedRecord routed_;  // reused across events

  InFlightRecords in_flight_;
  // Records Kafka did not take: produced again, held on a missing topic, or spooled.
  RefusedRecords refused_;
  // Gap records Kafka has not acknowledged yet (durable in the checkpoint until it has).
  GapRecords gap_records_;
  // The poll was stopped because Kafka refused an event at once (missing topic, spool
  // refusal, dead producer): retried after a backoff, not counted as a Zulip error.
  bool kafka_hold_ = false;

  Scheduler::TimerId retry_timer_ = 0;
  Scheduler::TimerId room_timer_ = 0;  // a paused transfer's fallback retry
  Clock::TimePoint not_before_{};      // X-RateLimit pacing: no request before this
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_ACCOUNT_H_
