// Makes Zulip events of a given type, shaped like Zulip's own (zulip-api/event-examples.jsonl),
// with fresh ids: each message gets the next realm-wide message id, and reactions, edits,
// deletions and flag changes refer to messages it made. For bulk and lively emission through
// ZulipCore::Emit; the queue gives each event its own "id".
//
// Not thread-safe: owned by the server's loop thread.
#ifndef ZB_TESTS_FAKE_ZULIP_EVENT_FACTORY_H_
#define ZB_TESTS_FAKE_ZULIP_EVENT_FACTORY_H_

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/status.h"
#include "tests/fake_zulip/event_queue.h"

namespace zb::fake_zulip {

struct EventFactoryOptions {
  std::string sender_email = "iago@zulip.com";
  int64_t sender_id = 11;
  std::string stream = "Verona";
  int64_t stream_id = 5;
  // Message content: at least this many bytes (0: a short sentence). Unicode adds multi-byte
  // text (accents, CJK, an emoji) so that byte and character counts differ.
  size_t content_bytes = 0;
  bool unicode = false;
};

class EventFactory {
 public:
  explicit EventFactory(uint64_t seed = 1) : rng_(seed) {}

  // The types Make knows.
  static const std::vector<std::string>& Types();

  // One event of `type` as a JSON object without "id". InvalidArgument for an unknown type.
  StatusOr<std::string> Make(std::string_view type, const EventFactoryOptions& options);
  // A "message" event already in the form ParseEvent would give, without parsing it: bulk
  // emission of messages is the benchmarks' path, and parsing is most of its cost.
  EventInput MakeMessage(const EventFactoryOptions& options);
  // An event of a type drawn from the "lively organisation" mix: mostly messages, then
  // reactions, typing, presence, edits, flag changes, deletions and subscriptions.
  std::string MakeLively(const EventFactoryOptions& options);
  // The type MakeLively would make next, drawn from the same mix (so that a caller can make the
  // messages itself, through the organisation).
  const char* PickLivelyType();
  // Message content as Make("message") writes it: distinct per call, at least
  // options.content_bytes long, multi-byte with options.unicode.
  std::string Content(const EventFactoryOptions& options);

  // The id the next message gets; realm-wide, increasing.
  int64_t next_message_id() const { return next_message_id_; }
  void set_next_message_id(int64_t id) { next_message_id_ = id; }

  // Fake Unix time the events carry; the server sets it before each batch.
  void set_now(double now) { now_ = now; }

 private:
  int64_t SomeMessageId();

  std::mt19937_64 rng_;
  int64_t next_message_id_ = 1;
  double now_ = 0;
  uint64_t serial_ = 0;
};

}  // namespace zb::fake_zulip

#endif  // ZB_TESTS_FAKE_ZULIP_EVENT_FACTORY_H_
