// ModelZulip: the simulation's Zulip server, an HttpTransport that answers the account's calls
// in-process the way FACTS.md says Zulip does, and misbehaves as the seed says.
//
// What it models:
//  - an organisation: four channels (public or private, the bot subscribed or not), two
//    senders, direct messages to the bot; a queue sees what the bot is subscribed to and its
//    direct messages, plus every public channel when registered with all_public_streams or any
//    narrow (FACTS §3), filtered by the narrow (sender terms); GET /messages searches the bot's
//    history, or the public channels with channels:public/streams:public, with sender terms;
//  - messages with realm-unique ids, allocated when sent and committed a little later, so that
//    two concurrent sends reach a queue in the opposite order of their ids (FACTS §3: events
//    are sent on commit); GET /messages sees committed messages only;
//  - event queues: ids from 0 that skip (merged flag events), heartbeats after 45-55 s of a
//    blocking GET, pruning at last_event_id, loss of one queue or of all (a Zulip crash), and
//    "BAD_EVENT_QUEUE_ID" for a lost one;
//  - faults: 5xx, 429 with a decimal Retry-After, resets, bodies cut short, now and then a 200
//    whose body is JSON nested 200,000 deep (a broken proxy), bodies in small chunks with the
//    transfer paused and resumed as the caller asks.
//
// What it checks (the oracle's Zulip side): at every GET /events, before pruning, it asks the
// world whether every event it is about to prune is settled (PruneCheck); it records a
// violation for a last_event_id older than what was pruned, for an id the queue never had, and
// for any request while the world says the bridge is not running.
//
// Threads: one (the simulation's).
#ifndef ZB_TESTS_SIM_MODEL_ZULIP_H_
#define ZB_TESTS_SIM_MODEL_ZULIP_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "daemon/zulip/http_transport.h"
#include "tests/sim/sim_runtime.h"

namespace zb::sim {

struct QueueEvent {
  int64_t id = 0;
  std::string json;
  std::optional<int64_t> message_id;
  bool heartbeat = false;
};

class ModelZulip final : public HttpTransport {
 public:
  // Returns "" when every event of `pruned` (about to be pruned from `queue_id` on a GET with
  // `last_event_id`) is settled, else what is wrong.
  using PruneCheck = std::function<std::string(const std::string& queue_id, int64_t last_event_id,
                                               const std::vector<QueueEvent>& pruned)>;

  // What the account registers with, as far as the model reads it.
  struct Registration {
    bool all_public_streams = false;
    std::string narrow_sender;  // "" for no narrow; else [["sender", this]]
  };

  // What POST /register says of the server.
  static constexpr int kFeatureLevel = 400;

  ModelZulip(SimRuntime& runtime, std::mt19937_64& rng, Registration registration);

  // The world's actions.
  // Allocated now, committed within 2 s; a big one is larger than the model Kafka takes.
  void SendMessage(bool big = false);
  void SendTyping();  // a non-message event to every queue
  void LoseQueue(const std::string& queue_id);
  void LoseAllQueues();
  // The bridge process died: every transfer ends without a callback.
  void DropConnections();
  void set_fault_rate(double rate) { fault_rate_ = rate; }
  // From now on every GET /messages is refused with a 400, as for a narrow naming a channel
  // that was deleted: a refusal that will not change.
  void RefuseMessagesForGood() { refuse_messages_ = true; }
  bool refuses_messages() const { return refuse_messages_; }
  // The account was added back after a removal: its history starts again at the next queue
  // it polls (first_max_message_id).
  void StartHistoryAgain() { first_max_message_id_.reset(); }
  // While false, any request is a violation (the bridge is stopped or dead).
  void set_bridge_running(bool running) { bridge_running_ = running; }
  void set_prune_check(PruneCheck check) { prune_check_ = std::move(check); }

