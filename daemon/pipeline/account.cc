#include "daemon/pipeline/account.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <random>
#include <utility>

#include "daemon/base/log.h"
#include "daemon/pipeline/control_record.h"

namespace zb {
namespace {

// A paused transfer also tries again after this long: librdkafka may report the delivery that
// made room before its queue count drops, and then no later delivery would wake the account.
constexpr auto kRoomRetryDelay = std::chrono::milliseconds(100);
// How many message ids an account remembers as published (PublishedMessages): enough to skip
// every copy a backfill and its new queue share in all but the largest gaps (8 bytes and a hash
// node each).
constexpr size_t kPublishedMessagesKept = 16384;
int64_t WallMillis(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.WallNow().time_since_epoch())
      .count();
}

int64_t WallMicros(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::microseconds>(clock.WallNow().time_since_epoch())
      .count();
}

}  // namespace

std::string_view AccountStateName(AccountState state) {
  switch (state) {
    case AccountState::kIdle:
      return "idle";
    case AccountState::kRegistering:
      return "registering";
    case AccountState::kCommittingQueue:
      return "committing_queue";
    case AccountState::kPolling:
      return "polling";
    case AccountState::kDraining:
      return "draining";
    case AccountState::kBackfilling:
      return "backfilling";
    case AccountState::kCommitting:
      return "committing";
    case AccountState::kBackingOff:
      return "backing_off";
    case AccountState::kParked:
      return "parked";
    case AccountState::kStopped:
      return "stopped";
  }
  return "unknown";
}

Account::Account(const AccountConfig& config, const EventRouterOptions& router_options,
                 const BackoffPolicy& backoff_policy, uint16_t slot, AccountEnv env)
    : config_(config),
      register_fingerprint_(RegisterFingerprint(config)),
      slot_(slot),
      env_(std::move(env)),
      client_(env_.transport, ZulipClientOptionsFor(config)),
      router_(router_options),
      backoff_(backoff_policy, env_.clock, env_.backoff_seed.value_or(std::random_device{}())),
      metrics_(std::make_unique<AccountMetrics>(env_.metrics, config.name,
                                                env_.per_account_type_metrics)),
      published_messages_(kPublishedMessagesKept),
      recovery_(config_, {client_, *metrics_}),
      in_flight_(slot),
      refused_({env_.loop, env_.publisher, env_.dead_letters, *metrics_, env_.clock, config.name,
                [this](uint64_t token) { Settle(token); },
                [this](const std::string& error) { last_error_ = error; }}),
      gap_records_({env_.loop, env_.publisher, refused_, env_.clock, config.name, config.site,
                    router_.control_topic(), router_.options().bridge_version,
                    [this] { return in_flight_.NextToken(); },
                    [this](uint64_t token, int64_t timestamp_ms) {
                      in_flight_.Add(token, InFlightRecord{generation_, -1, std::nullopt,
                                                           RecordKind::kControl, timestamp_ms});
                    }}) {}

Account::~Account() {
  Stop();
  // Stop() keeps the re-produce and spool timers so that held records still settle at
  // shutdown; an account that goes away (a reload removed it) must not leave them to fire on
  // freed memory.
  env_.loop.CancelTimer(room_timer_);
}

void Account::SetState(AccountState state) {
  // Stopped and parked are final for this object (a reload builds a new one): a record that
  // settles, or a commit that completes, afterwards must not bring the account back to life.
  if (state_ == AccountState::kStopped || state_ == AccountState::kParked) return;
  state_ = state;
}

Checkpoint Account::CurrentCheckpoint(int64_t watermark) const {
  Checkpoint checkpoint;
  checkpoint.site = config_.site;
  checkpoint.account = config_.name;
  checkpoint.queue_id = queue_id_;
  checkpoint.watermark = watermark;
  checkpoint.last_published_message_id = last_published_message_id_;
  checkpoint.registered_at_unix_ms = registered_at_unix_ms_;
  checkpoint.register_fingerprint = register_fingerprint_;
  checkpoint.feature_level = feature_level_;
  checkpoint.settled_poll_unix_ms = settled_poll_unix_ms_;
  recovery_.WriteTo(checkpoint);
  checkpoint.pending_gap_records = gap_records_.Durable();
  return checkpoint;
}

