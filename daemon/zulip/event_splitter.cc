#include "daemon/zulip/event_splitter.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include "daemon/base/json_parse.h"

namespace zb {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// After one event larger than this, the event buffer is given back rather than kept at its
// high-water mark for the rest of the response.
constexpr size_t kKeepElementCapacity = 1 << 20;
// Only whether a top-level key is exactly "events" matters; longer keys need not be kept.
constexpr size_t kMaxCapturedKey = 16;

}  // namespace

EventSplitter::EventSplitter(Sink sink) : sink_(std::move(sink)) {}

void EventSplitter::Fail(const std::string& what, size_t i) {
  state_ = State::kError;
  error_ = Status::Corruption("events response: " + what + " at byte offset " +
                              std::to_string(offset_ + i));
}

bool EventSplitter::Push(char opener, size_t i) {
  if (stack_.size() >= kMaxDepth) {
    Fail("nesting deeper than " + std::to_string(kMaxDepth), i);
    return false;
  }
  stack_.push_back(opener);
  return true;
}

void EventSplitter::BeginKey() {
  string_is_key_ = true;
  capture_key_ = stack_.size() == 1;
  key_.clear();
  state_ = State::kString;
}

bool EventSplitter::BeginValue(char c, size_t i) {
  const bool is_events = next_value_is_events_;
  next_value_is_events_ = false;
  if (in_events_ && stack_.size() == 2) {
    in_element_ = true;
    elem_buffered_ = false;
    elem_start_ = i;
  }
  switch (c) {
    case '{':
      if (!Push('{', i)) return false;
      state_ = State::kFirstKeyOrEnd;
      return true;
    case '[':
      if (!Push('[', i)) return false;
      state_ = State::kFirstValueOrEnd;
      if (is_events) {
        if (events_seen_) {
          Fail("a second \"events\" array", i);
          return false;
        }
        events_seen_ = true;
        in_events_ = true;
      }
      return true;
    case '"':
      string_is_key_ = false;
      capture_key_ = false;
      state_ = State::kString;
      return true;
    case '-':
      state_ = State::kNumMinus;
      return true;
    case '0':
      state_ = State::kNumZero;
      return true;
    case 't':
      literal_ = "true";
      break;
    case 'f':
      literal_ = "false";
      break;
    case 'n':
      literal_ = "null";
      break;
    default:
      if (c >= '1' && c <= '9') {
        state_ = State::kNumInt;
        return true;
      }
      Fail("expected a JSON value", i);
      return false;
  }
  literal_pos_ = 1;
  state_ = State::kLiteral;
  return true;
}

void EventSplitter::EndValue(const char* data, size_t end) {
  state_ = State::kAfterValue;
  if (!in_element_ || !in_events_ || stack_.size() != 2) return;
  in_element_ = false;
  std::string_view event;
  if (elem_buffered_) {
    element_.append(data, end);
    event = element_;
  } else {
    event = std::string_view(data + elem_start_, end - elem_start_);
  }
  if (sink_(event)) {
    ++events_taken_;
    element_.clear();
    if (element_.capacity() > kKeepElementCapacity) std::string().swap(element_);
  } else {
    // The chunk may not outlive this call, so a refused event is kept here until it is taken.
    if (!elem_buffered_) element_.assign(event);
    paused_ = true;
  }
  elem_buffered_ = false;
}

void EventSplitter::CloseContainer(const char* data, size_t i, char closer) {
  const char opener = closer == '}' ? '{' : '[';
  if (stack_.empty() || stack_.back() != opener) {
    Fail(std::string("unexpected '") + closer + "'", i);
    return;
  }
  stack_.pop_back();
  if (closer == ']' && in_events_ && stack_.size() == 1) in_events_ = false;
  if (stack_.empty()) {
    state_ = State::kAfterRoot;
  } else {
    EndValue(data, i + 1);
  }
}

