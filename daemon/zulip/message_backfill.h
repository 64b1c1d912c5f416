// MessageBackfill: the messages a lost event queue could have delivered, read back through
// GET /api/v1/messages after a gap (DESIGN.md "Gaps", FACTS.md §5), in increasing message id
// order, each shaped as a live `message` event so that consumers need one parser.
//
// What a queue could see is the union of one or more narrows (PlanBackfill): the account's own
// history (its channels, private ones included, and its direct messages), plus every public
// channel for an all_public_streams account and for any account with a register narrow (Zulip
// gives a narrowed queue every public-channel message its narrow matches, subscribed or not);
// the account's register narrow applies to each. The queue judged its narrow on each message as
// it was sent, GET /messages judges it on the message as it is now: terms that depend on a
// message's flags (is:unread, is:mentioned, is:alerted, is:starred) are checked here, on each
// message read, as they stood when it was sent (is:resolved too: with an is: term GET /messages
// searches only the account's own messages), and what cannot be judged that way is named in
// BackfillPlan::limits (docs/decisions.md, "Narrowed accounts").
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
#ifndef ZB_DAEMON_ZULIP_MESSAGE_BACKFILL_H_
#define ZB_DAEMON_ZULIP_MESSAGE_BACKFILL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/zulip/event.h"
#include "daemon/zulip/zulip_client.h"

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

// One narrow of a backfill: what GET /messages is asked for, and the register narrow's terms that
// the queue judged on the message as sent, checked on each message read.
struct BackfillNarrow {
  std::string narrow_json;  // a JSON array, sent as is
  // is:starred: no message is starred when it is sent, so the queue delivered none.
  bool never = false;
  // is:mentioned, is:alerted: the queue wanted "mentioned" among the message's flags.
  bool mentioned = false;
  // is:unread: the queue wanted a message not read when sent; the sender's own message is
  // (Zulip marks it read for them). The account's email, compared without case; empty: none.
  std::string not_sent_by;
  // is:resolved: a channel message whose topic starts with "✔ " (judged on the topic now).
  bool resolved = false;
};

// What a backfill reads for one account, and what it cannot give back.
struct BackfillPlan {
  // At least one; their union is what a queue registered with the account's arguments could
  // see (a superset where the send-time state cannot be told).
  std::vector<BackfillNarrow> narrows;
  // What the queue may have delivered that the backfill cannot read back, or reads back
  // differently, in words, for the gap record ("limits").
  std::vector<std::string> limits;
};

// The plan for `account` on a server at `feature_level`, which spells the public-channels
// operator (0: not known, as when a backfill resumes from a checkpoint before any
// registration; the old spelling, which every server takes, is used).
BackfillPlan PlanBackfill(const AccountConfig& account, int64_t feature_level);

struct MessageBackfillOptions {
  std::vector<BackfillNarrow> narrows;  // PlanBackfill().narrows; at least one
  bool apply_markdown = false;          // as the queue was registered (GET /messages defaults
  bool client_gravatar = false;         // both to true: always sent explicitly)
  int page_size = 1000;                 // num_after per request; Zulip recommends at most 1000
  size_t batch_size = 1000;             // messages per NextBatch()
  // Messages sent before this (Unix seconds, their "timestamp") are read past, not handed out:
  // backfill_from given as a time. 0: none skipped.
  int64_t min_timestamp = 0;
  // The newest message to hand out (-1: no bound) with one narrow: the owner passes the
  // max_message_id of the queue it polls next (the newest of the account's own messages; the
  // queue has every later one). Several narrows find their bound themselves (bound()), since
  // max_message_id does not cover public channels the account is not in.
  int64_t max_message_id = -1;
  // Read back from here (Unix seconds, 0: not at all): before its first page forward, each
  // narrow is read backwards from the anchor to its newest message sent before this time, and
  // read forward from there. A message's event can reach a queue after the event of a message
  // with a higher id (Zulip sends events when the sending transaction commits), so the last
  // message published is no bound for what a lost queue failed to deliver; time is (see
  // GapRecovery's kBackfillRewindSeconds). Done once per MessageBackfill: Restart() does not read
  // back again.
  int64_t rewind_to_unix_seconds = 0;
  // Reading back stops at a message up to this id sent before rewind_floor_unix_seconds (or
  // with that unknown, 0), and no read publishes one (-1: no floor).
  int64_t rewind_floor_message_id = -1;
  int64_t rewind_floor_unix_seconds = 0;
  // With no anchor (-1) to read back from, read back from the newest message (and then forward
  // from where the read-back stopped) rather than from the oldest.
  bool rewind_from_newest = false;
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

  // Once every narrow was read back (rewind_to_unix_seconds): the lowest anchor they start
  // from, which the owner makes its durable anchor (a later Restart() from an anchor above it
  // would skip what the rewind was for). nullopt before, or without a rewind.
  std::optional<int64_t> rewound_anchor() const { return rewound_anchor_; }

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
    BackfillNarrow narrow;
    int64_t anchor = -1;        // the next page starts after this id
    bool found_newest = false;  // no page is left to fetch
    std::deque<BackfilledMessage> buffer;
    bool probed = false;  // its newest message was read (several narrows only)
    int64_t newest = -1;
    bool rewound = false;  // read back to rewind_to_unix_seconds (or no rewind asked)
  };

  void Continue();
  void Fetch(Cursor& cursor);
  // Reads the newest message of `cursor`'s narrow (for bound_).
  void Probe(Cursor& cursor);
  // Reads a page backwards from `cursor`'s anchor and moves the anchor down to the newest
  // message sent before rewind_to_unix_seconds (or to the oldest).
  void Rewind(Cursor& cursor);
  // Hands `done` what the batch holds after a failed request; the request is asked again.
  void FinishAfterFailure();
  // Asks GET /messages for `cursor`'s narrow; its page goes to `take`, a failure (of the call,
  // or of `take`, named by `what`) to FinishAfterFailure.
  using PageTaker = Status (MessageBackfill::*)(Cursor&, rapidjson::Document&);
  void Ask(Cursor& cursor, GetMessagesRequest request, PageTaker take, std::string what);
  // Moves `cursor`'s anchor down by a page read backwards (Rewind); an error names what is
  // wrong with the body.
  Status TakeRewindPage(Cursor& cursor, rapidjson::Document& doc);
  // Parses a page into `cursor`; an error names what is wrong with the body.
  Status TakePage(Cursor& cursor, rapidjson::Document& doc);
  // History the floor leaves out (rewind_floor_*): at most its id and sent before its time (or
  // it has none). Never published, whichever read reaches it: the backfill's anchor is the
  // lowest of its narrows', so a batch read again after a refusal reads every narrow from
  // there, below where another narrow's read-back stopped.
  bool IsHistory(const rapidjson::Value& message, int64_t id) const;

  ZulipClient& client_;
  MessageBackfillOptions options_;
  std::vector<Cursor> cursors_;
  Done done_;
  BackfillBatch batch_;
  ZulipClient::Handle request_ = 0;
  ZulipOutcome last_outcome_;
  uint64_t delivered_ = 0;
  int64_t bound_ = -1;
  std::optional<int64_t> rewound_anchor_;
};

}  // namespace zb

#endif  // ZB_DAEMON_ZULIP_MESSAGE_BACKFILL_H_