void Account::Start(std::optional<Checkpoint> checkpoint) {
  ZB_DCHECK_ON_LOOP(env_.loop);
  if (checkpoint && checkpoint->site == config_.site) {
    // Not a bound for skipping anything: a lower message may not be in Kafka (acknowledgements
    // come out of order across partitions, and message events out of id order). Only where a
    // backfill starts reading.
    last_published_message_id_ = checkpoint->last_published_message_id;
    registered_at_unix_ms_ = checkpoint->registered_at_unix_ms;
    recovery_.Restore(*checkpoint);
    feature_level_ = checkpoint->feature_level;
    settled_poll_unix_ms_ = checkpoint->settled_poll_unix_ms;
    // The gap record's last_good_poll for a loss found on the first poll of this run.
    last_good_poll_unix_ms_ = settled_poll_unix_ms_;
  }
  if (checkpoint) {
    // Reports of gaps that Kafka had not acknowledged before the stop.
    gap_records_.Restore(checkpoint->pending_gap_records);
    gap_records_.ProduceAll();
  }
  if (checkpoint && !checkpoint->queue_id.empty() && checkpoint->site == config_.site) {
    queue_id_ = checkpoint->queue_id;
    durable_watermark_ = staged_watermark_ = checkpoint->watermark;
    watermark_ = Watermark(checkpoint->watermark);
    metrics_->watermark.Set(static_cast<double>(durable_watermark_));
    if (!checkpoint->register_fingerprint.empty() &&
        checkpoint->register_fingerprint != register_fingerprint_) {
      // The queue was registered for another configuration: it delivers what that one asked
      // for. Events between its last acknowledged one and the new queue are not carried over
      // (messages are: the backfill reads them), so this is a gap, said as one.
      LogAccount(LogLevel::kWarn, name(),
                 "register arguments changed; replacing the event queue (gap record, message "
                 "backfill, then the old queue is deleted)",
                 {{"queue_id", queue_id_}, {"last_event_id", durable_watermark_}});
      replaced_queue_id_ = queue_id_;
      recovery_.NoteQueueLost(FactsOfQueueLeft("configuration changed"));
      Register();
      return;
    }
    LogAccount(LogLevel::kInfo, name(), "resuming event queue",
               {{"queue_id", queue_id_}, {"last_event_id", durable_watermark_}});
    if (recovery_.active()) {
      // Stopped in the middle of a backfill: go on from its durable anchor before polling.
      LogAccount(LogLevel::kInfo, name(), "resuming the backfill",
                 {{"after_message_id", recovery_.anchor()}});
      RunBackfillBatch();
      return;
    }
    Poll();
    return;
  }
  if (!checkpoint) recovery_.OnFirstStart();
  if (checkpoint && !checkpoint->queue_id.empty()) {
    LogAccount(LogLevel::kWarn, name(), "checkpoint is for another site; registering anew",
               {{"checkpoint_site", checkpoint->site}, {"site", config_.site}});
  }
  Register();
}

void Account::Stop() {
  ZB_DCHECK_ON_LOOP(env_.loop);
  if (request_ != 0) {
    client_.Cancel(request_);
    request_ = 0;
  }
  if (delete_request_ != 0) {
    client_.Cancel(delete_request_);
    delete_request_ = 0;
  }
  recovery_.Cancel();
  env_.loop.CancelTimer(retry_timer_);
  retry_timer_ = 0;
  // Pending gap records stay in the checkpoint and are published at the next start.
  gap_records_.Stop();
  if (state_ != AccountState::kParked) SetState(AccountState::kStopped);
}

void Account::DeleteQueueAtZulip(std::function<void(bool gone)> done) {
  ZB_DCHECK_ON_LOOP(env_.loop);
  std::string queue_id = queue_id_;
  if (queue_id.empty()) {
    // Never started (a reload removed it before its delayed start), or no queue resumed yet:
    // the queue to delete is the one its durable checkpoint names, which is about to go.
    if (StatusOr<Checkpoint> durable = env_.checkpoints.Load(config_.name);
        durable.ok() && durable->site == config_.site) {
      queue_id = durable->queue_id;
    }
  }
  if (queue_id.empty()) {
    done(true);
    return;
  }
  DeleteQueue(queue_id, std::move(done));
}

