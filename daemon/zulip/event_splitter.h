// Splits the body of a `GET /api/v1/events` response into its events while the bytes arrive.
//
// The body is fed in arbitrary chunks. Each element of the top-level "events" array is handed to
// a sink as its exact bytes, as Zulip sent them (DESIGN.md "Kafka records": the Kafka value is a
// slice of the response, not a re-serialisation). The splitter keeps only the bytes of the
// element in progress (when it straddles chunks) and a small envelope (everything outside the
// events array), so memory is bounded by the largest single event, not by the batch: Zulip has
// no batch limit and the first poll after a long Kafka outage can be huge.
//
// The input is checked as JSON on the way through (strings with escapes, \uXXXX, nesting,
// literals, numbers); anything malformed or truncated is Corruption with the byte offset. Keys
// are compared byte for byte: only the top-level key spelled exactly `"events"` is the array.
//
// Backpressure: the sink returns false when it cannot take the event now (librdkafka's queue is
// full). The splitter then keeps that event, stops, and reports how far it got; Resume() or the
// next Feed offers the same event again. FeedAllOrPause() fits libcurl's write callback, which
// can only take a whole chunk or answer CURL_WRITEFUNC_PAUSE, after which libcurl offers the same
// bytes again from the start of that chunk:
//
//   size_t OnWrite(char* p, size_t size, size_t n, void* self) {
//     auto taken = splitter.FeedAllOrPause({p, size * n});
//     if (!taken.ok()) return 0;                     // aborts the transfer; keep the status
//     return *taken ? size * n : CURL_WRITEFUNC_PAUSE;
//   }
//   // later, when Kafka has room: curl_easy_pause(easy, CURLPAUSE_CONT)
//
// Not thread-safe: one splitter per response, used by the thread that runs the transfer.
#ifndef ZB_DAEMON_ZULIP_EVENT_SPLITTER_H_
#define ZB_DAEMON_ZULIP_EVENT_SPLITTER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/base/json_parse.h"
#include "daemon/base/status.h"
#include "daemon/zulip/event.h"

namespace zb {

class EventSplitter {
 public:
  // Called once per event with its exact bytes; the view is valid only during the call.
  // Returns true when the event was taken, false to pause (the event is offered again later).
  using Sink = std::function<bool(std::string_view event_json)>;

  // Bytes outside the events array beyond this are Corruption: an envelope is a few short
  // fields, and an unbounded one would defeat the memory bound.
  static constexpr size_t kMaxEnvelopeBytes = 1 << 20;
  // Deeper nesting than this is Corruption (Zulip's events are a few levels deep). The bound
  // of every JSON text from the network (json_parse.h), so that an event the splitter passes
  // also parses in ParseEventHeader.
  static constexpr size_t kMaxDepth = kMaxJsonDepth;

  explicit EventSplitter(Sink sink);
  EventSplitter(const EventSplitter&) = delete;
  EventSplitter& operator=(const EventSplitter&) = delete;

  // Processes `chunk` from its start until it is used up or the sink refuses an event. Returns
  // how many bytes of `chunk` were consumed; fewer than chunk.size() only when paused(), and the
  // caller then offers chunk.substr(consumed) again later. The bytes of a refused event count
  // as consumed: the splitter holds that event itself. While paused, Feed first offers the held
  // event again; if it is still refused, 0 bytes are consumed. Corruption (with the byte offset
  // in the body) for malformed input; after an error every call returns the same error.
  StatusOr<size_t> Feed(std::string_view chunk);

  // For a write callback that takes all or nothing (libcurl). True: the whole chunk was taken.
  // False: pause the transfer; when it resumes, the same bytes must be offered again starting
  // from the beginning of this chunk (they may come in different chunk sizes): the part already
  // consumed is recognised and skipped. Also false when the chunk was consumed but its last
  // event was refused, so the transfer stops at once.
  StatusOr<bool> FeedAllOrPause(std::string_view chunk);

  // Offers a held event to the sink again. OK whether or not it was taken (see paused()).
  Status Resume();

  // True while an event refused by the sink is held.
  bool paused() const { return paused_; }

