#include "tests/fake_zulip/event_queue.h"

#include <algorithm>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace zb::fake_zulip {
namespace {

std::string Serialize(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string StringMember(const rapidjson::Value& object, const char* name) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsString()) return "";
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

}  // namespace

StatusOr<EventInput> ParseEvent(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) {
    return Status::InvalidArgument(std::string("event is not JSON: ") +
                                   rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject()) return Status::InvalidArgument("event is not a JSON object");
  auto type = doc.FindMember("type");
  if (type == doc.MemberEnd() || !type->value.IsString()) {
    return Status::InvalidArgument("event has no string \"type\"");
  }
  EventInput event;
  event.type = type->value.GetString();
  // The queue assigns ids; whatever the caller wrote is dropped. (After reading "type":
  // RemoveMember moves the last member into the hole, which invalidates `type`.)
  doc.RemoveMember("id");
  event.full_type = event.type;
  if (event.type == "update_message_flags") {
    auto all = doc.FindMember("all");
    auto messages = doc.FindMember("messages");
    std::string op = StringMember(doc, "op");
    if (op.empty()) op = StringMember(doc, "operation");
    std::string flag = StringMember(doc, "flag");
    if (all == doc.MemberEnd() || !all->value.IsBool() || messages == doc.MemberEnd() ||
        !messages->value.IsArray() || op.empty() || flag.empty()) {
      return Status::InvalidArgument(
          "update_message_flags event needs op (or operation), flag, all and messages");
    }
    // compute_full_event_type() in zerver/tornado/event_queue.py.
    event.full_type =
        all->value.GetBool() ? "all_flags/" + flag + "/" + op : "flags/" + op + "/" + flag;
    std::string text = Serialize(messages->value);
    event.messages = text.substr(1, text.size() - 2);
    auto timestamp = doc.FindMember("timestamp");
    if (timestamp != doc.MemberEnd()) event.timestamp = Serialize(timestamp->value);
  } else if (event.type == "message") {
    auto message = doc.FindMember("message");
    if (message != doc.MemberEnd() && message->value.IsObject()) {
      const auto& m = message->value;
      event.message_type = StringMember(m, "type");
      if (event.message_type == "stream") event.stream_name = StringMember(m, "display_recipient");
      event.topic = StringMember(m, "subject");
      if (event.topic.empty()) event.topic = StringMember(m, "topic");
      event.sender_email = StringMember(m, "sender_email");
    }
    auto flags = doc.FindMember("flags");
    if (flags != doc.MemberEnd() && flags->value.IsArray()) {
      for (const auto& f : flags->value.GetArray()) {
        if (f.IsString()) event.flags.emplace_back(f.GetString());
      }
    }
  }
  event.body = Serialize(doc);
  return event;
}

const EventInput& HeartbeatEvent() {
  static const EventInput* heartbeat = [] {
    auto* e = new EventInput;
    e->body = R"({"type":"heartbeat"})";
    e->type = e->full_type = "heartbeat";
    return e;
  }();
  return *heartbeat;
}

std::string EventQueue::WithId(const std::string& body, int64_t id) {
  // Zulip adds "id" to the event dict last, so it serialises last.
  std::string out = body.substr(0, body.size() - 1);
  if (body != "{}") out += ',';
  out += "\"id\":";
  out += std::to_string(id);
  out += '}';
  return out;
}

int64_t EventQueue::Push(const EventInput& event) {
  int64_t id = next_event_id_++;
  auto json = std::make_shared<const std::string>(WithId(event.body, id));
  pushed_.push_back({id, json});
  // The same test as Zulip's push(): every flags/ event but flags/remove/read is merged.
  if (event.full_type.starts_with("flags/") && !event.full_type.starts_with("flags/remove/read")) {
    auto it = virtual_.find(event.full_type);
    if (it == virtual_.end()) {
      virtual_.emplace(event.full_type,
                       VirtualEvent{id, event.body, event.messages, event.timestamp});
    } else {
      VirtualEvent& v = it->second;
      v.id = id;
      if (!v.messages.empty() && !event.messages.empty()) v.messages += ',';
      v.messages += event.messages;
      if (!event.timestamp.empty()) v.timestamp = event.timestamp;
    }
    return id;
  }
  queue_.push_back({id, std::move(json)});
  return id;
}

void EventQueue::Prune(int64_t through_id) {
  while (!queue_.empty() && queue_.front().id <= through_id) {
    newest_pruned_id_ = queue_.front().id;
    queue_.pop_front();
  }
}

std::string EventQueue::RenderVirtual(const VirtualEvent& v) const {
  rapidjson::Document doc;
  doc.Parse(v.first_body.data(), v.first_body.size());
  auto& alloc = doc.GetAllocator();
  std::string messages_text = "[" + v.messages + "]";
  rapidjson::Document messages(&alloc);
  messages.Parse(messages_text.data(), messages_text.size());
  doc["messages"].CopyFrom(messages, alloc);
  if (!v.timestamp.empty()) {
    rapidjson::Document timestamp(&alloc);
    timestamp.Parse(v.timestamp.data(), v.timestamp.size());
    doc["timestamp"].CopyFrom(timestamp, alloc);
  }
  return WithId(Serialize(doc), v.id);
}

std::string EventQueue::Contents(size_t* count) {
  if (!virtual_.empty()) {
    std::vector<StoredEvent> virtuals;
    for (const auto& [key, v] : virtual_) {
      virtuals.push_back({v.id, std::make_shared<const std::string>(RenderVirtual(v))});
    }
    virtual_.clear();
    std::sort(virtuals.begin(), virtuals.end(),
              [](const StoredEvent& a, const StoredEvent& b) { return a.id < b.id; });
    std::deque<StoredEvent> merged;
    size_t index = 0;
    for (auto& event : queue_) {
      while (index < virtuals.size() && virtuals[index].id < event.id) {
        merged.push_back(std::move(virtuals[index++]));
      }
      merged.push_back(std::move(event));
    }
    while (index < virtuals.size()) merged.push_back(std::move(virtuals[index++]));
    queue_ = std::move(merged);
  }
  if (count) *count = queue_.size();
  std::string out = "[";
  bool first = true;
  for (const auto& event : queue_) {
    if (!first) out += ',';
    first = false;
    out += *event.json;
  }
  out += ']';
  return out;
}

}  // namespace zb::fake_zulip