void Account::DeleteQueue(const std::string& queue_id, std::function<void(bool gone)> done) {
  delete_request_ = client_.DeleteQueue(
      queue_id, [this, queue_id, done = std::move(done)](const ZulipOutcome& outcome) {
        delete_request_ = 0;
        // A queue Zulip no longer knows is as good as deleted.
        bool gone = outcome.ok() || outcome.kind == ZulipErrorKind::kQueueLost;
        if (gone) {
          LogAccount(LogLevel::kInfo, name(), "event queue deleted", {{"queue_id", queue_id}});
        } else {
          // Nothing is lost by keeping it: Zulip drops it after its lifespan.
          LogAccount(LogLevel::kWarn, name(),
                     "could not delete the event queue; Zulip drops it after its lifespan",
                     {{"queue_id", queue_id}, {"error", outcome.status.message()}});
        }
        if (done) done(gone);
      });
}

void Account::Register() {
  if (state_ == AccountState::kStopped || state_ == AccountState::kParked) return;
  SetState(AccountState::kRegistering);
  request_ =
      client_.Register(RegisterFields(config_), [this](const ZulipReply<RegisterResult>& reply) {
        request_ = 0;
        OnRegistered(reply);
      });
}

void Account::OnRegistered(const ZulipReply<RegisterResult>& reply) {
  NotePacing(reply.outcome.rate_limit);
  if (!reply.outcome.ok()) {
    HandleFailure(reply.outcome, RetryAction::kRegister);
    return;
  }
  const RegisterResult& result = reply.value;
  if (result.zulip_feature_level < kMinZulipFeatureLevel) {
    Park(ParkReason::kZulipTooOld,
         "Zulip server feature level " + std::to_string(result.zulip_feature_level) + " (version " +
             result.zulip_version + ") is older than the oldest supported, " +
             std::to_string(kMinZulipFeatureLevel));
    return;
  }
  for (const std::string& ignored : result.ignored_parameters_unsupported) {
    if (ignored == "queue_lifespan_secs") {
      metrics_->lifespan_ignored.Inc();
      LogAccount(LogLevel::kWarn, name(),
                 "server ignored queue_lifespan_secs: the queue expires after 10 minutes "
                 "without a poll, so a longer Kafka outage becomes a gap",
                 {{"zulip_version", result.zulip_version}});
    }
  }
  backoff_.Reset();
  ++generation_;
  // A queue id already set means this registration replaces a lost queue, including one
  // resumed from a checkpoint (generation_ counts only the queues registered in this run).
  const bool replaces_queue = !queue_id_.empty();
  queue_id_ = result.queue_id;
  registered_at_unix_ms_ = WallMillis(env_.clock);
  // Nothing of the new queue is unsettled yet.
  settled_poll_unix_ms_ = registered_at_unix_ms_;
  feature_level_ = result.zulip_feature_level;
  longpoll_timeout_seconds_ = result.event_queue_longpoll_timeout_seconds;
  // A new queue starts from a fresh checkpoint; its first GET sends -1 so that the events of
  // the register window arrive as events (FACTS §2.2).
  watermark_ = Watermark(-1);
  durable_watermark_ = -1;
  metrics_
      ->Registrations(!replaced_queue_id_.empty() ? "configuration_changed"
                      : replaces_queue            ? "queue_lost"
                                                  : "start")
      .Inc();
  if (std::optional<GapRecord> gap = recovery_.OnRegistered(result, last_published_message_id_,
                                                            registered_at_unix_ms_ / 1000)) {
    AddGapRecord(*gap);
  }
  LogAccount(LogLevel::kInfo, name(), "event queue registered",
             {{"queue_id", queue_id_},
              {"zulip_version", result.zulip_version},
              {"feature_level", feature_level_}});
  StageCheckpoint(AccountState::kCommittingQueue);
}

void Account::StageCheckpoint(AccountState next) {
  staged_watermark_ = next == AccountState::kCommittingQueue ? -1 : watermark_.settled();
  gap_records_.MarkStaged();
  recovery_.MarkStaged();
  env_.checkpoints.Stage(config_.name, CurrentCheckpoint(staged_watermark_));
  SetState(next);
  env_.request_commit(*this);
}