  // Declares the end of the body. OK when it was one complete JSON object; Corruption (with the
  // offset) when it was truncated; Unavailable when an event is still held and refused (call
  // Finish again after the sink can take it). A body without an "events" key (an error
  // response) is OK: see has_events().
  Status Finish();

  // After a successful Finish(): whether the body had a top-level "events" array.
  bool has_events() const { return events_seen_; }
  // The body with the events array emptied (`"events":[]`), as JSON text.
  const std::string& envelope() const { return envelope_; }
  // After a successful Finish(): top-level "result", "msg", "code" and "queue_id" when they are
  // strings (empty otherwise).
  const std::string& result() const { return result_; }
  const std::string& msg() const { return msg_; }
  const std::string& code() const { return code_; }
  const std::string& queue_id() const { return queue_id_; }

  // Events the sink has taken.
  uint64_t events_taken() const { return events_taken_; }
  // Body bytes consumed so far.
  uint64_t bytes_consumed() const { return offset_; }

  // Bytes of memory the splitter holds for buffering (event in progress, envelope, nesting).
  size_t BufferCapacityForTest() const;

 private:
  enum class State : uint8_t {
    kBeforeRoot,
    kValue,            // a value must come (after ':' or ',' in an array)
    kFirstValueOrEnd,  // after '[': a value or ']'
    kFirstKeyOrEnd,    // after '{': a key or '}'
    kKey,              // after ',' in an object: a key
    kColon,            // after a key
    kAfterValue,       // ',' or the closer of the enclosing container
    kString,
    kEscape,
    kUnicode,
    kNumMinus,
    kNumZero,
    kNumInt,
    kNumDot,
    kNumFrac,
    kNumE,
    kNumESign,
    kNumExp,
    kLiteral,
    kAfterRoot,
    kError,
  };

  // Runs the state machine over data[0, n); returns the bytes consumed.
  size_t Run(const char* data, size_t n);
  // Starts the value whose first byte is `c`, at chunk offset i. False (and Fail) if `c` cannot
  // start a value.
  bool BeginValue(char c, size_t i);
  void BeginKey();
  bool Push(char opener, size_t i);
  // The current value ended just before data[end]; hands an event to the sink when it was one.
  void EndValue(const char* data, size_t end);
  void CloseContainer(const char* data, size_t i, char closer);
  void Fail(const std::string& what, size_t i);

  Sink sink_;
  State state_ = State::kBeforeRoot;
  Status error_;
  uint64_t offset_ = 0;  // body bytes consumed before the chunk being processed
  std::string stack_;    // '{' or '[' per open container
  bool string_is_key_ = false;
  bool capture_key_ = false;  // collecting a top-level key into key_
  std::string key_;
  bool next_value_is_events_ = false;
  bool in_events_ = false;  // the top-level events array is open
  bool events_seen_ = false;
  int unicode_left_ = 0;
  const char* literal_ = nullptr;
  size_t literal_pos_ = 0;

  // The event in progress: it began at chunk offset elem_start_, or in an earlier chunk when
  // elem_buffered_ (its bytes so far are then in element_).
  bool in_element_ = false;
  bool elem_buffered_ = false;
  size_t elem_start_ = 0;
  std::string element_;
  bool paused_ = false;     // element_ holds an event the sink refused
  size_t replay_skip_ = 0;  // FeedAllOrPause: bytes of the re-offered data already consumed

  std::string envelope_;
  std::string result_, msg_, code_, queue_id_;
  uint64_t events_taken_ = 0;
};

// Reads what the pipeline keeps about one event from its exact bytes: "id", "type" and, for
// messages, message.id, message.stream_id, the topic (message.subject, or message.topic) and the
// sorted user ids of message.display_recipient when it is a list of users (direct messages).
// InvalidArgument when the bytes are not a JSON object (nesting deeper than kMaxJsonDepth
// included) or lack an integer "id" or a string "type": every event on a queue has both.
// (Backfilled messages have no id; their header is built where they are, not parsed.) Safe to call
// from any thread.
StatusOr<EventHeader> ParseEventHeader(std::string_view event_json);

}  // namespace zb

#endif  // ZB_DAEMON_ZULIP_EVENT_SPLITTER_H_
