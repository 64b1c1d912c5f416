#include "tests/fake_zulip/organisation.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace zb::fake_zulip {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// JSON string quoting as Zulip's orjson writes it (UTF-8 kept, control characters escaped),
// appended in place: made messages go through here once per queue variant, a hot path.
void AppendQuoted(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out += '"';
  size_t plain = 0;  // start of the run of characters that need no escape
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        *out += "\\u00";
        *out += kHex[c >> 4];
        *out += kHex[c & 0xf];
    }
  }
  out->append(s.data() + plain, s.size() - plain);
  *out += '"';
}

std::string Quoted(std::string_view s) {
  std::string out;
  AppendQuoted(s, &out);
  return out;
}

// What Zulip's Markdown processor makes of a plain paragraph.
std::string RenderHtml(std::string_view markdown) {
  std::string html = "<p>";
  html.reserve(markdown.size() + 16);
  for (char c : markdown) {
    switch (c) {
      case '&':
        html += "&amp;";
        break;
      case '<':
        html += "&lt;";
        break;
      case '>':
        html += "&gt;";
        break;
      case '"':
        html += "&quot;";
        break;
      case '\'':
        html += "&#39;";
        break;
      default:
        html += c;
    }
  }
  html += "</p>";
  return html;
}

// A gravatar-style URL: 32 hex digits from the email (FNV-1a, not Gravatar's MD5).
std::string AvatarUrl(std::string_view email) {
  uint64_t a = 1469598103934665603ULL, b = 1099511628211ULL ^ 0x9e3779b97f4a7c15ULL;
  for (char c : Lower(email)) {
    a = (a ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    b = (b ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL + 7;
  }
  char text[96];
  std::snprintf(text, sizeof text,
                "https://secure.gravatar.com/avatar/%016llx%016llx?d=identicon&version=1",
                static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  return text;
}

bool Contains(const std::vector<int64_t>& sorted, int64_t id) {
  return std::binary_search(sorted.begin(), sorted.end(), id);
}

}  // namespace

Organisation::Organisation() {
  // The channel ids of Zulip's development realm; Verona is the EventFactory's default (5).
  static constexpr std::pair<const char*, int64_t> kDefaults[] = {
      {"Denmark", 1}, {"Scotland", 3}, {"Verona", 5}};
  for (auto [name, id] : kDefaults) {
    next_channel_id_ = id;
    default_channels_.push_back(NewChannel(name, false).id);
  }
  next_channel_id_ = 7;
  NewChannel("core team", true);
}

Channel& Organisation::NewChannel(std::string name, bool invite_only) {
  int64_t id = next_channel_id_++;
  Channel& channel = channels_[id];
  channel.id = id;
  channel.name = std::move(name);
  channel.invite_only = invite_only;
  channel.recipient_id = 100 + id;
  channel_by_name_[Lower(channel.name)] = id;
  Snapshot(channel);
  return channel;
}

void Organisation::Snapshot(Channel& channel) {
  channel.snapshot = std::make_shared<const std::vector<int64_t>>(channel.subscribers.begin(),
                                                                  channel.subscribers.end());
}

void Organisation::AddMember(Member member) {
  int64_t id = member.id;
  member_by_email_[Lower(member.email)] = id;
  members_[id] = std::move(member);
  for (int64_t channel_id : default_channels_) {
    Channel& channel = channels_.at(channel_id);
    channel.subscribers.insert(id);
    Snapshot(channel);
  }
}

const Member* Organisation::FindMember(int64_t id) const {
  auto it = members_.find(id);
  return it == members_.end() ? nullptr : &it->second;
}

const Member* Organisation::FindMemberByEmail(std::string_view email) const {
  auto it = member_by_email_.find(Lower(email));
  return it == member_by_email_.end() ? nullptr : FindMember(it->second);
}

StatusOr<int64_t> Organisation::AddChannel(std::string_view name, bool invite_only,
                                           const std::vector<int64_t>& subscribers) {
  if (name.empty()) return Status::InvalidArgument("a channel needs a name");
  if (channel_by_name_.count(Lower(name))) {
    return Status::InvalidArgument("channel \"" + std::string(name) + "\" exists already");
  }
  for (int64_t id : subscribers) {
    if (!members_.count(id)) return Status::InvalidArgument("no user " + std::to_string(id));
  }
  while (channels_.count(next_channel_id_)) ++next_channel_id_;
  Channel& channel = NewChannel(std::string(name), invite_only);
  channel.subscribers.insert(subscribers.begin(), subscribers.end());
  Snapshot(channel);
  return channel.id;
}

StatusOr<bool> Organisation::SetSubscribed(int64_t user_id, std::string_view name,
                                           bool subscribed) {
  auto it = channel_by_name_.find(Lower(name));
  if (it == channel_by_name_.end()) {
    return Status::NotFound("no channel \"" + std::string(name) + "\"");
  }
  Channel& channel = channels_.at(it->second);
  bool changed =
      subscribed ? channel.subscribers.insert(user_id).second : channel.subscribers.erase(user_id);
  if (changed) Snapshot(channel);
  return changed;
}

const Channel* Organisation::FindChannel(std::string_view name) const {
  auto it = channel_by_name_.find(Lower(name));
  return it == channel_by_name_.end() ? nullptr : &channels_.at(it->second);
}

const Channel* Organisation::FindChannel(int64_t id) const {
  auto it = channels_.find(id);
  return it == channels_.end() ? nullptr : &it->second;
}

const Message& Organisation::SendToChannel(int64_t sender_id, const Channel& channel,
                                           std::string topic, std::string content,
                                           int64_t timestamp) {
  Message& m = messages_.emplace_back();
  m.id = next_message_id_++;
  m.sender_id = sender_id;
  m.channel_id = channel.id;
  m.topic = std::move(topic);
  m.recipient_id = channel.recipient_id;
  m.content = std::move(content);
  m.timestamp = timestamp;
  m.subscribers = channel.snapshot;
  return m;
}

int64_t Organisation::GroupRecipient(const std::vector<int64_t>& users) {
  auto [it, added] =
      group_recipients_.emplace(users, 300'000 + static_cast<int64_t>(group_recipients_.size()));
  return it->second;
}

const Message& Organisation::SendDirect(int64_t sender_id, std::vector<int64_t> recipients,
                                        std::string content, int64_t timestamp) {
  recipients.push_back(sender_id);
  std::sort(recipients.begin(), recipients.end());
  recipients.erase(std::unique(recipients.begin(), recipients.end()), recipients.end());
  Message& m = messages_.emplace_back();
  m.id = next_message_id_++;
  m.sender_id = sender_id;
  // One-to-one (or to oneself): the other user's personal recipient; otherwise a group's.
  if (recipients.size() == 1) {
    m.recipient_id = PersonalRecipient(sender_id);
  } else if (recipients.size() == 2) {
    m.recipient_id = PersonalRecipient(recipients[0] == sender_id ? recipients[1] : recipients[0]);
  } else {
    m.recipient_id = GroupRecipient(recipients);
  }
  m.dm_user_ids = std::move(recipients);
  m.content = std::move(content);
  m.timestamp = timestamp;
  return m;
}

bool Organisation::HasRow(const Message& message, int64_t user_id) {
  if (message.sender_id == user_id) return true;
  if (message.is_channel()) return message.subscribers && Contains(*message.subscribers, user_id);
  return Contains(message.dm_user_ids, user_id);
}

const char* Organisation::FlagsJson(const Message& message, int64_t user_id) {
  if (message.sender_id == user_id) return R"(["read"])";
  if (HasRow(message, user_id)) return "[]";
  return R"(["read","historical"])";
}

void Organisation::AppendMessageJson(const Message& m, bool apply_markdown, bool client_gravatar,
                                     const char* flags, std::string* out) const {
  const Member* sender = FindMember(m.sender_id);
  static const Member kUnknown{0, "unknown@example.com", "Unknown", false};
  if (!sender) sender = &kUnknown;
  *out += R"({"id":)";
  *out += std::to_string(m.id);
  *out += R"(,"sender_id":)";
  *out += std::to_string(m.sender_id);
  *out += R"(,"content":)";
  AppendQuoted(apply_markdown ? RenderHtml(m.content) : m.content, out);
  *out += R"(,"recipient_id":)";
  *out += std::to_string(m.recipient_id);
  *out += R"(,"timestamp":)";
  *out += std::to_string(m.timestamp);
  *out += R"(,"client":"fake-zulip","subject":)";
  AppendQuoted(m.topic, out);
  *out += R"(,"topic_links":[],"is_me_message":false,"reactions":[],"submessages":[],)"
          R"("sender_full_name":)";
  AppendQuoted(sender->full_name, out);
  *out += R"(,"sender_email":)";
  AppendQuoted(sender->email, out);
  *out += R"(,"sender_realm_str":"zulip","display_recipient":)";
  if (m.is_channel()) {
    const Channel* channel = FindChannel(m.channel_id);
    AppendQuoted(channel ? channel->name : "", out);
    *out += R"(,"type":"stream","stream_id":)";
    *out += std::to_string(m.channel_id);
  } else {
    *out += '[';
    for (size_t i = 0; i < m.dm_user_ids.size(); ++i) {
      const Member* member = FindMember(m.dm_user_ids[i]);
      if (i) *out += ',';
      *out += R"({"id":)" + std::to_string(m.dm_user_ids[i]) + R"(,"email":)";
      AppendQuoted(member ? member->email : "", out);
      *out += R"(,"full_name":)";
      AppendQuoted(member ? member->full_name : "", out);
      *out += R"(,"is_mirror_dummy":false})";
    }
    *out += R"(],"type":"private")";
  }
  *out += R"(,"avatar_url":)";
  *out += client_gravatar ? "null" : Quoted(AvatarUrl(sender->email));
  *out +=
      apply_markdown ? R"(,"content_type":"text/html")" : R"(,"content_type":"text/x-markdown")";
  if (flags) {
    *out += R"(,"flags":)";
    *out += flags;
  }
  *out += '}';
}

std::string Organisation::EventBody(const Message& message, bool apply_markdown,
                                    bool client_gravatar, const char* flags) const {
  std::string body = R"({"type":"message","message":)";
  body.reserve(message.content.size() * (apply_markdown ? 2 : 1) + 600);
  AppendMessageJson(message, apply_markdown, client_gravatar, nullptr, &body);
  body += R"(,"flags":)";
  body += flags;
  body += '}';
  return body;
}

StatusOr<FetchResult> Organisation::Fetch(const FetchRequest& request) const {
  // The scope first (zerver/lib/narrow.py): a channel operator searches that channel's whole
  // history, channels:public every public channel's, and anything else only the messages the
  // user received or sent.
  const Channel* scope_channel = nullptr;
  bool scope_public = false;
  static const std::set<std::string> kIsOperands = {
      "dm", "private", "unread", "read", "starred", "mentioned", "alerted", "resolved", "followed"};
  for (const NarrowTerm& term : request.narrow) {
    if (term.op == "channel" || term.op == "stream") {
      const Channel* channel = FindChannel(term.operand);
      if (!channel && !term.operand.empty() &&
          std::all_of(term.operand.begin(), term.operand.end(),
                      [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        channel = FindChannel(static_cast<int64_t>(std::stoll(term.operand)));
      }
      // A private channel is invisible to those outside it.
      if (!channel || (channel->invite_only && !channel->subscribers.count(request.user_id))) {
        return Status::InvalidArgument("Invalid narrow operator: unknown channel");
      }
      if (!term.negated) scope_channel = channel;
    } else if (term.op == "channels" || term.op == "streams") {  // "streams": the old name
      if (term.operand != "public" && term.operand != "web-public") {
        return Status::InvalidArgument("Invalid narrow operator: unknown channels operand " +
                                       term.operand);
      }
      if (!term.negated && term.operand == "public") scope_public = true;
    } else if (term.op == "is") {
      if (!kIsOperands.count(term.operand)) {
        return Status::InvalidArgument("Invalid narrow operator: unknown 'is' operand " +
                                       term.operand);
      }
    } else if (term.op != "topic" && term.op != "sender" && term.op != "id") {
      return Status::InvalidArgument("Invalid narrow operator: unknown operator " + term.op);
    }
  }

  auto matches = [&](const Message& m) {
    if (scope_channel) {
      if (m.channel_id != scope_channel->id) return false;
      // A private channel's history is protected (Zulip's default for invite_only channels,
      // history_public_to_subscribers false): a subscriber reads only what they received.
      if (scope_channel->invite_only && !HasRow(m, request.user_id)) return false;
    } else if (scope_public) {
      if (!m.is_channel() || channels_.at(m.channel_id).invite_only) return false;
    } else if (!HasRow(m, request.user_id)) {
      return false;
    }
    for (const NarrowTerm& term : request.narrow) {
      bool hit = false;
      if (term.op == "channel" || term.op == "stream") {
        const Channel* channel = m.is_channel() ? FindChannel(m.channel_id) : nullptr;
        hit = channel && (Lower(channel->name) == Lower(term.operand) ||
                          std::to_string(channel->id) == term.operand);
      } else if (term.op == "channels" || term.op == "streams") {
        hit = term.operand == "public" && m.is_channel() && !channels_.at(m.channel_id).invite_only;
      } else if (term.op == "topic") {
        hit = m.is_channel() && Lower(m.topic) == Lower(term.operand);
      } else if (term.op == "sender") {
        const Member* sender = FindMember(m.sender_id);
        hit = (sender && Lower(sender->email) == Lower(term.operand)) ||
              std::to_string(m.sender_id) == term.operand;
      } else if (term.op == "id") {
        hit = std::to_string(m.id) == term.operand;
      } else if (term.op == "is") {
        bool unread = HasRow(m, request.user_id) && m.sender_id != request.user_id;
        if (term.operand == "dm" || term.operand == "private") {
          hit = !m.is_channel();
        } else if (term.operand == "unread") {
          hit = unread;
        } else if (term.operand == "read") {
          hit = !unread;
        } else if (term.operand == "resolved") {
          hit = m.is_channel() && m.topic.starts_with("\xE2\x9C\x94 ");
        }  // starred, mentioned, alerted, followed: no such flags are ever set here
      }
      if (hit == term.negated) return false;
    }
    return true;
  };

  FetchResult result;
  int64_t anchor = request.anchored_to_left ? 0 : request.anchor;
  auto pivot = std::lower_bound(messages_.begin(), messages_.end(), anchor,
                                [](const Message& m, int64_t id) { return m.id < id; });
  if (request.anchored_to_right) pivot = messages_.end();
  std::vector<const Message*> before;
  for (auto it = pivot;
       it != messages_.begin() && static_cast<int64_t>(before.size()) < request.num_before;) {
    --it;
    if (matches(*it)) before.push_back(&*it);
  }
  std::reverse(before.begin(), before.end());
  const Message* anchor_row = nullptr;
  auto after_start = pivot;
  if (!request.anchored_to_right && pivot != messages_.end() && pivot->id == anchor) {
    if (matches(*pivot)) anchor_row = &*pivot;
    ++after_start;
  }
  std::vector<const Message*> after;
  if (!request.anchored_to_right) {
    for (auto it = after_start;
         it != messages_.end() && static_cast<int64_t>(after.size()) < request.num_after; ++it) {
      if (matches(*it)) after.push_back(&*it);
    }
  }
  // post_process_limited_query(): "found" only when fewer than asked for came back.
  result.found_oldest =
      request.anchored_to_left || static_cast<int64_t>(before.size()) < request.num_before;
  result.found_newest =
      request.anchored_to_right || static_cast<int64_t>(after.size()) < request.num_after;
  // limit_query_to_range() drops an excluded anchor from its before or after query; with
  // neither (num_before = num_after = 0) it asks for the anchor alone, excluded or not.
  if (!request.include_anchor && (request.num_before > 0 || request.num_after > 0)) {
    anchor_row = nullptr;
  }
  result.found_anchor = anchor_row != nullptr;
  result.messages = std::move(before);
  if (anchor_row) result.messages.push_back(anchor_row);
  result.messages.insert(result.messages.end(), after.begin(), after.end());
  return result;
}

std::string Organisation::GroundTruth() const {
  std::string out;
  for (const Message& m : messages_) {
    const Member* sender = FindMember(m.sender_id);
    out += R"({"id":)" + std::to_string(m.id) + R"(,"sender":)" +
           Quoted(sender ? sender->email : "") + R"(,"recipient":)";
    std::vector<int64_t> rows;
    if (m.is_channel()) {
      const Channel* channel = FindChannel(m.channel_id);
      out += R"({"channel":)" + Quoted(channel ? channel->name : "") + R"(,"channel_id":)" +
             std::to_string(m.channel_id) + R"(,"topic":)" + Quoted(m.topic) + "}";
      if (m.subscribers) rows = *m.subscribers;
      if (!Contains(rows, m.sender_id)) {
        rows.insert(std::upper_bound(rows.begin(), rows.end(), m.sender_id), m.sender_id);
      }
    } else {
      out += R"({"dm":[)";
      for (size_t i = 0; i < m.dm_user_ids.size(); ++i) {
        const Member* member = FindMember(m.dm_user_ids[i]);
        out += (i ? "," : "") + Quoted(member ? member->email : "");
      }
      out += "]}";
      rows = m.dm_user_ids;
    }
    out += R"(,"recipients":[)";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Member* member = FindMember(rows[i]);
      out += (i ? "," : "") + Quoted(member ? member->email : "");
    }
    out += R"(],"event":)" + EventBody(m, false, true, "[]") + "}\n";
  }
  return out;
}

}  // namespace zb::fake_zulip