void Account::OnCommitted(const Status& status) {
  ZB_DCHECK_ON_LOOP(env_.loop);
  if (state_ != AccountState::kCommittingQueue && state_ != AccountState::kCommitting) return;
  if (!status.ok()) {
    // Nothing durable moved, so nothing may be acknowledged: keep the watermark staged and try
    // the commit again after a pause.
    last_error_ = status.message();
    LogAccount(LogLevel::kError, name(), "checkpoint not durable; not acknowledging",
               {{"error", status.message()}});
    RetryAction retry =
        state_ == AccountState::kCommittingQueue ? RetryAction::kCommitQueue : RetryAction::kCommit;
    SetState(AccountState::kBackingOff);
    RetryLater(std::nullopt, retry);
    return;
  }
  bool queue_committed = state_ == AccountState::kCommittingQueue;
  durable_watermark_ = staged_watermark_;
  metrics_->watermark.Set(static_cast<double>(durable_watermark_));
  // A gap record is produced once it and the new queue are durable together.
  if (queue_committed) gap_records_.ProduceAll();
  if (recovery_.active()) {
    if (queue_committed && !replaced_queue_id_.empty()) {
      // The new queue is durable: the old one is not needed to resume any more.
      DeleteQueue(replaced_queue_id_, nullptr);
      replaced_queue_id_.clear();
    }
    if (queue_committed || recovery_.reading()) {
      if (std::optional<ZulipOutcome> failure = recovery_.TakeRetry()) {
        // A page or a record failed: wait as that failure asks, then read on.
        HandleFailure(*failure, RetryAction::kBackfill);
        return;
      }
      RunBackfillBatch();
      return;
    }
  }
  Poll();
}

bool Account::StageFinalCheckpoint() {
  ZB_DCHECK_ON_LOOP(env_.loop);
  if (queue_id_.empty()) return false;
  // The floor may have come down (a message below it arrived) with nothing settled since.
  if (watermark_.settled() <= durable_watermark_ && !gap_records_.changed_since_staged() &&
      !recovery_.floor_changed_since_staged()) {
    return false;
  }
  staged_watermark_ = std::max(watermark_.settled(), durable_watermark_);
  env_.checkpoints.Stage(config_.name, CurrentCheckpoint(staged_watermark_));
  return true;
}

void Account::Poll() {
  if (state_ == AccountState::kStopped || state_ == AccountState::kParked) return;
  Clock::TimePoint now = env_.clock.Now();
  if (now < not_before_) {
    // Paced on X-RateLimit-Remaining: wait for the window to reset rather than earn a 429.
    SetState(AccountState::kBackingOff);
    retry_timer_ = env_.loop.AddTimerAt(not_before_, [this] {
      retry_timer_ = 0;
      Poll();
    });
    return;
  }
  SetState(AccountState::kPolling);
  // Zulip answers with what its queue holds when the GET arrives: the time it is sent bounds
  // what the answer covers from below (the transfer may take minutes while Kafka is full).
  poll_sent_unix_ms_ = WallMillis(env_.clock);
  splitter_ = std::make_unique<EventSplitter>(
      [this](std::string_view event_json) { return OnEvent(event_json); });
  transfer_paused_ = false;
  response_complete_ = false;
  event_error_ = Status::Ok();
  kafka_hold_ = false;
  GetEventsRequest request;
  request.queue_id = queue_id_;
  request.last_event_id = durable_watermark_;
  request.longpoll_timeout_seconds = longpoll_timeout_seconds_;
  request_ = client_.GetEvents(
      request, [this](std::string_view chunk) { return OnBodyChunk(chunk); },
      [this](ZulipOutcome outcome) {
        request_ = 0;
        OnPollDone(std::move(outcome));
      });
}

bool Account::OnBodyChunk(std::string_view chunk) {
  receive_time_ms_ = WallMillis(env_.clock);
  StatusOr<bool> taken = splitter_->FeedAllOrPause(chunk);
  if (!taken.ok()) event_error_ = taken.status();
  if (event_error_.ok()) {
    transfer_paused_ = !*taken;
    if (transfer_paused_ && room_timer_ == 0) {
      room_timer_ = env_.loop.AddTimer(kRoomRetryDelay, [this] {
        room_timer_ = 0;
        OnProducerRoom();
      });
    }
    return *taken;
  }
  // A malformed body, or an event that cannot go to Kafka: stop this transfer and retry the
  // poll after a backoff (from the durable watermark, so nothing is skipped).
  client_.Cancel(request_);
  request_ = 0;
  env_.loop.Post([this, generation = generation_] {
    if (generation != generation_ || state_ != AccountState::kPolling || request_ != 0) return;
    if (kafka_hold_) {
      // Kafka, not Zulip, refused: hold the account (the queue buffers) and poll again later
      // from the durable watermark. The reason was logged where it happened.
      kafka_hold_ = false;
      last_error_ = event_error_.message();
      SetState(AccountState::kBackingOff);
      RetryLater(std::nullopt, RetryAction::kPoll);
      return;
    }
    ZulipOutcome outcome;
    outcome.kind = ZulipErrorKind::kTransient;
    outcome.status = Status::Unavailable("GET /events: " + event_error_.message());
    HandleFailure(outcome, RetryAction::kPoll);
  });
  return false;
}

