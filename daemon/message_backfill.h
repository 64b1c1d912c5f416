// MessageBackfill: the messages a lost event queue could have delivered, read back through
// GET /api/v1/messages after a gap (DESIGN.md "Gaps", FACTS.md §5), in increasing message id
// order, each shaped as a live `message` event so that consumers need one parser.
//
// What a queue could see is the union of one or more narrows (BackfillNarrows): the account's
// own history (its channels, private ones included, and its direct messages), plus every public
// channel for an all_public_streams account; the account's register narrow applies to each.
// Each narrow is read page by page from the anchor (include_anchor=false, num_after = page
// size, until found_newest) and the narrows are merged by message id, a message in several
// of them coming out once.
//
// The owner (the account) drives it one batch at a time: NextBatch() fetches what it needs and
// hands back up to `batch_size` messages, all above every id handed back before; the owner
// publishes them, waits for Kafka, makes the new anchor durable, and asks again. Because every
// narrow restarts from the anchor the owner made durable (Restart()), a crash or a failed page
// repeats at most one batch, never skips one.
//
// Threads: the event loop's, like the ZulipClient it uses. Not copyable.
#ifndef ZB_DAEMON_MESSAGE_BACKFILL_H_
#define ZB_DAEMON_MESSAGE_BACKFILL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "daemon/event.h"
#include "daemon/zulip_client.h"

namespace zb {

// One backfilled message, ready to route and produce.
struct BackfilledMessage {
  // {"type":"message","message":{...},"flags":[...]}: the message object as GET /messages gave
  // it, its "flags" moved out beside it as a live event has them, and no event "id".
  std::string value;
  EventHeader header;  // header.id is -1 (backfilled), header.message_id the message's id
};

// The feature level from which GET /messages takes `channels` for the operator that reads every
// public channel (Zulip 9.0; API changelog, feature level 250: "channel" and "channels" were
// added as aliases of "stream" and "streams"). Older servers, which the bridge still supports
// (kMinZulipFeatureLevel, 155), refuse `channels` with a 400 and know it as `streams`.
inline constexpr int64_t kChannelsOperatorFeatureLevel = 250;

// The GET /messages narrows (JSON arrays) whose union is what a queue registered with
// `account`'s arguments could see, spelled for a server at `feature_level` (0: not known, as
// when a backfill resumes from a checkpoint before any registration; the old spelling, which
// every server takes, is used).
std::vector<std::string> BackfillNarrows(const AccountConfig& account, int64_t feature_level);

struct MessageBackfillOptions {
  std::vector<std::string> narrows;  // BackfillNarrows(); at least one
  bool apply_markdown = false;       // as the queue was registered (GET /messages defaults
  bool client_gravatar = false;      // both to true: always sent explicitly)
  int page_size = 1000;              // num_after per request; Zulip recommends at most 1000
  size_t batch_size = 1000;          // messages per NextBatch()
  // Messages sent before this (Unix seconds, their "timestamp") are read past, not handed out:
  // backfill_from given as a time. 0: none skipped.
  int64_t min_timestamp = 0;
  // The newest message to hand out (-1: no bound) with one narrow: the owner passes the
  // max_message_id of the queue it polls next (the newest of the account's own messages; the
  // queue has every later one). Several narrows find their bound themselves (bound()), since
  // max_message_id does not cover public channels the account is not in.
  int64_t max_message_id = -1;
};

struct BackfillBatch {
  std::vector<BackfilledMessage> messages;  // ascending message ids, all above the anchor
  bool complete = false;  // every narrow reached found_newest and nothing is left after these
};

class MessageBackfill {
 public:
  // Reads messages with ids above `anchor_message_id` (-1: from the oldest).
  MessageBackfill(ZulipClient& client, MessageBackfillOptions options, int64_t anchor_message_id);
  ~MessageBackfill();
  MessageBackfill(const MessageBackfill&) = delete;
  MessageBackfill& operator=(const MessageBackfill&) = delete;

  // Fetches what the next batch needs and calls `done` once, on the loop: with the batch, or
  // with a failed outcome (the backfill is unchanged by a failure: call again after a wait).
  // The outcome of the last request made is passed either way, for its rate-limit headers.
  // One call at a time.
  using Done = std::function<void(const ZulipOutcome& last, BackfillBatch batch)>;
  void NextBatch(Done done);

  // Forgets everything fetched and not yet handed out and starts every narrow again after
  // `anchor_message_id` (after a failed publish, or to resume from a durable anchor).
  void Restart(int64_t anchor_message_id);

  // Cancels a request in flight; `done` is not called.
  void Cancel();

  // Messages handed out so far.
  uint64_t delivered() const { return delivered_; }

  // The newest message the backfill hands out (-1: no bound). With several narrows it is the
  // newest message of any of them, read before their first page: the queue registered before
  // has every later one, and every message up to it is read, so the queue's copies up to it
  // are the backfill's. (One narrow read at different moments than another would otherwise
  // end earlier, and "everything up to the last id handed out" would not hold for it.)
  int64_t bound() const { return bound_; }

 private:
  struct Cursor {
    std::string narrow_json;
    int64_t anchor = -1;        // the next page starts after this id
    bool found_newest = false;  // no page is left to fetch
    std::deque<BackfilledMessage> buffer;
    bool probed = false;  // its newest message was read (several narrows only)
    int64_t newest = -1;
  };

  void Continue();
  void Fetch(Cursor& cursor);
  // Reads the newest message of `cursor`'s narrow (for bound_).
  void Probe(Cursor& cursor);
  // Hands `done` what the batch holds after a failed request; the request is asked again.
  void FinishAfterFailure();
  // Parses a page into `cursor`; an error names what is wrong with the body.
  Status TakePage(Cursor& cursor, const std::string& body);

  ZulipClient& client_;
  MessageBackfillOptions options_;
  std::vector<Cursor> cursors_;
  Done done_;
  BackfillBatch batch_;
  ZulipClient::Handle request_ = 0;
  ZulipOutcome last_outcome_;
  uint64_t delivered_ = 0;
  int64_t bound_ = -1;
};

}  // namespace zb

#endif  // ZB_DAEMON_MESSAGE_BACKFILL_H_
