#include "daemon/pipeline/gap_recovery.h"

#include <algorithm>
#include <utility>

#include "daemon/base/log.h"

namespace zb {

GapRecovery::GapRecovery(const AccountConfig& config, Env env) : config_(config), env_(env) {}

GapRecovery::~GapRecovery() = default;

void GapRecovery::Restore(const Checkpoint& checkpoint) {
  active_ = checkpoint.backfill_active;
  anchor_ = checkpoint.backfill_anchor_message_id;
  until_ = checkpoint.backfill_until_message_id;
  rewind_to_ = checkpoint.backfill_rewind_to_unix_seconds;
  history_floor_ = staged_history_floor_ = checkpoint.history_floor_message_id;
  history_floor_unix_seconds_ = checkpoint.history_floor_unix_seconds;
}

void GapRecovery::WriteTo(Checkpoint& checkpoint) const {
  checkpoint.backfill_active = active_;
  checkpoint.backfill_anchor_message_id = anchor_;
  checkpoint.backfill_until_message_id = until_;
  checkpoint.history_floor_message_id = history_floor_;
  checkpoint.history_floor_unix_seconds = history_floor_unix_seconds_;
  checkpoint.backfill_rewind_to_unix_seconds = rewind_to_;
}

void GapRecovery::OnFirstStart() {
  if (config_.backfill_from.kind == BackfillFrom::Kind::kNone) return;
  // A first start asked to read history: the new queue is polled after it.
  active_ = true;
  anchor_ = config_.backfill_from.kind == BackfillFrom::Kind::kMessageId
                ? config_.backfill_from.message_id - 1
                : -1;
}

void GapRecovery::NoteQueueLost(LostQueue lost) {
  // A second loss before the first gap record went out keeps the first queue's facts.
  if (!lost_queue_) lost_queue_ = std::move(lost);
}

std::optional<GapRecord> GapRecovery::OnRegistered(const RegisterResult& result,
                                                   int64_t last_published_message_id,
                                                   int64_t registered_unix_seconds) {
  std::optional<GapRecord> gap;
  if (lost_queue_) {
    // The lost queue's messages are read back before the new queue is polled; the new queue id
    // and the backfill are made durable together, so a crash from here on resumes the backfill.
    // Its anchor: the last message published, or, for an account that never published one,
    // the newest message when its first queue was registered (kept in the anchor meanwhile).
    // A backfill still pending (a queue lost again, or replaced by a configuration change,
    // before its backfill ended) keeps its own anchor and read-back: the queue left now was
    // never polled, and the messages the earlier one lost are not read yet.
    const bool pending = active_;
    active_ = true;
    if (!pending) anchor_ = std::max(last_published_message_id, anchor_);
    // Nothing to read back from (no message ever published, no max_message_id from any
    // register): read back from the newest message rather than the whole history forward. Not
    // durable: a restart before the first batch reads from the oldest (more, never less).
    rewind_from_newest_ = !pending && anchor_ < 0 && history_floor_ < 0;
    lost_queue_->last_message_id = anchor_;
    // ... and read back from a margin before the last poll whose events all settled: a lower
    // message than the anchor may not have reached Kafka (kBackfillRewindSeconds). Unknown for
    // a queue from an older checkpoint: its registration time, or no read back at all.
    int64_t settled_ms = lost_queue_->settled_poll_unix_ms;
    int64_t rewind_to = settled_ms > 0 ? settled_ms / 1000 - kBackfillRewindSeconds : 0;
    if (pending && rewind_to_ != 0) {
      rewind_to = rewind_to == 0 ? rewind_to_ : std::min(rewind_to, rewind_to_);
    }
    rewind_to_ = rewind_to;
    if (rewind_to_ == 0) {
      LogAccount(LogLevel::kWarn, config_.name,
                 "the lost queue's last settled poll is unknown (checkpoint of an older "
                 "version); backfilling from the last published message only",
                 {{"after_message_id", anchor_}});
    }
    const LostQueue& lost = *lost_queue_;
    gap.emplace();
    gap->account = config_.name;
    gap->site = config_.site;
    gap->lost_queue_id = lost.queue_id;
    gap->last_event_id = lost.last_event_id;
    gap->last_message_id = lost.last_message_id;
    gap->new_queue_id = result.queue_id;
    gap->last_good_poll_unix_ms = lost.last_good_poll_unix_ms;
    gap->detected_at_unix_ms = lost.detected_at_unix_ms;
    gap->reason = lost.reason;
    gap->backfill = active_;
    if (active_) gap->limits = PlanBackfill(config_, result.zulip_feature_level).limits;
    lost_queue_.reset();
  } else if (!active_ && result.max_message_id && *result.max_message_id > anchor_) {
    // A first queue: messages up to here predate it, so a later gap never reads them back.
    anchor_ = *result.max_message_id;
  }
  if (history_floor_ < 0 && last_published_message_id < 0) {
    // The account's stream starts here (or where backfill_from asked it to): no read back
    // after a gap goes below it, except to messages sent within the margin before now, which
    // may commit after this registration (see the header).
    history_floor_ = anchor_;
    history_floor_unix_seconds_ = registered_unix_seconds - kBackfillRewindSeconds;
  }
  // The backfill stops at the newest message of the moment the queue was made: the queue has
  // every later one.
  if (active_) until_ = result.max_message_id.value_or(-1);
  return gap;
}

void GapRecovery::NoteLiveMessage(int64_t message_id) {
  if (message_id <= history_floor_) {
    // A message below the newest of the first registration that commits after it reaches the
    // first queue (FACTS §3): part of the stream, so a later read-back must reach it.
    history_floor_ = message_id - 1;
  }
}

void GapRecovery::NextBatch(int64_t feature_level, MessageBackfill::Done done) {
  env_.metrics.backfill_in_progress.Set(1);
  if (!backfill_) {
    MessageBackfillOptions options;
    options.narrows = PlanBackfill(config_, feature_level).narrows;
    options.apply_markdown = config_.apply_markdown;
    options.client_gravatar = config_.client_gravatar;
    if (config_.backfill_from.kind == BackfillFrom::Kind::kTime && anchor_ < 0) {
      options.min_timestamp = config_.backfill_from.unix_seconds;
    }
    options.max_message_id = until_;
    options.rewind_to_unix_seconds = rewind_to_;
    options.rewind_floor_message_id = history_floor_;
    options.rewind_floor_unix_seconds = history_floor_unix_seconds_;
    options.rewind_from_newest = rewind_from_newest_;
    backfill_ = std::make_unique<MessageBackfill>(env_.client, std::move(options), anchor_);
    LogAccount(LogLevel::kInfo, config_.name, "backfilling messages through GET /messages",
               {{"after_message_id", anchor_}});
  }
  batch_last_ = anchor_;
  batch_complete_ = false;
  batch_failed_ = false;
  backfill_->NextBatch(std::move(done));
}

bool GapRecovery::ProduceBatch(const ZulipOutcome& outcome, const BackfillBatch& batch,
                               const Produce& produce) {
  if (!outcome.ok()) retry_ = outcome;
  batch_complete_ = batch.complete;
  if (rewind_to_ != 0 && backfill_->rewound_anchor()) {
    // Read back: the batch starts below the anchor, and so does a failed batch's restart. Made
    // durable with this batch, after which there is nothing left to read back.
    // (From the newest, there was no anchor: where the read-back stopped is the anchor.)
    anchor_ = rewind_from_newest_ ? *backfill_->rewound_anchor()
                                  : std::min(anchor_, *backfill_->rewound_anchor());
    rewind_from_newest_ = false;
    batch_last_ = anchor_;
    rewind_to_ = 0;
  }
  producing_ = true;
  for (const BackfilledMessage& message : batch.messages) {
    // Counted before it is handed over: a record dead-lettered at once settles inside
    // `produce`. The batch still ends only when this loop does, never in the middle.
    ++outstanding_;
    const BackfillProduce produced = produce(message);
    if (produced != BackfillProduce::kHandedOver) --outstanding_;
    if (produced == BackfillProduce::kRefused) {
      // What was produced settles, then the backfill reads on from there after a pause.
      batch_failed_ = true;
      break;
    }
    batch_last_ = *message.header.message_id;
  }
  producing_ = false;
  return outstanding_ == 0 && FinishBatch();
}

bool GapRecovery::OnRecordSettled() {
  // Delivered or dead-lettered: either way the batch is done with it. A batch still being
  // produced ends when its loop does, never in the middle (a record refused at once settles
  // inside that loop).
  return --outstanding_ == 0 && !producing_ && FinishBatch();
}

bool GapRecovery::FinishBatch() {
  if (!backfill_) return false;
  if (batch_last_ > anchor_) anchor_ = batch_last_;
  if (batch_failed_) {
    backfill_->Restart(anchor_);
    if (!retry_) {
      ZulipOutcome paused;
      paused.kind = ZulipErrorKind::kTransient;
      paused.status = Status::Unavailable("backfill: Kafka did not take a message");
      retry_ = paused;
    }
  } else if (batch_complete_ && !retry_) {
    LogAccount(LogLevel::kInfo, config_.name, "backfill complete; polling the new queue",
               {{"messages", backfill_->delivered()}, {"through_message_id", anchor_}});
    // The new queue's copies of what the backfill published are skipped by id (the owner's
    // PublishedMessages); every other message it delivers is published.
    until_ = -1;
    active_ = false;
    backfill_.reset();
    env_.metrics.backfill_in_progress.Set(0);
  }
  return true;
}

std::optional<ZulipOutcome> GapRecovery::TakeRetry() {
  std::optional<ZulipOutcome> retry = std::move(retry_);
  retry_.reset();
  return retry;
}

void GapRecovery::Cancel() {
  if (backfill_) backfill_->Cancel();
}

}  // namespace zb
