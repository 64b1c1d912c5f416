// One Zulip event queue's contents, as zerver/tornado/event_queue.py keeps them (FACTS §3):
// ids counted per queue from 0, pruning on last_event_id, and the "virtual" events that merge
// update_message_flags events per flags/<op>/<flag> key (except flags/remove/read) so that
// ids skip. It also keeps the ground truth: every event ever pushed, with its id and the exact
// bytes it got. No time, no HTTP, no users: those live in ZulipCore.
//
// Not thread-safe: owned by the server's loop thread.
#ifndef ZB_TESTS_FAKE_ZULIP_EVENT_QUEUE_H_
#define ZB_TESTS_FAKE_ZULIP_EVENT_QUEUE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/base/status.h"

namespace zb::fake_zulip {

// An event object checked and reduced to what a queue needs. Built once, pushed to any number
// of queues (each gives it its own id).
struct EventInput {
  std::string body;       // the object, compact, without "id" (an "id" in the input is dropped)
  std::string type;       // "type"
  std::string full_type;  // Zulip's compute_full_event_type: "flags/<op>/<flag>" etc.
  std::string messages;   // update_message_flags: the text of the "messages" array
  std::string timestamp;  // update_message_flags: the text of "timestamp", if any
  // message events: the facts a narrow filters on.
  std::string message_type;  // "stream" or "private"
  std::string stream_name;   // display_recipient of a channel message
  std::string topic;         // subject (or topic)
  std::string sender_email;
  std::vector<std::string> flags;
};

// InvalidArgument if `json` is not a JSON object with a string "type", or is an
// update_message_flags event without the fields Zulip's events carry (operation, flag, all,
// messages).
StatusOr<EventInput> ParseEvent(std::string_view json);

// {"type":"heartbeat"}, the event Zulip's heartbeat timer pushes.
const EventInput& HeartbeatEvent();

struct StoredEvent {
  int64_t id;
  // Exact bytes, "id" last as Zulip appends it. Shared by the queue and the ground truth: bulk
  // emission's memory (and the page faults that come with it) is mostly these.
  std::shared_ptr<const std::string> json;
};

class EventQueue {
 public:
  EventQueue() = default;
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Gives the event the next id and queues it (or merges it into a virtual event). Returns the
  // id. Recorded in the ground truth as pushed, before any merge.
  int64_t Push(const EventInput& event);

  // Zulip's prune(): drops queued events with id <= `through_id`, advancing newest_pruned_id.
  // Virtual events not yet read are not touched, as in Zulip.
  void Prune(int64_t through_id);

  // True when nothing is queued, virtual events included.
  bool Empty() const { return queue_.empty() && virtual_.empty(); }

  // Zulip's contents(): slots the virtual events into the queue in id order (they become
  // ordinary queued events) and returns the queue as a JSON array text. `count` gets the
  // number of events.
  std::string Contents(size_t* count = nullptr);

  int64_t newest_pruned_id() const { return newest_pruned_id_; }
  // The id of the last event Contents() returned, or -1 if it returned none.
  int64_t last_queued_id() const { return queue_.empty() ? -1 : queue_.back().id; }
  int64_t next_event_id() const { return next_event_id_; }
  size_t size() const { return queue_.size() + virtual_.size(); }

  // Every event pushed, in push order, as pushed (merges not applied).
  const std::vector<StoredEvent>& ground_truth() const { return pushed_; }

 private:
  struct VirtualEvent {
    int64_t id;
    std::string first_body;  // the first event of the merge, without id
    std::string messages;    // concatenated message ids (array text without brackets)
    std::string timestamp;   // the newest "timestamp" text, if any
  };
  static std::string WithId(const std::string& body, int64_t id);
  std::string RenderVirtual(const VirtualEvent& v) const;

  std::deque<StoredEvent> queue_;
  std::map<std::string, VirtualEvent> virtual_;  // by full event type
  int64_t next_event_id_ = 0;
  int64_t newest_pruned_id_ = -1;
  std::vector<StoredEvent> pushed_;
};

}  // namespace zb::fake_zulip

#endif  // ZB_TESTS_FAKE_ZULIP_EVENT_QUEUE_H_