bool Account::OnEvent(std::string_view event_json) {
  StatusOr<EventHeader> header = ParseEventHeader(event_json);
  if (!header.ok()) {
    // Every event on a queue has an id and a type; without the id the watermark cannot pass
    // it, so the body is treated as broken and fetched again.
    LogAccount(LogLevel::kError, name(), "event without id or type; retrying the poll",
               {{"error", header.status().message()}, {"bytes", event_json.size()}});
    event_error_ = header.status();
    return false;
  }
  const EventHeader& event = *header;
  if (event.id <= watermark_.last_received()) {
    // Already received in an earlier attempt of this batch (that attempt failed after it was
    // produced): it settles through its first record.
    metrics_->duplicates_skipped.Inc();
    return true;
  }
  if (event.message_id) recovery_.NoteLiveMessage(*event.message_id);
  if (event.message_id && published_messages_.Contains(*event.message_id)) {
    // Kafka has this message already (the backfill after a gap read it, or the queue it
    // replaced delivered it): settled without publishing it twice. Only a proven id is skipped.
    (void)watermark_.ReceiveSettled(event.id);
    metrics_->received.Inc();
    metrics_->duplicates_skipped.Inc();
    NoteEventReceived();
    return true;
  }
  if (event.type == "heartbeat") {
    (void)watermark_.ReceiveSettled(event.id);
    metrics_->received.Inc();
    metrics_->heartbeats.Inc();
    metrics_->last_heartbeat.Set(static_cast<double>(receive_time_ms_) / 1000.0);
    return true;
  }
  Status routed =
      router_.Route(RouteInput{config_.name, event, queue_id_, feature_level_}, routed_);
  if (!routed.ok()) {
    LogAccount(LogLevel::kError, name(), "cannot route event", {{"error", routed.message()}});
    event_error_ = routed;
    return false;
  }
  uint64_t token = in_flight_.NextToken();
  KafkaRecord record;
  record.topic = routed_.topic;
  if (routed_.key) record.key = *routed_.key;
  record.value = event_json;
  record.headers = routed_.headers;
  record.timestamp_ms = receive_time_ms_;
  record.token = token;
  Status produced = env_.publisher.Produce(record);
  if (produced.IsUnavailable()) return false;  // queue full: pause until deliveries make room
  if (produced.IsInvalidArgument()) {
    // The producer will never take this record (larger than message.max.bytes...): it goes to
    // the dead-letter spool, and once that is durable it counts as settled.
    Status spooled = refused_.SpoolNow(event.id, OwnedCopyOf(record), produced.message());
    if (!spooled.ok()) {
      LogAccount(LogLevel::kError, name(),
                 "Kafka refused an event and the dead-letter spool did not take it; holding "
                 "the account",
                 {{"event_id", event.id},
                  {"type", event.type},
                  {"kafka_error", produced.message()},
                  {"error", spooled.message()}});
      event_error_ = spooled;
      kafka_hold_ = true;
      return false;
    }
    (void)watermark_.ReceiveSettled(event.id);
    metrics_->received.Inc();
    metrics_->CountReceived(event.type);
    NoteEventReceived();
    return true;
  }
  if (!produced.ok()) {
    // Refused at once (a topic known to be missing, a dead producer): the event must not pass
    // the watermark. Hold the account; the poll is retried after a backoff.
    if (produced.IsNotFound()) {
      refused_.NoteMissingTopic(std::string(routed_.topic), event.id, produced.message());
    } else {
      LogAccount(LogLevel::kError, name(), "Kafka refused an event; holding the account",
                 {{"event_id", event.id}, {"type", event.type}, {"error", produced.message()}});
    }
    event_error_ = produced;
    kafka_hold_ = true;
    return false;
  }
  refused_.TopicTookARecord(routed_.topic);
  (void)watermark_.Receive(event.id);
  metrics_->received.Inc();
  in_flight_.Add(token, InFlightRecord{generation_, event.id, event.message_id, RecordKind::kLive,
                                       record.timestamp_ms, metrics_->CountReceived(event.type)});
  NoteEventReceived();
  metrics_->lag.Set(static_cast<double>(watermark_.outstanding()));
  return true;
}

