// GapRecovery: what one account does about a lost event queue (DESIGN.md "Gaps"), apart from the
// state machine that drives it: the facts of the lost queue, what its gap record says, and the
// backfill that reads back what the queue could have delivered, with its durable progress
// (docs/decisions.md "Gaps and backfill", "Recovery you can trust", "What the adversarial review
// found").
//
// It owns: the lost queue's facts (from the loss to the new queue's registration); the backfill's
// anchor, upper bound, read-back target and history floor, which go into every checkpoint
// (WriteTo) and come back from one (Restore); the MessageBackfill that issues the GET /messages;
// and the bookkeeping of the batch in flight. It produces nothing and stages nothing itself: the
// owner (the account) produces each message through `produce` (ProduceBatch) and learns by return
// value when a batch is done and its checkpoint must be staged; the gap record it hands back for
// the owner to keep until Kafka has it (GapRecords).
//
// Why nothing is lost:
//   - The anchor. The backfill reads after the last message the account published. An account
//     that never published one anchors at the max_message_id of its first registration (kept in
//     the anchor while no backfill runs), so a gap on a quiet account reads only what came after
//     its first queue.
//   - The read-back. Neither the highest message id published nor the time of the last poll
//     bounds what a lost queue failed to deliver: a message's event reaches the queue when its
//     sending transaction commits, after its "timestamp" is set and possibly after a message with
//     a higher id (FACTS.md §3). So each narrow is first read back to messages sent
//     kBackfillRewindSeconds (300 s) before the lost queue's last settled poll, the last poll
//     whose events were all in Kafka and durable, timed from when that GET was sent (Zulip
//     answers with what its queue holds when the GET arrives; the transfer may then take minutes
//     behind a full producer). The margin covers commit and queueing delays and the clock skew
//     between the bridge and Zulip. Messages read back that Kafka already has in this run are not
//     published again (PublishedMessages, the owner's produce); after a restart they may be
//     (duplicates, never losses). The target is durable until the first batch is, so a crash
//     reads back again. A checkpoint of an older version has no settled poll: the backfill then
//     starts at the last published message and says so.
//   - A pending backfill (a queue lost again, or replaced by a configuration change, before its
//     backfill ended) keeps its own anchor and the earlier of the two read-back targets: the
//     queue left now was never polled, and the messages the earlier one lost are not read yet.
//     A second loss before the new queue registered keeps the first queue's facts.
//   - A quiet account with nothing to read back from (no message published, no max_message_id
//     from any register) reads back from the newest message rather than the whole history
//     forward. Not durable: a restart before the first batch reads from the oldest (more, never
//     less). Never applied to a backfill already pending from the oldest message.
//   - The history floor: where the account's stream starts (the newest message of its first
//     registration, or where backfill_from began); no read-back goes below it to a message sent
//     more than kBackfillRewindSeconds before that registration. A message below the floor's id
//     sent later may have committed after the registration and reached the first queue as an
//     event (FACTS §3): a read-back reads it (and with it, up to the margin of messages sent
//     just before the first start: more, never less). This holds across a kill -9, since the
//     floor's time is in the checkpoint that makes the first queue durable. A live message below
//     the floor lowers it too (NoteLiveMessage), and the owner's final checkpoint keeps a lowered
//     floor even when nothing else moved (floor_changed_since_staged).
//   - The upper bound: the new queue's max_message_id (the queue has every later message), so
//     the queue's copies up to it are the backfill's (MessageBackfill::bound() with several
//     narrows).
//   - One batch at a time: a batch ends only when each of its records is settled (in Kafka, or
//     durably dead-lettered), a record settled at once inside the produce loop included; its
//     anchor is then made durable before the next batch is read. A batch Kafka refused part of is
//     read again from that anchor after a pause; a crash repeats at most one batch.
//
// Threads: the owner's (the account's event loop), like the ZulipClient it uses. Not copyable.
#ifndef ZB_DAEMON_PIPELINE_GAP_RECOVERY_H_
#define ZB_DAEMON_PIPELINE_GAP_RECOVERY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "daemon/config/config.h"
#include "daemon/pipeline/account_metrics.h"
#include "daemon/pipeline/control_record.h"
#include "daemon/state/checkpoint_store.h"
#include "daemon/zulip/message_backfill.h"
#include "daemon/zulip/zulip_client.h"

namespace zb {

// After a queue is lost, the backfill reads back from messages sent this long before the last
// poll whose events all settled (see the comment at the top).
inline constexpr int64_t kBackfillRewindSeconds = 300;

// What the gap record of a lost queue says about it, as of the loss.
struct LostQueue {
  std::string queue_id;
  int64_t last_event_id = -1;
  int64_t last_message_id = -1;
  int64_t last_good_poll_unix_ms = 0;
  int64_t settled_poll_unix_ms = 0;  // the backfill reads back from a margin before it
  int64_t detected_at_unix_ms = 0;
  std::string reason;
};

// What the owner did with one backfilled message (ProduceBatch).
enum class BackfillProduce {
  kSkipped,     // Kafka acknowledged this message id in this run: not produced again
  kHandedOver,  // produced, or dead-lettered: it settles through OnRecordSettled()
  kRefused,     // Kafka did not take it now: the batch stops here and is read again later
};

class GapRecovery {
 public:
  // What the owner lends. Every reference outlives this object.
  struct Env {
    ZulipClient& client;      // for the backfill's GET /messages
    AccountMetrics& metrics;  // zb_backfill_in_progress
  };

