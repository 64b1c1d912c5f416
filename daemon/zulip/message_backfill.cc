#include "daemon/zulip/message_backfill.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <string_view>
#include <utility>

#include "daemon/base/json_parse.h"
#include "daemon/zulip/event_splitter.h"

namespace zb {
namespace {

// Messages per page when reading back (MessageBackfillOptions::rewind_to_unix_seconds).
constexpr int kRewindPageSize = 100;

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void WriteTerms(JsonWriter& w, const std::vector<std::pair<std::string, std::string>>& terms) {
  w.StartArray();
  for (const auto& [op, operand] : terms) {
    w.StartObject();
    w.Key("operator");
    w.String(op.data(), static_cast<rapidjson::SizeType>(op.size()));
    w.Key("operand");
    w.String(operand.data(), static_cast<rapidjson::SizeType>(operand.size()));
    w.EndObject();
  }
  w.EndArray();
}

std::string NarrowJson(const std::vector<std::pair<std::string, std::string>>& terms) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  WriteTerms(w, terms);
  return buffer.GetString();
}

using Terms = std::vector<std::pair<std::string, std::string>>;

// What Zulip puts in front of a resolved topic's name (zerver/lib/topic.py).
constexpr std::string_view kResolvedTopicPrefix = "\xE2\x9C\x94 ";

bool NamesAChannel(const Terms& terms) {
  return std::any_of(terms.begin(), terms.end(), [](const auto& term) {
    return term.first == "channel" || term.first == "stream" || term.first == "channels" ||
           term.first == "streams";
  });
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

bool HasFlag(const rapidjson::Value& message, std::string_view flag) {
  auto flags = message.FindMember("flags");
  if (flags == message.MemberEnd() || !flags->value.IsArray()) return false;
  for (const rapidjson::Value& f : flags->value.GetArray()) {
    if (f.IsString() && std::string_view(f.GetString(), f.GetStringLength()) == flag) return true;
  }
  return false;
}

// Whether the queue's narrow matched `message` (a GET /messages message object, its "flags"
// still in it) as it was sent, for the terms `narrow` checks itself rather than GET /messages.
bool MatchesAsSent(const BackfillNarrow& narrow, const rapidjson::Value& message) {
  if (narrow.never) return false;
  if (narrow.mentioned && !HasFlag(message, "mentioned")) return false;
  if (narrow.resolved) {
    auto type = message.FindMember("type");
    auto topic = message.FindMember("subject");
    if (type == message.MemberEnd() || !type->value.IsString() ||
        std::string_view(type->value.GetString()) != "stream" || topic == message.MemberEnd() ||
        !topic->value.IsString() ||
        !std::string_view(topic->value.GetString(), topic->value.GetStringLength())
             .starts_with(kResolvedTopicPrefix)) {
      return false;
    }
  }
  if (!narrow.not_sent_by.empty()) {
    auto sender = message.FindMember("sender_email");
    if (sender != message.MemberEnd() && sender->value.IsString() &&
        EqualsIgnoringCase({sender->value.GetString(), sender->value.GetStringLength()},
                           narrow.not_sent_by)) {
      return false;
    }
  }
  return true;
}

}  // namespace

// How the queue judged each operator of its narrow (zerver/lib/narrow_predicate.py, on the
// message and its flags as sent) against how GET /messages judges it (on the message as it is
// now): see docs/decisions.md, "Narrowed accounts".
BackfillPlan PlanBackfill(const AccountConfig& account, int64_t feature_level) {
  BackfillPlan plan;
  plan.limits.push_back(
      "messages deleted since they were sent are not read back, and messages edited since come "
      "back as edited");
  BackfillNarrow own;
  Terms fetch;  // what GET /messages is given
  bool direct_only = false;
  for (const auto& [op, operand] : account.narrow) {
    if (op == "is") {
      if (operand == "unread") {
        // Judged on the read flag as sent, which only the sender's own message has then; now
        // the account may have read more, and GET /messages would leave those out.
        own.not_sent_by = account.email;
        plan.limits.push_back(
            "is:unread: whether a message was read when it was sent is not known afterwards; "
            "every message not sent by the account is read back, also ones Zulip may have "
            "marked read on sending for another reason");
        continue;
      }
      if (operand == "mentioned" || operand == "alerted") {
        // The queue checks the "mentioned" flag for both; GET /messages' is:alerted means
        // alert words, and its is:mentioned also takes wildcard mentions: ask for the wider
        // is:mentioned and check the flag here.
        own.mentioned = true;
        fetch.emplace_back("is", "mentioned");
        plan.limits.push_back("is:" + operand +
                              ": judged on each message's mention flag now; a message whose "
                              "mention an edit removed since it was sent is not read back");
        continue;
      }
      if (operand == "starred") {
        // No message is starred when it is sent: the queue delivered none. Asking for the
        // starred ones keeps the pages few; every one of them is then read past.
        own.never = true;
      } else if (operand == "dm" || operand == "private") {
        direct_only = true;
      } else if (operand == "resolved") {
        // Checked here: with an is: term GET /messages searches only the account's own
        // messages, even with channels:public (narrow.py, ok_to_include_history; only recent
        // servers make an exception for is:resolved).
        own.resolved = true;
        plan.limits.push_back(
            "is:resolved: judged on each topic's name now; messages of a topic unresolved "
            "since they were sent are not read back");
        continue;
      } else {
        // An operand the queue does not check (is:read, is:muted...): it matched every
        // message, and so does the backfill.
        continue;
      }
    } else if (op == "channel" || op == "stream") {
      plan.limits.push_back(std::string(op).append(":").append(operand).append(
          ": judged on each message's channel now; messages moved out of it "
          "since they were sent are not read back"));
    } else if (op == "topic") {
      plan.limits.push_back(std::string(op).append(":").append(operand).append(
          ": judged on each message's topic now; messages moved out of it "
          "since they were sent are not read back"));
    }
    fetch.emplace_back(op, operand);
  }
  // Without a channel operator GET /messages searches the user's own history: its channels
  // (private ones too) and its direct messages, which is what a plain queue sees.
  own.narrow_json = NarrowJson(fetch);
  plan.narrows.push_back(own);
  // An all_public_streams queue, and any queue with a narrow (event_queue.py puts both among
  // the realm's all-streams clients), also sees every public channel it is not subscribed to.
  // A narrow that names a channel sees that channel in the first narrow already; one for
  // direct messages, or one no message matches, needs no second.
  const bool sees_public = account.all_public_streams || !account.narrow.empty();
  if (sees_public && !NamesAChannel(account.narrow) && !direct_only && !own.never) {
    BackfillNarrow all_public = own;
    Terms terms = fetch;
    // `streams` is still an alias of `channels` on new servers; the new name where it is known.
    terms.emplace_back(feature_level >= kChannelsOperatorFeatureLevel ? "channels" : "streams",
                       "public");
    all_public.narrow_json = NarrowJson(terms);
    plan.narrows.push_back(std::move(all_public));
  }
  return plan;
}

MessageBackfill::MessageBackfill(ZulipClient& client, MessageBackfillOptions options,
                                 int64_t anchor_message_id)
    : client_(client), options_(std::move(options)), bound_(options_.max_message_id) {
  for (const BackfillNarrow& narrow : options_.narrows) {
    Cursor cursor;
    cursor.narrow = narrow;
    // Nothing lies below "the oldest" to read back to.
    cursor.rewound = options_.rewind_to_unix_seconds == 0 ||
                     (anchor_message_id < 0 && !options_.rewind_from_newest);
    cursors_.push_back(std::move(cursor));
  }
  Restart(anchor_message_id);
}

MessageBackfill::~MessageBackfill() { Cancel(); }

void MessageBackfill::Cancel() {
  if (request_ != 0) {
    client_.Cancel(request_);
    request_ = 0;
  }
  done_ = nullptr;
}

void MessageBackfill::Restart(int64_t anchor_message_id) {
  Cancel();
  batch_ = {};
  for (Cursor& cursor : cursors_) {
    cursor.anchor = anchor_message_id;
    cursor.found_newest = false;
    cursor.buffer.clear();
  }
}

void MessageBackfill::NextBatch(Done done) {
  done_ = std::move(done);
  batch_ = {};
  last_outcome_ = {};
  Continue();
}

void MessageBackfill::Continue() {
  if (cursors_.size() > 1 && !cursors_.back().probed) {
    for (Cursor& cursor : cursors_) {
      if (!cursor.probed) {
        Probe(cursor);
        return;
      }
    }
  }
  if (!rewound_anchor_ && options_.rewind_to_unix_seconds != 0) {
    for (Cursor& cursor : cursors_) {
      if (!cursor.rewound) {
        Rewind(cursor);
        return;
      }
    }
    int64_t lowest = cursors_.front().anchor;
    for (const Cursor& cursor : cursors_) lowest = std::min(lowest, cursor.anchor);
    rewound_anchor_ = lowest;
  }
  while (batch_.messages.size() < options_.batch_size) {
    for (Cursor& cursor : cursors_) {
      if (cursor.buffer.empty() && !cursor.found_newest) {
        Fetch(cursor);
        return;
      }
    }
    // Every narrow has its next message at hand, or has none left: take the lowest id.
    Cursor* lowest = nullptr;
    for (Cursor& cursor : cursors_) {
      if (cursor.buffer.empty()) continue;
      if (lowest == nullptr ||
          *cursor.buffer.front().header.message_id < *lowest->buffer.front().header.message_id) {
        lowest = &cursor;
      }
    }
    if (lowest == nullptr) {
      batch_.complete = true;
      break;
    }
    int64_t id = *lowest->buffer.front().header.message_id;
    batch_.messages.push_back(std::move(lowest->buffer.front()));
    for (Cursor& cursor : cursors_) {
      // The same message through another narrow (a public channel the account is in).
      while (!cursor.buffer.empty() && *cursor.buffer.front().header.message_id <= id) {
        cursor.buffer.pop_front();
      }
    }
  }
  delivered_ += batch_.messages.size();
  Done done = std::move(done_);
  done_ = nullptr;
  done(last_outcome_, std::move(batch_));
}

void MessageBackfill::Fetch(Cursor& cursor) {
  GetMessagesRequest request;
  request.anchor = cursor.anchor < 0 ? "oldest" : std::to_string(cursor.anchor);
  // Allowed at the start of a one-ended range (num_before=0), "oldest" included.
  request.include_anchor = false;
  request.num_before = 0;
  request.num_after = options_.page_size;
  Ask(cursor, std::move(request), &MessageBackfill::TakePage, "GET /messages");
}

void MessageBackfill::Ask(Cursor& cursor, GetMessagesRequest request, PageTaker take,
                          std::string what) {
  request.narrow_json = cursor.narrow.narrow_json;
  request.apply_markdown = options_.apply_markdown;
  request.client_gravatar = options_.client_gravatar;
  size_t index = static_cast<size_t>(&cursor - cursors_.data());
  request_ = client_.GetMessages(
      request, [this, index, take, what = std::move(what)](ZulipReply<rapidjson::Document> reply) {
        request_ = 0;
        last_outcome_ = reply.outcome;
        if (reply.outcome.ok()) {
          Status taken = (this->*take)(cursors_[index], reply.value);
          if (taken.ok()) {
            Continue();
            return;
          }
          last_outcome_.kind = ZulipErrorKind::kTransient;
          last_outcome_.status = taken.WithContext(what);
        }
        FinishAfterFailure();
      });
}

void MessageBackfill::FinishAfterFailure() {
  // Whatever the batch holds so far is good; the failed request is asked again next time.
  delivered_ += batch_.messages.size();
  Done done = std::move(done_);
  done_ = nullptr;
  done(last_outcome_, std::move(batch_));
}

void MessageBackfill::Probe(Cursor& cursor) {
  GetMessagesRequest request;
  request.anchor = "newest";
  request.include_anchor = true;
  request.num_before = 1;
  request.num_after = 0;
  request.narrow_json = cursor.narrow.narrow_json;
  request.apply_markdown = options_.apply_markdown;
  request.client_gravatar = options_.client_gravatar;
  size_t index = static_cast<size_t>(&cursor - cursors_.data());
  request_ = client_.GetMessages(request, [this, index](ZulipReply<rapidjson::Document> reply) {
    request_ = 0;
    last_outcome_ = reply.outcome;
    if (reply.outcome.ok()) {
      const rapidjson::Document& doc = reply.value;
      auto messages = doc.IsObject() ? doc.FindMember("messages") : doc.MemberEnd();
      if (doc.IsObject() && messages != doc.MemberEnd() && messages->value.IsArray()) {
        Cursor& cursor = cursors_[index];
        for (const rapidjson::Value& m : messages->value.GetArray()) {
          if (m.IsObject() && m.HasMember("id") && m["id"].IsInt64()) {
            cursor.newest = std::max(cursor.newest, m["id"].GetInt64());
          }
        }
        cursor.probed = true;
        // Every narrow's newest read: messages above the newest of all come in the queue. A
        // narrow without messages yet bounds nothing; none at all: nothing to read back.
        if (index + 1 == cursors_.size()) {
          bound_ = 0;
          for (const Cursor& c : cursors_) bound_ = std::max(bound_, c.newest);
        }
        Continue();
        return;
      }
      last_outcome_.kind = ZulipErrorKind::kTransient;
      last_outcome_.status = Status::Corruption("GET /messages: the answer has no \"messages\"");
    }
    FinishAfterFailure();
  });
}

void MessageBackfill::Rewind(Cursor& cursor) {
  GetMessagesRequest request;
  request.anchor = cursor.anchor < 0 ? "newest" : std::to_string(cursor.anchor);
  // The anchor itself is known: it is where the forward read would have started.
  request.include_anchor = false;
  // Reading back usually needs a few minutes of messages, not a page of a thousand.
  request.num_before = std::min(options_.page_size, kRewindPageSize);
  request.num_after = 0;
  Ask(cursor, std::move(request), &MessageBackfill::TakeRewindPage, "GET /messages (reading back)");
}

// Not const, though it could be: its address is a PageTaker, the type it shares with TakePage,
// which writes members, and a const member function would not convert to it.
// NOLINTNEXTLINE(readability-make-member-function-const): see above
Status MessageBackfill::TakeRewindPage(Cursor& cursor, rapidjson::Document& doc) {
  if (!doc.IsObject()) return Status::Corruption("the answer is not a JSON object");
  auto messages = doc.FindMember("messages");
  if (messages == doc.MemberEnd() || !messages->value.IsArray()) {
    return Status::Corruption("the answer has no \"messages\" array");
  }
  auto found_oldest = doc.FindMember("found_oldest");
  const bool oldest = found_oldest != doc.MemberEnd() && found_oldest->value.IsBool() &&
                      found_oldest->value.GetBool();
  // Messages come sorted by id; read from the newest down to the first sent before the time.
  // (From "newest", the anchor is -1: every id is below where the read-back starts.)
  const bool from_newest = cursor.anchor < 0;
  int64_t lowest_id = from_newest ? INT64_MAX : cursor.anchor;
  // The lowest message read below the floor's id (sent after the floor's time); -1: none.
  int64_t lowest_below_floor = -1;
  const auto& page = messages->value.GetArray();
  for (rapidjson::SizeType i = page.Size(); i-- > 0;) {
    const rapidjson::Value& message = page[i];
    auto id = message.IsObject() ? message.FindMember("id") : message.MemberEnd();
    auto sent = message.IsObject() ? message.FindMember("timestamp") : message.MemberEnd();
    if (!message.IsObject() || id == message.MemberEnd() || !id->value.IsInt64()) {
      return Status::Corruption("a message without an integer \"id\"");
    }
    if (id->value.GetInt64() >= lowest_id) continue;  // not below the anchor: never expected
    const bool sent_after_floor = options_.rewind_floor_unix_seconds != 0 &&
                                  sent != message.MemberEnd() && sent->value.IsInt64() &&
                                  sent->value.GetInt64() >= options_.rewind_floor_unix_seconds;
    if (id->value.GetInt64() <= options_.rewind_floor_message_id && !sent_after_floor) {
      // History before the account's stream began. With messages read on the way down (each
      // above the floor, or below it and sent after its time), read forward after this one:
      // none of the narrow lies between them. With none, start at the floor (or where the
      // read-back began, if lower): not at this message, which would read again the one the
      // read-back started from, history itself when a backfill ended at the floor.
      const bool read_some = lowest_id != (from_newest ? INT64_MAX : cursor.anchor);
      if (read_some) {
        cursor.anchor = id->value.GetInt64();
      } else {
        cursor.anchor = from_newest ? options_.rewind_floor_message_id
                                    : std::min(cursor.anchor, options_.rewind_floor_message_id);
      }
      cursor.rewound = true;
      return Status::Ok();
    }
    lowest_id = id->value.GetInt64();
    if (lowest_id <= options_.rewind_floor_message_id) lowest_below_floor = lowest_id;
    if (sent != message.MemberEnd() && sent->value.IsInt64() &&
        sent->value.GetInt64() < options_.rewind_to_unix_seconds) {
      cursor.anchor = lowest_id;  // read forward after it
      cursor.rewound = true;
      return Status::Ok();
    }
  }
  if (oldest) {
    // Every message of the narrow is recent enough: read from the floor, or from just below
    // the lowest message read under it (sent after its time), never from the oldest of a
    // history the floor exists to leave out: the backfill's anchor is the lowest of its narrows'
    // and is where every narrow reads from again after a refused batch.
    int64_t floor = std::max<int64_t>(-1, options_.rewind_floor_message_id);
    if (lowest_below_floor >= 0) floor = std::min(floor, lowest_below_floor - 1);
    cursor.anchor = from_newest ? floor : std::min(cursor.anchor, floor);
    cursor.rewound = true;
  } else if (lowest_id == (from_newest ? INT64_MAX : cursor.anchor)) {
    // An empty page that is not the oldest would be asked again forever: start from here (from
    // the oldest when the read-back began at the newest).
    cursor.rewound = true;
  } else {
    cursor.anchor = lowest_id;  // every message of the page is recent: read further back
  }
  return Status::Ok();
}

bool MessageBackfill::IsHistory(const rapidjson::Value& message, int64_t id) const {
  if (id > options_.rewind_floor_message_id) return false;
  if (options_.rewind_floor_unix_seconds == 0) return true;
  auto sent = message.FindMember("timestamp");
  return sent == message.MemberEnd() || !sent->value.IsInt64() ||
         sent->value.GetInt64() < options_.rewind_floor_unix_seconds;
}

Status MessageBackfill::TakePage(Cursor& cursor, rapidjson::Document& doc) {
  if (!doc.IsObject()) return Status::Corruption("the answer is not a JSON object");
  auto messages = doc.FindMember("messages");
  auto found_newest = doc.FindMember("found_newest");
  if (messages == doc.MemberEnd() || !messages->value.IsArray()) {
    return Status::Corruption("the answer has no \"messages\" array");
  }
  if (found_newest == doc.MemberEnd() || !found_newest->value.IsBool()) {
    return Status::Corruption("the answer has no \"found_newest\"");
  }
  std::deque<BackfilledMessage> page;
  int64_t last_id = cursor.anchor;
  bool past_bound = false;
  for (rapidjson::Value& message : messages->value.GetArray()) {
    auto id = message.IsObject() ? message.FindMember("id") : rapidjson::Value::MemberIterator();
    if (!message.IsObject() || id == message.MemberEnd() || !id->value.IsInt64()) {
      return Status::Corruption("a message without an integer \"id\"");
    }
    if (id->value.GetInt64() <= last_id) continue;  // not above the anchor: never expected
    if (bound_ >= 0 && id->value.GetInt64() > bound_) {
      past_bound = true;  // the new queue has this one and every later one
      break;
    }
    last_id = id->value.GetInt64();
    if (options_.min_timestamp > 0) {
      auto sent = message.FindMember("timestamp");
      if (sent != message.MemberEnd() && sent->value.IsInt64() &&
          sent->value.GetInt64() < options_.min_timestamp) {
        continue;
      }
    }
    if (IsHistory(message, id->value.GetInt64())) continue;
    if (!MatchesAsSent(cursor.narrow, message)) continue;  // the queue did not deliver it
    rapidjson::Value flags(rapidjson::kArrayType);
    if (auto f = message.FindMember("flags"); f != message.MemberEnd()) {
      flags = std::move(f->value);
      message.RemoveMember("flags");
    }
    rapidjson::StringBuffer buffer;
    JsonWriter w(buffer);
    w.StartObject();
    w.Key("type");
    w.String("message");
    w.Key("message");
    message.Accept(w);
    w.Key("flags");
    flags.Accept(w);
    w.EndObject();
    BackfilledMessage out;
    out.value.assign(buffer.GetString(), buffer.GetSize());
    // ParseEventHeader reads live events, which always carry an event id; a backfilled one
    // has none, so it reads this one with the "no id" marker in front.
    StatusOr<EventHeader> header = ParseEventHeader("{\"id\":-1," + out.value.substr(1));
    ZB_RETURN_IF_ERROR(header.status());
    out.header = std::move(*header);
    out.header.id = -1;
    page.push_back(std::move(out));
  }
  // A page that does not move the anchor (empty, or all past the bound) would ask the same page
  // forever. Messages read past (min_timestamp) do move it.
  cursor.found_newest = found_newest->value.GetBool() || past_bound || last_id == cursor.anchor;
  cursor.anchor = last_id;
  for (BackfilledMessage& m : page) cursor.buffer.push_back(std::move(m));
  return Status::Ok();
}

}  // namespace zb
