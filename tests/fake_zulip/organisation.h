// The organisation behind the fake Zulip server (FACTS §3 and §5): its members (humans and
// bots), its channels (public and private) with their subscribers, and the history of every
// message sent, with realm-wide increasing ids and Zulip's UserMessage rows (who received it).
// It renders messages as Zulip's events and GET /messages do (apply_markdown, client_gravatar,
// flags) and answers GET /messages' range queries; delivering to queues is ZulipCore's part.
//
// A fresh organisation has the channels "Denmark", "Scotland" and "Verona" (public; every
// member added is subscribed, as to Zulip's default channels) and "core team" (private, no
// one). Messages are never edited or deleted here: events of those types are only events.
//
// Not thread-safe: owned by the server's loop thread.
#ifndef ZB_TESTS_FAKE_ZULIP_ORGANISATION_H_
#define ZB_TESTS_FAKE_ZULIP_ORGANISATION_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/status.h"

namespace zb::fake_zulip {

struct Member {
  int64_t id = 0;
  std::string email;
  std::string full_name;
  bool is_bot = false;
};

struct Channel {
  int64_t id = 0;
  std::string name;
  bool invite_only = false;  // a private channel
  int64_t recipient_id = 0;
  std::set<int64_t> subscribers;  // member ids
  // The subscribers as a sorted list, shared by every message sent while they stay the same.
  std::shared_ptr<const std::vector<int64_t>> snapshot;
};

struct Message {
  int64_t id = 0;
  int64_t sender_id = 0;
  int64_t channel_id = 0;            // 0: a direct message
  std::string topic;                 // channel messages only
  std::vector<int64_t> dm_user_ids;  // direct messages: every participant, sorted, sender too
  int64_t recipient_id = 0;
  std::string content;  // the Markdown as sent
  int64_t timestamp = 0;
  // Channel messages: the channel's subscribers when it was sent (their UserMessage rows).
  std::shared_ptr<const std::vector<int64_t>> subscribers;

  bool is_channel() const { return channel_id != 0; }
};

// One term of a GET /messages narrow, as given: {"operator","operand","negated"} or the legacy
// [operator, operand] pair.
struct NarrowTerm {
  std::string op;
  std::string operand;  // ints as their decimal text
  bool negated = false;
};

struct FetchRequest {
  int64_t user_id = 0;
  // The anchor: an id, or "newest"/"oldest"/"first_unread" already resolved by the caller
  // into anchor plus the two flags.
  int64_t anchor = 0;
  bool anchored_to_left = false;   // "oldest"
  bool anchored_to_right = false;  // "newest"
  bool include_anchor = true;
  int64_t num_before = 0;
  int64_t num_after = 0;
  std::vector<NarrowTerm> narrow;
};

struct FetchResult {
  std::vector<const Message*> messages;  // ascending ids
  bool found_anchor = false;
  bool found_newest = false;
  bool found_oldest = false;
};

class Organisation {
 public:
  // Zulip's LARGER_THAN_MAX_MESSAGE_ID, what "newest" means.
  static constexpr int64_t kNewestAnchor = 10'000'000'000'000'000;

  Organisation();
  Organisation(const Organisation&) = delete;
  Organisation& operator=(const Organisation&) = delete;

  // A member, subscribed to every default (public) channel. The caller checks for duplicates.
  void AddMember(Member member);
  const Member* FindMember(int64_t id) const;
  const Member* FindMemberByEmail(std::string_view email) const;  // case-insensitive

  // A new channel. InvalidArgument for an empty or taken name (case-insensitive) or an unknown
  // subscriber id. Returns the channel id.
  StatusOr<int64_t> AddChannel(std::string_view name, bool invite_only,
                               const std::vector<int64_t>& subscribers);
  // NotFound for an unknown channel. True if it changed anything.
  StatusOr<bool> SetSubscribed(int64_t user_id, std::string_view channel, bool subscribed);
  const Channel* FindChannel(std::string_view name) const;  // case-insensitive
  const Channel* FindChannel(int64_t id) const;
  const std::map<int64_t, Channel>& channels() const { return channels_; }

  // Appends a message to the history with the next id. The caller has checked that the sender
  // and recipients exist.
  const Message& SendToChannel(int64_t sender_id, const Channel& channel, std::string topic,
                               std::string content, int64_t timestamp);
  const Message& SendDirect(int64_t sender_id, std::vector<int64_t> recipients, std::string content,
                            int64_t timestamp);
  int64_t next_message_id() const { return next_message_id_; }
  // Ids below `next` are not to be given (another source of message ids used them).
  void ReserveMessageIds(int64_t next) {
    if (next > next_message_id_) next_message_id_ = next;
  }
  const std::deque<Message>& messages() const { return messages_; }

  // Whether `user_id` has a UserMessage row for the message (received it, or sent it).
  static bool HasRow(const Message& message, int64_t user_id);
  // The user's flags as a JSON array: ["read"] for the sender, [] for other recipients,
  // ["read","historical"] for a message they can see but never received.
  static const char* FlagsJson(const Message& message, int64_t user_id);

  // The message object as Zulip renders it: HTML content (<p>…</p>) with apply_markdown, the
  // Markdown otherwise; avatar_url null with client_gravatar. `flags`, if given, is added as
  // the message's "flags" (GET /messages); events carry flags beside the message instead.
  void AppendMessageJson(const Message& message, bool apply_markdown, bool client_gravatar,
                         const char* flags, std::string* out) const;
  // {"type":"message","message":{…},"flags":<flags>} without an event id.
  std::string EventBody(const Message& message, bool apply_markdown, bool client_gravatar,
                        const char* flags) const;

  // GET /messages' query (zerver/lib/narrow.py). InvalidArgument with Zulip's words for a narrow
  // it cannot answer: "Invalid narrow operator: unknown channel" for a channel that does not
  // exist or is private to others.
  StatusOr<FetchResult> Fetch(const FetchRequest& request) const;

  // One JSON line per message: {"id","sender","recipient":{"channel","channel_id","topic"} or
  // {"dm":[emails]},"recipients":[emails with a UserMessage row],"event":<the message event as
  // a queue registered with Zulip's defaults gets it: Markdown, avatar_url null, flags []>}.
  std::string GroundTruth() const;

 private:
  Channel& NewChannel(std::string name, bool invite_only);
  static void Snapshot(Channel& channel);
  int64_t PersonalRecipient(int64_t user_id) const { return 200'000 + user_id; }
  int64_t GroupRecipient(const std::vector<int64_t>& users);

  std::map<int64_t, Member> members_;
  std::map<std::string, int64_t> member_by_email_;  // lower-cased
  std::map<int64_t, Channel> channels_;
  std::map<std::string, int64_t> channel_by_name_;  // lower-cased
  std::vector<int64_t> default_channels_;
  std::map<std::vector<int64_t>, int64_t> group_recipients_;
  int64_t next_channel_id_ = 1;
  int64_t next_message_id_ = 1;
  std::deque<Message> messages_;
};

}  // namespace zb::fake_zulip

#endif  // ZB_TESTS_FAKE_ZULIP_ORGANISATION_H_
