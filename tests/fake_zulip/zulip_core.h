// The fake Zulip server's state and rules, without HTTP: the realm and its users, HTTP basic
// authentication, the rate limiter, /register, GET and DELETE /events, the heartbeat timers and
// the lifespan GC, all as zerver/ and zerver/tornado/ behave (FACTS.md §2–§4). The HTTP layer
// (FakeZulipServer) turns requests into ApiRequest, answers ApiOutcome, and is told through
// FinishFn when a long-poll it parked must be answered.
//
// Not thread-safe: every method runs on the server's loop thread.
#ifndef ZB_TESTS_FAKE_ZULIP_ZULIP_CORE_H_
#define ZB_TESTS_FAKE_ZULIP_ZULIP_CORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "daemon/base/status.h"
#include "tests/fake_zulip/event_factory.h"
#include "tests/fake_zulip/event_queue.h"
#include "tests/fake_zulip/fake_clock.h"
#include "tests/fake_zulip/organisation.h"
#include "tests/fake_zulip/rate_limiter.h"

namespace zb::fake_zulip {

struct FakeUser {
  int64_t id = 0;  // 0: the next free id
  std::string email;
  std::string api_key;  // Zulip keys are 32 letters and digits; others are "Malformed"
  std::string full_name;
  bool is_bot = true;
  bool is_guest = false;  // guests may not use all_public_streams
  bool active = true;
  // The bot settings that /register falls back on (FACTS §2.2).
  bool default_all_public_streams = false;
  std::string default_events_register_stream;
};

// What the server says about itself.
struct ServerIdentity {
  std::string zulip_version = "10.2";
  int zulip_feature_level = 372;
  std::string zulip_merge_base = "10.2";
  std::string realm_name = "Fake Zulip";
  std::string realm_url = "http://127.0.0.1";
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 200;
  std::string body;
  Headers headers;
};

struct ApiRequest {
  std::string method;  // "GET", "POST", "DELETE", ...
  std::string path;    // "/api/v1/events"
  std::optional<std::string> authorization;
  // Query string and form body merged (the body wins), URL-decoded.
  std::map<std::string, std::string> params;
};

struct ApiOutcome {
  bool parked = false;  // a long-poll that blocks; FinishFn answers it later
  HttpResponse response;
};

// What ZulipCore::Emit pushes: `count` events, to one user's queues (`email`, each event to the
// queues whose filters accept it) or to one queue whatever its filters (`queue_id`). Each event
// is `event_json` as given, or made by the EventFactory: `type` is one of its types or
// "lively" (the mix of a busy organisation). Made messages (type "message", and lively's) are
// real messages of the organisation, from options.sender_email to channel options.stream (both
// must exist), in the history with rows for the channel's subscribers, but delivered to the
// emit's target only, so that a benchmark sets its own fan-out.
struct EmitRequest {
  std::string email;
  std::string queue_id;
  std::string event_json;
  std::string type;
  int64_t count = 1;
  EventFactoryOptions options;
};

struct EmitResult {
  int64_t events = 0;      // events made
  int64_t deliveries = 0;  // (queue, event) pairs pushed
};

// Messages to send through the organisation (ZulipCore::SendMessages): from `sender_email`,
// to `channel` and `topic`, or directly to the users in `to`. Each of the `count` messages has
// `content`, or (if empty) made content of at least `content_bytes` bytes, with multi-byte
// characters if `unicode`, distinct per message.
struct SendMessageRequest {
  std::string sender_email;
  std::string channel;
  std::string topic;
  std::vector<std::string> to;
  std::string content;
  size_t content_bytes = 0;
  bool unicode = false;
  int64_t count = 1;
};

struct SendMessageResult {
  int64_t first_id = 0;  // the messages' ids are first_id..last_id
  int64_t last_id = 0;
  int64_t deliveries = 0;  // (queue, message) pairs pushed
};

// Facts about one queue, for tests and the control interface.
struct QueueInfo {
  std::string queue_id;
  std::string email;
  std::optional<std::vector<std::string>> event_types;
  std::string narrow_json;
  bool all_public_streams = false;
  bool apply_markdown = false;
  bool client_gravatar = false;
  double lifespan_secs = 0;
  double created = 0;
  double last_connection_time = 0;
  bool polling = false;  // a GET is parked on it
  int64_t next_event_id = 0;
  int64_t newest_pruned_id = -1;
  size_t queued = 0;
};

class ZulipCore {
 public:
  static constexpr double kDefaultQueueTimeoutSecs = 600;    // DEFAULT_EVENT_QUEUE_TIMEOUT_SECS
  static constexpr double kMaxQueueTimeoutSecs = 7 * 86400;  // MAX_QUEUE_TIMEOUT_SECS
  static constexpr double kGcIntervalSecs = 60;              // EVENT_QUEUE_GC_FREQ_MSECS
  static constexpr double kHeartbeatMinSecs = 45;            // HEARTBEAT_MIN_FREQ_SECS (+0..10)
  static constexpr int kLongpollTimeoutSecs = 90;            // EVENT_QUEUE_LONGPOLL_TIMEOUT...