void Account::OnPollDone(ZulipOutcome outcome) {
  NotePacing(outcome.rate_limit);
  if (!event_error_.ok() && outcome.ok()) {
    outcome.kind = ZulipErrorKind::kTransient;
    outcome.status = Status::Unavailable("GET /events: " + event_error_.message());
  }
  if (outcome.ok()) {
    Status finished = splitter_->Finish();
    if (!finished.ok() || !splitter_->has_events() || splitter_->result() != "success") {
      outcome.kind = ZulipErrorKind::kTransient;
      outcome.status = Status::Unavailable(
          "GET /events: incomplete body: " +
          (finished.ok() ? std::string("no events array") : finished.message()));
    }
  }
  if (!outcome.ok()) {
    HandleFailure(outcome, RetryAction::kPoll);
    return;
  }
  backoff_.Reset();
  metrics_->polls.Inc();
  last_good_poll_unix_ms_ = WallMillis(env_.clock);
  last_good_poll_sent_unix_ms_ = poll_sent_unix_ms_;
  metrics_->last_poll.Set(static_cast<double>(last_good_poll_unix_ms_) / 1000.0);
  response_complete_ = true;
  SetState(AccountState::kDraining);
  MaybeAdvance();
}

void Account::MaybeAdvance() {
  if (state_ != AccountState::kDraining || !watermark_.all_settled()) return;
  // Every event of the polls so far is settled: whatever reached the queue before the last
  // one returned is in Kafka (or deliberately not published).
  settled_poll_unix_ms_ = last_good_poll_sent_unix_ms_;
  if (watermark_.settled() > durable_watermark_) {
    StageCheckpoint(AccountState::kCommitting);
  } else {
    Poll();
  }
}

void Account::OnDelivery(const DeliveryReport& report) {
  ZB_DCHECK_ON_LOOP(env_.loop);
  const InFlightRecord* found = in_flight_.Find(report.token);
  if (found == nullptr) return;  // a repeat after a producer rebuild
  const InFlightRecord entry = *found;
  switch (report.outcome) {
    case DeliveryReport::Outcome::kDelivered:
      refused_.OnDelivered(report.token);
      if (entry.timestamp_ms > 0) {
        double latency = static_cast<double>(WallMicros(env_.clock)) / 1e6 -
                         static_cast<double>(entry.timestamp_ms) / 1e3;
        metrics_->delivery_latency.Observe(std::max(latency, 0.0));
      }
      if (entry.type_series) {
        entry.type_series->published->Inc();
        if (entry.type_series->account_published) entry.type_series->account_published->Inc();
      }
      if (entry.kind == RecordKind::kLive) metrics_->published.Inc();
      if (entry.kind == RecordKind::kBackfilled) metrics_->backfilled.Inc();
      if (entry.message_id) {
        published_messages_.Add(*entry.message_id);
        if (*entry.message_id > last_published_message_id_) {
          last_published_message_id_ = *entry.message_id;
        }
      }
      Settle(report.token);
      return;
    case DeliveryReport::Outcome::kPermanent:
    case DeliveryReport::Outcome::kMissingTopic:
    case DeliveryReport::Outcome::kRetryable:
      // Produced again until Kafka takes it, or spooled (RefusedRecords). The account cannot
      // acknowledge past it meanwhile; the Zulip queue buffers.
      refused_.OnFailed(report, entry.event_id);
      return;
  }
}

void Account::Settle(uint64_t token) {
  std::optional<InFlightRecord> taken = in_flight_.Take(token);
  if (!taken) return;
  const InFlightRecord& entry = *taken;
  switch (entry.kind) {
    case RecordKind::kLive:
      // A lost queue's ids no longer count: its records settle, its watermark is gone.
      if (entry.generation == generation_) (void)watermark_.Settle(entry.event_id);
      metrics_->lag.Set(static_cast<double>(watermark_.outstanding()));
      MaybeAdvance();
      return;
    case RecordKind::kBackfilled:
      // Delivered or dead-lettered: the batch may be done (GapRecovery).
      if (recovery_.OnRecordSettled()) StageCheckpoint(AccountState::kCommitting);
      return;
    case RecordKind::kControl:
      // A gap record in Kafka (or the spool): the next checkpoint forgets it.
      (void)gap_records_.OnSettled(token);
      return;
  }
}

