#include "tests/fake_zulip/event_factory.h"

#include <cstdio>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace zb::fake_zulip {
namespace {

std::string Quote(std::string_view s) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string Number(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

}  // namespace

const std::vector<std::string>& EventFactory::Types() {
  static const std::vector<std::string> types = {
      "message", "reaction", "update_message", "delete_message",
      "typing",  "presence", "subscription",   "update_message_flags"};
  return types;
}

std::string EventFactory::Content(const EventFactoryOptions& options) {
  // Distinct text per message, so that a test can tell copies apart.
  std::string text = "message " + std::to_string(++serial_);
  if (options.unicode) text += " — naïve café, 日本語のテキスト, 🐙";
  // Repeats a sentence (with its multi-byte characters whole) until the size is reached.
  const std::string filler = options.unicode ? " Größe ✓ 漢字 🎉" : " lorem ipsum dolor";
  while (text.size() < options.content_bytes) text += filler;
  return text;
}

int64_t EventFactory::SomeMessageId() {
  // A message this factory made (or 1 before any), so that edits and reactions refer to
  // something that a ground truth also shows.
  if (next_message_id_ <= 1) return 1;
  std::uniform_int_distribution<int64_t> pick(1, next_message_id_ - 1);
  return pick(rng_);
}

StatusOr<std::string> EventFactory::Make(std::string_view type,
                                         const EventFactoryOptions& options) {
  std::string sender = R"({"user_id":)" + std::to_string(options.sender_id) + R"(,"email":)" +
                       Quote(options.sender_email) + "}";
  std::string now = Number(now_);
  if (type == "message") {
    int64_t id = next_message_id_++;
    return R"({"type":"message","message":{"id":)" + std::to_string(id) + R"(,"sender_id":)" +
           std::to_string(options.sender_id) + R"(,"content":)" + Quote(Content(options)) +
           R"(,"recipient_id":)" + std::to_string(options.stream_id) + R"(,"timestamp":)" +
           std::to_string(static_cast<int64_t>(now_)) +
           R"(,"client":"fake-zulip","subject":"topic )" + std::to_string(id % 7) +
           R"(","topic_links":[],"is_me_message":false,"reactions":[],"submessages":[],)"
           R"("sender_full_name":"Fake Sender","sender_email":)" +
           Quote(options.sender_email) + R"(,"sender_realm_str":"zulip","display_recipient":)" +
           Quote(options.stream) + R"(,"type":"stream","stream_id":)" +
           std::to_string(options.stream_id) +
           R"(,"avatar_url":null,"content_type":"text/x-markdown"},"flags":[]})";
  }
  if (type == "reaction") {
    bool add = rng_() % 4 != 0;
    return std::string(R"({"type":"reaction","op":)") + (add ? R"("add")" : R"("remove")") +
           R"(,"user_id":)" + std::to_string(options.sender_id) + R"(,"user":{"user_id":)" +
           std::to_string(options.sender_id) + R"(,"email":)" + Quote(options.sender_email) +
           R"(,"full_name":"Fake Sender"},"message_id":)" + std::to_string(SomeMessageId()) +
           R"(,"emoji_name":"tada","emoji_code":"1f389","reaction_type":"unicode_emoji"})";
  }
  if (type == "update_message") {
    std::string id = std::to_string(SomeMessageId());
    return R"({"type":"update_message","user_id":)" + std::to_string(options.sender_id) +
           R"(,"edit_timestamp":)" + std::to_string(static_cast<int64_t>(now_)) +
           R"(,"message_id":)" + id + R"(,"stream_name":)" + Quote(options.stream) +
           R"(,"orig_content":"hello","orig_rendered_content":"<p>hello</p>","content":)" +
           Quote(Content(options)) +
           R"(,"rendered_content":"<p>edited</p>","is_me_message":false,)"
           R"("propagate_mode":"change_one","stream_id":)" +
           std::to_string(options.stream_id) + R"(,"topic_links":[],"message_ids":[)" + id +
           R"(],"flags":[],"rendering_only":false})";
  }
  if (type == "delete_message") {
    return R"({"type":"delete_message","message_type":"stream","message_id":)" +
           std::to_string(SomeMessageId()) + R"(,"stream_id":)" +
           std::to_string(options.stream_id) + R"(,"topic":"topic 0"})";
  }
  if (type == "typing") {
    return std::string(R"({"type":"typing","op":)") + (rng_() % 2 ? R"("start")" : R"("stop")") +
           R"(,"message_type":"stream","sender":)" + sender + R"(,"stream_id":)" +
           std::to_string(options.stream_id) + R"(,"topic":"topic 0"})";
  }
  if (type == "presence") {
    return R"({"type":"presence","user_id":)" + std::to_string(options.sender_id) + R"(,"email":)" +
           Quote(options.sender_email) + R"(,"server_timestamp":)" + now +
           R"(,"presence":{"website":{"client":"website","status":)" +
           (rng_() % 2 ? R"("active")" : R"("idle")") + R"(,"timestamp":)" +
           std::to_string(static_cast<int64_t>(now_)) + R"(,"pushable":false}}})";
  }
  if (type == "subscription") {
    return std::string(R"({"type":"subscription","op":)") +
           (rng_() % 2 ? R"("peer_add")" : R"("peer_remove")") + R"(,"stream_ids":[)" +
           std::to_string(options.stream_id) + R"(],"user_ids":[)" +
           std::to_string(100 + rng_() % 50) + "]}";
  }
  if (type == "update_message_flags") {
    return R"({"type":"update_message_flags","op":"add","operation":"add","flag":"read",)"
           R"("messages":[)" +
           std::to_string(SomeMessageId()) + R"(],"all":false})";
  }
  return Status::InvalidArgument("cannot make events of type \"" + std::string(type) + "\"");
}

EventInput EventFactory::MakeMessage(const EventFactoryOptions& options) {
  EventInput event;
  event.topic = "topic " + std::to_string(next_message_id_ % 7);
  event.body = *Make("message", options);
  event.type = event.full_type = "message";
  event.message_type = "stream";
  event.stream_name = options.stream;
  event.sender_email = options.sender_email;
  return event;
}

const char* EventFactory::PickLivelyType() {
  // Weights out of 100: a busy organisation is mostly messages and typing.
  static constexpr struct {
    const char* type;
    int weight;
  } kMix[] = {{"message", 45},       {"typing", 15},        {"reaction", 12},
              {"presence", 10},      {"update_message", 6}, {"update_message_flags", 6},
              {"delete_message", 3}, {"subscription", 3}};
  int roll = static_cast<int>(rng_() % 100);
  for (const auto& entry : kMix) {
    if (roll < entry.weight) return entry.type;
    roll -= entry.weight;
  }
  return "message";
}

std::string EventFactory::MakeLively(const EventFactoryOptions& options) {
  return *Make(PickLivelyType(), options);
}

}  // namespace zb::fake_zulip