  // Answers a parked long-poll. Called from inside ZulipCore's methods.
  using FinishFn = std::function<void(uint64_t handler_id, HttpResponse response)>;

  // `clock` must outlive the core. `seed` drives queue ids and heartbeat jitter.
  ZulipCore(FakeClock& clock, uint64_t seed, FinishFn finish);
  ~ZulipCore();
  ZulipCore(const ZulipCore&) = delete;
  ZulipCore& operator=(const ZulipCore&) = delete;

  ServerIdentity& identity() { return identity_; }

  // Users. InvalidArgument for a duplicate email or id, or an empty email or key.
  StatusOr<int64_t> AddUser(FakeUser user);
  const FakeUser* FindUser(std::string_view email) const;
  // NotFound for an unknown email.
  Status SetUserActive(std::string_view email, bool active);
  void SetRealmActive(bool active) { realm_active_ = active; }
  // Per-user rules as an administrator sets them ("60:200"); empty = the default again.
  Status SetRateLimit(std::string_view email, std::vector<RateRule> rules);
  void SetDefaultRateLimit(std::vector<RateRule> rules);
  // The value /register returns as max_message_id for `email`, instead of the highest id among
  // the user's UserMessage rows (-1 without any), which it is by default (FACTS §2.2).
  Status SetMaxMessageId(std::string_view email, int64_t max_message_id);

  // The organisation (FACTS §3): every user added is a member, subscribed to the default
  // channels. A fresh core also has four human members (README.md): iago@zulip.com (id 11),
  // hamlet@zulip.com, cordelia@zulip.com and othello@zulip.com.
  const Organisation& organisation() const { return org_; }
  // Channels and subscriptions change as in Zulip, with their events: a new channel is a
  // `stream` `create` event for those who can see it (everyone; a private one, its
  // subscribers); a subscription is `subscription` `add` (or `remove`) for the user and
  // `peer_add` (`peer_remove`) for the others who can see the channel.
  // A channel; InvalidArgument for a taken name, NotFound for an unknown subscriber.
  StatusOr<int64_t> AddChannel(std::string_view name, bool invite_only,
                               const std::vector<std::string>& subscriber_emails);
  // NotFound for an unknown user or channel.
  Status SetSubscribed(std::string_view email, std::string_view channel, bool subscribed);
  // Sends messages as Zulip does: each gets the next realm-wide id, goes into the history with
  // a UserMessage row for each recipient (the channel's subscribers, or the direct message's
  // participants, and the sender), and is pushed as a `message` event to every queue that
  // should see it: the recipients' queues (flags [] , the sender's own ["read"]), and for a
  // public channel every all_public_streams or narrowed queue (flags []), each queue's
  // event_types and narrow permitting. NotFound for an unknown sender, channel or recipient,
  // InvalidArgument for a bad request (no recipient, or both kinds; a count outside 0..10^7).
  StatusOr<SendMessageResult> SendMessages(const SendMessageRequest& request);
  // The message ground truth: Organisation::GroundTruth().
  std::string MessageGroundTruth() const { return org_.GroundTruth(); }

  // Handles one API request. `handler_id` names it if it parks.
  ApiOutcome Handle(const ApiRequest& request, uint64_t handler_id);
  // The client of a parked long-poll went away (Zulip's disconnect_handler(client_closed)).
  void HandlerClosed(uint64_t handler_id);

  // Server-side happenings.
  // Pushes the event to every queue of `email` whose event_types (and, for messages, narrow)
  // accept it. Returns (queue id, event id) per queue that took it.
  StatusOr<std::vector<std::pair<std::string, int64_t>>> PushEvent(std::string_view email,
                                                                   std::string_view json);
  // Pushes to one queue whatever its filters say. NotFound for an unknown queue.
  StatusOr<int64_t> PushEventToQueue(std::string_view queue_id, std::string_view json);
  // Bulk emission (see EmitRequest). NotFound for an unknown user or queue, InvalidArgument
  // for a bad event, type or count (at most 10,000,000).
  StatusOr<EmitResult> Emit(const EmitRequest& request);
  EventFactory& event_factory() { return factory_; }
  // A Tornado restart (FACTS §3). Every parked GET loses its connection without an answer:
  // the returned handler ids are for the HTTP layer to close. With `keep_queues` (a restart
  // that dumped and reloaded its queues) the queues stay, ids carry on, server_generation
  // changes, and each queue whose event_types accept it gets a `restart` event; without (a
  // crash) every queue is gone. Returns the handlers to break.
  std::vector<uint64_t> Restart(bool keep_queues);
  int64_t server_generation() const { return server_generation_; }