void Account::OnProducerRoom() {
  ZB_DCHECK_ON_LOOP(env_.loop);
  if (!transfer_paused_ || request_ == 0) return;
  transfer_paused_ = false;
  client_.Resume(request_);
}

void Account::HandleFailure(const ZulipOutcome& outcome, RetryAction action) {
  if (request_ != 0) {
    client_.Cancel(request_);
    request_ = 0;
  }
  last_error_ = outcome.status.message();
  metrics_->Errors(ZulipErrorKindName(outcome.kind)).Inc();
  if (std::optional<ParkReason> park = ParkReasonFor(outcome.kind, action)) {
    Park(*park, outcome.status.message());
    return;
  }
  if (outcome.kind == ZulipErrorKind::kQueueLost) {
    LoseQueue(outcome.status.message());
    return;
  }
  LogAccount(LogLevel::kWarn, name(), "Zulip call failed; retrying",
             {{"call", RetryActionName(action)},
              {"kind", ZulipErrorKindName(outcome.kind)},
              {"error", outcome.status.message()}});
  SetState(AccountState::kBackingOff);
  RetryLater(outcome.retry_after_seconds, action);
}

void Account::RetryLater(std::optional<double> retry_after_seconds, RetryAction action) {
  Clock::Duration delay = backoff_.NextDelay(retry_after_seconds);
  env_.loop.CancelTimer(retry_timer_);
  retry_timer_ = env_.loop.AddTimer(delay, [this, action] {
    retry_timer_ = 0;
    if (state_ == AccountState::kStopped || state_ == AccountState::kParked) return;
    Retry(action);
  });
}

void Account::Retry(RetryAction action) {
  switch (action) {
    case RetryAction::kRegister:
      Register();
      return;
    case RetryAction::kPoll:
      Poll();
      return;
    case RetryAction::kBackfill:
      RunBackfillBatch();
      return;
    case RetryAction::kCommitQueue:
      Recommit(AccountState::kCommittingQueue);
      return;
    case RetryAction::kCommit:
      Recommit(AccountState::kCommitting);
      return;
  }
}

void Account::Recommit(AccountState state) {
  env_.checkpoints.Stage(config_.name, CurrentCheckpoint(staged_watermark_));
  SetState(state);
  env_.request_commit(*this);
}

void Account::Park(ParkReason reason, std::string_view detail) {
  park_reason_ = reason;
  parked_reason_ = ParkedReasonText(reason, detail);
  SetState(AccountState::kParked);
  LogAccount(LogLevel::kError, name(), "account parked; fix the cause and reload",
             {{"reason", parked_reason_}});
}

LostQueue Account::FactsOfQueueLeft(std::string reason) const {
  LostQueue lost;
  lost.queue_id = queue_id_;
  lost.last_event_id = durable_watermark_;
  lost.last_message_id = last_published_message_id_;
  lost.last_good_poll_unix_ms = last_good_poll_unix_ms_;
  lost.settled_poll_unix_ms =
      settled_poll_unix_ms_ > 0 ? settled_poll_unix_ms_ : registered_at_unix_ms_;
  lost.detected_at_unix_ms = WallMillis(env_.clock);
  lost.reason = std::move(reason);
  return lost;
}

void Account::LoseQueue(const std::string& reason) {
  metrics_->queue_lost.Inc();
  // A second loss before the first gap record went out keeps the first queue's facts.
  recovery_.NoteQueueLost(FactsOfQueueLeft(reason));
  LogAccount(LogLevel::kError, name(),
             "event queue lost; events between the last acknowledged one and the new queue "
             "were not received",
             {{"queue_id", queue_id_}, {"last_event_id", durable_watermark_}, {"reason", reason}});
  Register();
}

void Account::AddGapRecord(const GapRecord& gap) {
  gap_records_.Add(GapRecordJson(gap));
  metrics_->gaps.Inc();
  LogAccount(LogLevel::kWarn, name(), "gap: its record goes to the control topic",
             {{"lost_queue_id", gap.lost_queue_id},
              {"new_queue_id", gap.new_queue_id},
              {"last_event_id", gap.last_event_id},
              {"last_message_id", gap.last_message_id},
              {"topic", router_.control_topic()}});
}

void Account::RunBackfillBatch() {
  if (state_ == AccountState::kStopped || state_ == AccountState::kParked) return;
  SetState(AccountState::kBackfilling);
  recovery_.NextBatch(feature_level_,
                      [this](const ZulipOutcome& outcome, const BackfillBatch& batch) {
                        OnBackfillBatch(outcome, batch);
                      });
}