  // Observations.
  const std::vector<std::string>& violations() const { return violations_; }
  // Committed message ids, ascending; with `visible_only`, those the account's queues could see.
  std::vector<int64_t> CommittedMessageIds(bool visible_only = false) const;
  // max_message_id of the registration of the first queue the bridge polled (the first it made
  // durable): messages up to it are history, sent before the account's stream began.
  std::optional<int64_t> first_max_message_id() const { return first_max_message_id_; }
  // Whether message `id` was committed when that first queue was registered (only those are
  // history: a lower id committed later reached the first queue as an event).
  bool CommittedAtFirstRegistration(int64_t id) const;
  // Whether message `id` is history sent more than `margin` before that first registration:
  // what no read-back may publish (the floor's time lets it publish history sent within the
  // margin).
  bool HistorySentLongBefore(int64_t id, Clock::Duration margin) const;
  // Queues the bridge was told it lost (BAD_EVENT_QUEUE_ID).
  const std::set<std::string>& queues_reported_lost() const { return reported_lost_; }
  const std::string& newest_queue() const { return newest_queue_; }
  bool pending_commits() const { return uncommitted_ > 0; }
  uint64_t requests() const { return requests_; }

  Handle Start(HttpRequest request, HttpCallbacks callbacks) override;
  void Pause(Handle handle) override;
  void Resume(Handle handle) override;
  void Cancel(Handle handle) override;

 private:
  struct Message {
    int64_t id;
    int64_t timestamp;
    bool committed = false;
    bool big = false;
    int channel = 0;  // 1..4; 0 for a direct message to the bot
    std::string sender;
    Clock::TimePoint committed_at{};
    Clock::TimePoint sent_at{};
  };
  // Whether a queue registered as the account is would get `m` (FACTS §3).
  bool QueueSees(const Message& m) const;
  // What GET /messages searches, as far as the model reads a narrow.
  struct Search {
    bool public_channels = false;  // channels:public (or streams:public)
    std::string sender;            // "" for any
  };
  static Search ParseSearch(const std::string& narrow_json);
  // Whether GET /messages with `search` returns `m`, committed or not.
  bool SearchMatches(const Message& m, const Search& search) const;
  struct Queue {
    std::deque<QueueEvent> events;
    int64_t next_event_id = 0;
    int64_t newest_pruned = -1;
    std::set<int64_t> ids;  // every id the queue ever had
    Handle parked = 0;      // a blocking GET waiting for an event
    int64_t registered_max_message_id = -1;
    Clock::TimePoint registered_at{};
    Scheduler::TimerId heartbeat_timer = 0;
  };
  struct Transfer {
    HttpRequest request;
    HttpCallbacks callbacks;
    std::string body;
    int status = 200;
    std::string retry_after;
    size_t sent = 0;           // body bytes taken by the caller
    size_t cut_at = SIZE_MAX;  // the body ends here with kTruncated
    TransportError error = TransportError::kNone;
    bool head_sent = false;
    bool paused = false;
    Scheduler::TimerId timer = 0;
    std::string queue_id;  // a parked GET's queue
  };

  void Push(const std::string& queue_id, QueueEvent event);
  void Commit(int64_t message_id);
  void Serve(Handle handle);
  void ServeEvents(Handle handle, Transfer& t);
  void Answer(Handle handle, int status, std::string body);
  void Deliver(Handle handle);
  void Finish(Handle handle);
  std::string MessageJson(const Message& m) const;
  std::string MessagesPage(const Transfer& t) const;
  static std::string Param(const HttpRequest& request, const std::string& name);

  SimRuntime& runtime_;
  std::mt19937_64& rng_;
  const Registration registration_;
  double fault_rate_ = 0;
  bool refuse_messages_ = false;
  bool bridge_running_ = true;
  PruneCheck prune_check_;
  std::vector<std::string> violations_;
  std::map<int64_t, Message> messages_;
  int64_t next_message_id_ = 1;
  int uncommitted_ = 0;
  std::map<std::string, Queue> queues_;
  int next_queue_ = 1;
  std::string newest_queue_;
  std::optional<int64_t> first_max_message_id_;
  // Every queue ever registered: its max_message_id and when.
  std::map<std::string, std::pair<int64_t, Clock::TimePoint>> registrations_;
  Clock::TimePoint first_registered_at_{};
  std::set<std::string> reported_lost_;
  std::map<Handle, Transfer> transfers_;
  Handle next_handle_ = 1;
  uint64_t requests_ = 0;
};

}  // namespace zb::sim

#endif  // ZB_TESTS_SIM_MODEL_ZULIP_H_