  // Deletes the queue (a parked GET is answered with the queue's contents first, as DELETE
  // does). NotFound for an unknown queue.
  Status DropQueue(std::string_view queue_id);
  size_t DropAllQueues();
  // Queues whose last blocking poll is older than `secs`; returns how many were dropped.
  size_t DropQueuesIdleFor(double secs);
  // Queues created more than `secs` ago, however busy; returns how many were dropped.
  size_t DropQueuesOlderThan(double secs);
  // The next /register of `email` sees these events arrive between allocating its queue and
  // reading the initial state (FACTS §2.2): they are pushed to the new queue and skipped by
  // the last_event_id the register returns.
  Status SetRegisterWindowEvents(std::string_view email, std::vector<std::string> events);
  // Register parameters to treat as unknown (listed in ignored_parameters_unsupported), to
  // play an older server, e.g. {"queue_lifespan_secs"}.
  void SetUnsupportedRegisterParameters(std::set<std::string> names) {
    unsupported_register_params_ = std::move(names);
  }

  // Timers (heartbeats, GC sweep), in fake seconds.
  std::optional<double> NextDeadline() const;
  // Runs every timer due at the clock's current time, in deadline order.
  void RunDueTimers();

  // Introspection.
  std::vector<QueueInfo> Queues() const;
  std::optional<QueueInfo> Queue(std::string_view queue_id) const;
  // Every event pushed to the queue as JSON lines {"queue_id","id","event"}; also for dropped
  // queues. NotFound for a queue that never existed.
  StatusOr<std::string> GroundTruth(std::string_view queue_id) const;
  std::string GroundTruthAll() const;
  // The same for every queue `email` ever had, dropped ones included, oldest first.
  std::string GroundTruthForUser(std::string_view email) const;
  int RegisterCount(std::string_view email) const;
  size_t parked_polls() const { return handlers_.size(); }

 private:
  struct Client;
  using TimerMap = std::multimap<double, std::string>;

  HttpResponse Authenticate(const ApiRequest& request, const FakeUser** user) const;
  ApiOutcome Register(const FakeUser& user, const ApiRequest& request);
  ApiOutcome GetEvents(const FakeUser& user, const ApiRequest& request, uint64_t handler_id,
                       Headers rate_headers);
  ApiOutcome DeleteEvents(const FakeUser& user, const ApiRequest& request);
  ApiOutcome GetMessages(const FakeUser& user, const ApiRequest& request);
  int64_t MaxMessageId(int64_t user_id) const;
  // The message event as `client` gets it (its apply_markdown and client_gravatar, the flags of
  // its user, or [] when `historical`); `cache` keeps the variants made for one message.
  const EventInput& MessageEvent(const Message& message, const Client& client,
                                 std::vector<std::pair<int, EventInput>>* cache);
  // Pushes `message` to every queue that should see it (see SendMessages); `listeners` are the
  // all_public_streams and narrowed queues.
  int64_t DeliverMessage(const Message& message, const std::vector<Client*>& listeners);
  // Pushes `json` to the queues of every user in `user_ids` that accept it.
  void PushToUsers(const std::vector<int64_t>& user_ids, const std::string& json);
  // Who can see the channel: every user for a public one, its subscribers for a private one.
  std::vector<int64_t> ChannelAudience(const Channel& channel) const;
  void AnnounceSubscription(const Channel& channel, int64_t user_id, bool subscribed);
  Client& NewClient(const FakeUser& user);
  bool Accepts(const Client& client, const EventInput& event) const;
  int64_t AddEvent(Client& client, const EventInput& event);
  int64_t PushParsed(int64_t user_id, const EventInput& event,
                     std::vector<std::pair<std::string, int64_t>>* out);
  bool FinishCurrentHandler(Client& client);
  void DisconnectHandler(Client& client);
  void ConnectHandler(Client& client, uint64_t handler_id, Headers rate_headers);
  void RemoveClient(const std::string& queue_id);
  void GarbageCollect(double now);
  QueueInfo Info(const Client& client) const;
  std::string NewQueueId();

  FakeClock& clock_;
  std::mt19937_64 rng_;
  FinishFn finish_;
  ServerIdentity identity_;
  bool realm_active_ = true;
  std::vector<FakeUser> users_;
  std::unordered_map<std::string, size_t> user_by_email_;  // lower-cased email
  std::unordered_map<std::string, size_t> user_by_key_;
  std::unordered_map<int64_t, int64_t> max_message_id_;
  std::unordered_map<int64_t, int> register_count_;
  std::unordered_map<int64_t, std::vector<EventInput>> register_window_;
  std::set<std::string> unsupported_register_params_;
  RateLimiter rate_limiter_;
  EventFactory factory_;
  Organisation org_;

  std::unordered_map<std::string, std::unique_ptr<Client>> clients_;
  std::unordered_map<int64_t, std::set<std::string>> clients_by_user_;
  std::unordered_map<uint64_t, std::string> handlers_;  // parked GET -> queue id
  TimerMap heartbeats_;
  double next_gc_;
  int64_t server_generation_;
  // Ground truth of queues that are gone, so a test can still read what they were sent.
  std::map<std::string, std::vector<StoredEvent>> dead_ground_truth_;
  std::map<std::string, std::string> dead_owner_;  // queue id -> lower-cased email
};

}  // namespace zb::fake_zulip

#endif  // ZB_TESTS_FAKE_ZULIP_ZULIP_CORE_H_