size_t EventSplitter::Run(const char* data, size_t n) {
  size_t i = 0;
  while (i < n && !paused_) {
    const char c = data[i];
    const bool was_in_events = in_events_;
    size_t next = i + 1;
    switch (state_) {
      case State::kBeforeRoot:
        if (IsSpace(c)) break;
        if (c != '{') {
          Fail("the body is not a JSON object", i);
          break;
        }
        stack_.push_back('{');
        state_ = State::kFirstKeyOrEnd;
        break;
      case State::kValue:
      case State::kFirstValueOrEnd:
        if (IsSpace(c)) break;
        if (c == ']' && state_ == State::kFirstValueOrEnd) {
          CloseContainer(data, i, c);
          break;
        }
        BeginValue(c, i);
        break;
      case State::kFirstKeyOrEnd:
        if (IsSpace(c)) break;
        if (c == '}') {
          CloseContainer(data, i, c);
        } else if (c == '"') {
          BeginKey();
        } else {
          Fail("expected a key or '}'", i);
        }
        break;
      case State::kKey:
        if (IsSpace(c)) break;
        if (c == '"') {
          BeginKey();
        } else {
          Fail("expected a key", i);
        }
        break;
      case State::kColon:
        if (IsSpace(c)) break;
        if (c != ':') {
          Fail("expected ':'", i);
          break;
        }
        next_value_is_events_ = capture_key_ && key_ == "events";
        state_ = State::kValue;
        break;
      case State::kAfterValue:
        if (IsSpace(c)) break;
        if (c == ',') {
          state_ = stack_.back() == '{' ? State::kKey : State::kValue;
        } else if (c == '}' || c == ']') {
          CloseContainer(data, i, c);
        } else {
          Fail("expected ',' or the end of the container", i);
        }
        break;
      case State::kString: {
        // The bulk of a body is string bytes: skip them without going round the loop.
        size_t j = i;
        while (j < n) {
          const auto d = static_cast<unsigned char>(data[j]);
          if (d == '"' || d == '\\' || d < 0x20) break;
          ++j;
        }
        if (capture_key_) {
          key_.append(data + i, j - i);
          if (key_.size() > kMaxCapturedKey) capture_key_ = false;
        }
        if (j == n) {
          next = n;
          break;
        }
        next = j + 1;
        if (data[j] == '"') {
          if (string_is_key_) {
            state_ = State::kColon;
          } else {
            EndValue(data, j + 1);
          }
        } else if (data[j] == '\\') {
          capture_key_ = false;  // an escaped key is never taken for "events"
          state_ = State::kEscape;
        } else {
          Fail("control character in a string", j);
        }
        break;
      }
      case State::kEscape:
        if (c == 'u') {
          unicode_left_ = 4;
          state_ = State::kUnicode;
        } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                   c == 'r' || c == 't') {
          state_ = State::kString;
        } else {
          Fail("bad escape in a string", i);
        }
        break;
      case State::kUnicode:
        if (!IsHex(c)) {
          Fail("bad \\u escape in a string", i);
        } else if (--unicode_left_ == 0) {
          state_ = State::kString;
        }
        break;
      case State::kNumMinus:
        if (c == '0') {
          state_ = State::kNumZero;
        } else if (IsDigit(c)) {
          state_ = State::kNumInt;
        } else {
          Fail("bad number", i);
        }
        break;
      case State::kNumZero:
      case State::kNumInt:
        if (IsDigit(c) && state_ == State::kNumInt) break;
        if (c == '.') {
          state_ = State::kNumDot;
        } else if (c == 'e' || c == 'E') {
          state_ = State::kNumE;
        } else {
          next = i;  // the number ended; this byte belongs to what follows it
          EndValue(data, i);
        }
        break;
      case State::kNumDot:
        if (IsDigit(c)) {
          state_ = State::kNumFrac;
        } else {
          Fail("bad number", i);
        }
        break;
      case State::kNumFrac:
        if (IsDigit(c)) break;
        if (c == 'e' || c == 'E') {
          state_ = State::kNumE;
        } else {
          next = i;
          EndValue(data, i);
        }
        break;
      case State::kNumE:
        if (c == '+' || c == '-') {
          state_ = State::kNumESign;
        } else if (IsDigit(c)) {
          state_ = State::kNumExp;
        } else {
          Fail("bad number", i);
        }
        break;
      case State::kNumESign:
        if (IsDigit(c)) {
          state_ = State::kNumExp;
        } else {
          Fail("bad number", i);
        }
        break;
      case State::kNumExp:
        if (IsDigit(c)) break;
        next = i;
        EndValue(data, i);
        break;
      case State::kLiteral:
        if (c != literal_[literal_pos_]) {
          Fail("bad literal", i);
        } else if (literal_[++literal_pos_] == '\0') {
          EndValue(data, i + 1);
        }
        break;
      case State::kAfterRoot:
        if (!IsSpace(c)) Fail("bytes after the end of the body", i);
        break;
      case State::kError:
        return i;
    }
    if (state_ == State::kError) return i;
    // Everything outside the events array is the envelope; the array's own brackets are part
    // of it, so it reads `"events":[]`.
    if (!was_in_events || !in_events_) {
      envelope_.append(data + i, next - i);
      if (envelope_.size() > kMaxEnvelopeBytes) {
        Fail("more than " + std::to_string(kMaxEnvelopeBytes) + " bytes outside the events array",
             i);
        return i;
      }
    }
    i = next;
  }
  return i;
}

StatusOr<size_t> EventSplitter::Feed(std::string_view chunk) {
  if (state_ == State::kError) return error_;
  if (paused_) {
    ZB_RETURN_IF_ERROR(Resume());
    if (paused_) return size_t{0};
  }
  const size_t used = Run(chunk.data(), chunk.size());
  if (state_ == State::kError) return error_;
  if (in_element_) {
    // The event goes on in the next chunk: keep what this one had of it.
    const size_t from = elem_buffered_ ? 0 : elem_start_;
    element_.append(chunk.data() + from, used - from);
    elem_buffered_ = true;
  }
  offset_ += used;
  return used;
}