  // `config` is the account's, borrowed for this object's life.
  GapRecovery(const AccountConfig& config, Env env);
  ~GapRecovery();
  GapRecovery(const GapRecovery&) = delete;
  GapRecovery& operator=(const GapRecovery&) = delete;

  // Takes the backfill's progress and the history floor from a checkpoint of this account.
  void Restore(const Checkpoint& checkpoint);
  // Writes the backfill's progress and the history floor into `checkpoint`.
  void WriteTo(Checkpoint& checkpoint) const;
  // The owner staged a checkpoint written by WriteTo().
  void MarkStaged() { staged_history_floor_ = history_floor_; }
  // The history floor came down since the last MarkStaged() (or Restore()).
  bool floor_changed_since_staged() const { return history_floor_ != staged_history_floor_; }

  // A first start, without a checkpoint: with backfill_from set, history from there is read
  // before the first queue is polled.
  void OnFirstStart();

  // The queue `lost` describes is gone (or is being replaced). A second loss before the next
  // OnRegistered() keeps the first queue's facts.
  void NoteQueueLost(LostQueue lost);

  // A new queue was registered (`result`), the owner having published messages up to
  // `last_published_message_id` (-1: none). After a loss this plans the backfill (active(),
  // anchor, read-back target, upper bound) and returns the gap record to keep until Kafka has
  // it; otherwise nullopt. What changed goes into the checkpoint that makes the queue durable.
  // `registered_unix_seconds`: when the queue was registered.
  std::optional<GapRecord> OnRegistered(const RegisterResult& result,
                                        int64_t last_published_message_id,
                                        int64_t registered_unix_seconds);

  // A live message event of message `message_id` arrived: below the history floor it lowers it.
  void NoteLiveMessage(int64_t message_id);

  // A backfill is to run (or is running) before the new queue is polled.
  bool active() const { return active_; }
  // Every message up to this id is in Kafka (durable with the checkpoint); -1: none.
  int64_t anchor() const { return anchor_; }
  // A MessageBackfill exists: batches have been read in this run.
  bool reading() const { return backfill_ != nullptr; }

  // Reads the next batch (creating the MessageBackfill for a server at `feature_level` on first
  // use); `done` is called once, on the loop, as MessageBackfill::NextBatch promises.
  void NextBatch(int64_t feature_level, MessageBackfill::Done done);

  // Takes the batch `done` was called with: a failed `outcome` is waited out after the batch
  // (TakeRetry); each message goes to `produce` in order until one is refused. True when the batch
  // is done already (nothing handed over is unsettled): the owner stages its checkpoint.
  using Produce = std::function<BackfillProduce(const BackfilledMessage& message)>;
  bool ProduceBatch(const ZulipOutcome& outcome, const BackfillBatch& batch,
                    const Produce& produce);

  // A record handed over (kHandedOver) is settled. True when this ended the batch: the owner
  // stages its checkpoint. Never true while ProduceBatch is producing.
  bool OnRecordSettled();

  // What the last batch asks to wait out before the next one (a failed page, or a record Kafka
  // did not take), taken; nullopt: read on at once.
  std::optional<ZulipOutcome> TakeRetry();

  // Cancels a GET /messages in flight.
  void Cancel();

 private:
  // The batch is done: moves the anchor, and either restarts from it after a refusal or ends
  // the backfill. False when no backfill runs (nothing to stage).
  bool FinishBatch();

  const AccountConfig& config_;
  Env env_;
  // Set from a loss until the new queue is registered.
  std::optional<LostQueue> lost_queue_;

  bool active_ = false;
  int64_t anchor_ = -1;  // durable: every message up to it is in Kafka
  // Durable: the new queue's max_message_id, the last message the backfill reads (the queue
  // has every later one); -1 when the server gave none (no bound).
  int64_t until_ = -1;
  // Durable until the first batch is: each narrow is read back to messages sent from here
  // (Unix seconds; 0: none).
  int64_t rewind_to_ = 0;
  // Durable: a backfill never reads back below this message id a message sent before
  // history_floor_unix_seconds_ (see Checkpoint).
  int64_t history_floor_ = -1;
  int64_t history_floor_unix_seconds_ = 0;
  int64_t staged_history_floor_ = -1;  // the floor of the last checkpoint staged
  bool rewind_from_newest_ = false;    // see OnRegistered

  std::unique_ptr<MessageBackfill> backfill_;
  size_t outstanding_ = 0;  // records of the current batch not yet settled
  bool producing_ = false;  // the batch is being produced: it cannot end yet
  int64_t batch_last_ = -1;
  bool batch_complete_ = false;
  bool batch_failed_ = false;          // a record was refused: the batch is read again
  std::optional<ZulipOutcome> retry_;  // the page failure to wait out after the batch
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_GAP_RECOVERY_H_