void Account::OnBackfillBatch(const ZulipOutcome& outcome, const BackfillBatch& batch) {
  NotePacing(outcome.rate_limit);
  if (outcome.ok()) backoff_.Reset();
  const int64_t now_ms = WallMillis(env_.clock);
  if (recovery_.ProduceBatch(outcome, batch, [this, now_ms](const BackfilledMessage& message) {
        return ProduceBackfilled(message, now_ms);
      })) {
    StageCheckpoint(AccountState::kCommitting);
  }
}

BackfillProduce Account::ProduceBackfilled(const BackfilledMessage& message, int64_t now_ms) {
  if (published_messages_.Contains(*message.header.message_id)) {
    // Kafka has it (its live event, or an earlier backfill of this run): not twice.
    metrics_->duplicates_skipped.Inc();
    return BackfillProduce::kSkipped;
  }
  Status status =
      router_.Route(RouteInput{config_.name, message.header, "", feature_level_}, routed_);
  KafkaRecord record;
  if (status.ok()) {
    record.topic = routed_.topic;
    if (routed_.key) record.key = *routed_.key;
    record.value = message.value;
    record.headers = routed_.headers;
    record.timestamp_ms = now_ms;
    record.token = in_flight_.NextToken();
    status = env_.publisher.Produce(record);
  }
  if (status.IsInvalidArgument()) {
    // Never to be taken (too large...): dead-lettered like a live event, and the batch goes on.
    in_flight_.Add(record.token, InFlightRecord{generation_, -1, message.header.message_id,
                                                RecordKind::kBackfilled});
    refused_.DeadLetter(record.token, -1, OwnedCopyOf(record), status.message());
    return BackfillProduce::kHandedOver;
  }
  if (!status.ok()) {
    // Kafka's queue is full or refused the record: what was produced settles, then the
    // backfill reads on from there after a pause.
    LogAccount(status.IsUnavailable() ? LogLevel::kDebug : LogLevel::kWarn, name(),
               "backfill paused: Kafka did not take a message",
               {{"message_id", *message.header.message_id}, {"error", status.message()}});
    return BackfillProduce::kRefused;
  }
  in_flight_.Add(record.token, InFlightRecord{generation_, -1, message.header.message_id,
                                              RecordKind::kBackfilled, record.timestamp_ms});
  return BackfillProduce::kHandedOver;
}

// Spreads the requests left in Zulip's window evenly over the time until it resets. A busy
// queue answers every poll at once, so without pacing an account would spend its 200 requests
// a minute in seconds and then sit out the rest of the window; spaced out, each poll waits
// about window/limit (0.3 s by default) and its batch grows instead.
void Account::NotePacing(const RateLimitInfo& info) {
  if (info.remaining) metrics_->ratelimit_remaining.Set(static_cast<double>(*info.remaining));
  if (!info.remaining || !info.reset_unix_seconds) return;
  double until_reset =
      *info.reset_unix_seconds - static_cast<double>(WallMillis(env_.clock)) / 1000.0;
  if (until_reset <= 0) return;
  double spacing = until_reset / static_cast<double>(std::max<int64_t>(*info.remaining, 1));
  not_before_ = env_.clock.Now() + DurationFromSeconds(std::min(spacing, 60.0));
}

void Account::NoteEventReceived() {
  last_event_unix_ms_ = receive_time_ms_;
  metrics_->last_event.Set(static_cast<double>(receive_time_ms_) / 1000.0);
}

uint64_t Account::forwarded() const {
  return metrics_->published.value() + metrics_->backfilled.value();
}

AccountSnapshot Account::Snapshot() const {
  ZB_DCHECK_ON_LOOP(env_.loop);
  AccountSnapshot snapshot;
  snapshot.name = config_.name;
  snapshot.state = state_;
  snapshot.queue_id = queue_id_;
  snapshot.durable_watermark = durable_watermark_;
  snapshot.last_received = watermark_.last_received();
  snapshot.in_flight = in_flight_.size();
  snapshot.forwarded = forwarded();
  if (last_event_unix_ms_ > 0) snapshot.last_event_unix_ms = last_event_unix_ms_;
  snapshot.park_reason = park_reason_;
  snapshot.parked_reason = parked_reason_;
  snapshot.last_error = last_error_;
  return snapshot;
}

}  // namespace zb