StatusOr<bool> EventSplitter::FeedAllOrPause(std::string_view chunk) {
  if (state_ == State::kError) return error_;
  if (paused_) {
    ZB_RETURN_IF_ERROR(Resume());
    if (paused_) return false;
  }
  // The transport offers again, from its start, the chunk it was told to pause on.
  const size_t skip = std::min(replay_skip_, chunk.size());
  replay_skip_ -= skip;
  if (replay_skip_ > 0) return true;
  StatusOr<size_t> used = Feed(chunk.substr(skip));
  if (!used.ok()) return used.status();
  if (*used == chunk.size() - skip && !paused_) return true;
  replay_skip_ = skip + *used;
  return false;
}

Status EventSplitter::Resume() {
  if (state_ == State::kError) return error_;
  if (!paused_) return Status::Ok();
  if (sink_(element_)) {
    paused_ = false;
    ++events_taken_;
    element_.clear();
    if (element_.capacity() > kKeepElementCapacity) std::string().swap(element_);
  }
  return Status::Ok();
}

Status EventSplitter::Finish() {
  if (state_ == State::kError) return error_;
  if (paused_) {
    ZB_RETURN_IF_ERROR(Resume());
    if (paused_) return Status::Unavailable("events response: an event is still waiting for room");
  }
  if (state_ != State::kAfterRoot) {
    Fail(state_ == State::kBeforeRoot ? "empty body" : "the body ends early (truncated)", 0);
    return error_;
  }
  rapidjson::Document doc;
  Status parsed = ParseJson(envelope_, doc);
  if (!parsed.ok() || !doc.IsObject()) {
    // The tokenizer accepted it, so RapidJSON should too; say so rather than guess.
    return Status::Corruption("events response: envelope does not parse: " +
                              (parsed.ok() ? std::string("not an object") : parsed.message()));
  }
  auto get = [&doc](const char* name, std::string& out) {
    auto it = doc.FindMember(name);
    if (it != doc.MemberEnd() && it->value.IsString()) {
      out.assign(it->value.GetString(), it->value.GetStringLength());
    }
  };
  get("result", result_);
  get("msg", msg_);
  get("code", code_);
  get("queue_id", queue_id_);
  return Status::Ok();
}

size_t EventSplitter::BufferCapacityForTest() const {
  return element_.capacity() + envelope_.capacity() + stack_.capacity() + key_.capacity();
}

StatusOr<EventHeader> ParseEventHeader(std::string_view event_json) {
  // Events are parsed one after another on the same thread: a per-thread buffer serves as the
  // allocator's first chunk, so a typical event costs no heap allocation for its values.
  alignas(16) thread_local char value_buffer[32 * 1024];
  rapidjson::MemoryPoolAllocator<> allocator(value_buffer, sizeof(value_buffer));
  rapidjson::Document doc(&allocator);
  if (Status parsed = ParseJson(event_json, doc); !parsed.ok()) {
    return Status::InvalidArgument("event is not JSON: " + parsed.message());
  }
  if (!doc.IsObject()) return Status::InvalidArgument("event is not a JSON object");
  EventHeader header;
  auto id = doc.FindMember("id");
  if (id == doc.MemberEnd() || !id->value.IsInt64()) {
    return Status::InvalidArgument("event has no integer \"id\"");
  }
  header.id = id->value.GetInt64();
  auto type = doc.FindMember("type");
  if (type == doc.MemberEnd() || !type->value.IsString()) {
    return Status::InvalidArgument("event " + std::to_string(header.id) +
                                   " has no string \"type\"");
  }
  header.type.assign(type->value.GetString(), type->value.GetStringLength());
  if (header.type != "message") return header;

  auto message = doc.FindMember("message");
  if (message == doc.MemberEnd() || !message->value.IsObject()) {
    return Status::InvalidArgument("message event " + std::to_string(header.id) +
                                   " has no \"message\" object");
  }
  const auto& m = message->value;
  auto message_id = m.FindMember("id");
  if (message_id == m.MemberEnd() || !message_id->value.IsInt64()) {
    return Status::InvalidArgument("message event " + std::to_string(header.id) +
                                   " has no integer message.id");
  }
  header.message_id = message_id->value.GetInt64();
  auto stream_id = m.FindMember("stream_id");
  if (stream_id != m.MemberEnd() && stream_id->value.IsInt64()) {
    header.stream_id = stream_id->value.GetInt64();
  }
  // "subject" is what the events API sends; "topic" is accepted for newer or rebuilt records.
  for (const char* name : {"subject", "topic"}) {
    auto topic = m.FindMember(name);
    if (topic != m.MemberEnd() && topic->value.IsString()) {
      header.topic.assign(topic->value.GetString(), topic->value.GetStringLength());
      break;
    }
  }
  auto recipients = m.FindMember("display_recipient");
  if (recipients != m.MemberEnd() && recipients->value.IsArray()) {
    for (const auto& user : recipients->value.GetArray()) {
      if (!user.IsObject()) continue;
      auto user_id = user.FindMember("id");
      if (user_id != user.MemberEnd() && user_id->value.IsInt64()) {
        header.dm_user_ids.push_back(user_id->value.GetInt64());
      }
    }
    std::sort(header.dm_user_ids.begin(), header.dm_user_ids.end());
  }
  return header;
}

}  // namespace zb
