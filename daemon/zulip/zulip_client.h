// ZulipClient: Zulip's REST calls that the bridge makes, and what their answers mean.
//
// It builds the requests (URL from the site as python-zulip-api normalises it, in
// config/zulip_site.h; HTTP Basic with email and API key; parameters as JSON-valued form
// fields or query parameters) and classifies every answer into one ZulipErrorKind, so that an
// account decides what to do from one value: back off and retry, wait as the server asked,
// park, or re-register. See shared/zulip-api/FACTS.md §1.1 (site), §2 (endpoints) and §4
// (errors).
//
// Threads: like HttpTransport, every method is called on the event loop thread and every
// callback runs there, never from inside the method that started the call.
#ifndef ZB_DAEMON_ZULIP_ZULIP_CLIENT_H_
#define ZB_DAEMON_ZULIP_ZULIP_CLIENT_H_

#include <rapidjson/document.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/zulip/http_transport.h"

namespace zb {

// What an account should do about a failed call.
enum class ZulipErrorKind {
  kNone = 0,
  // 5xx, timeouts, resets, refused connections, non-JSON or truncated bodies, bodies nested
  // deeper than kMaxJsonDepth (json_parse.h): back off (with jitter) and retry the same thing.
  // Status: Unavailable.
  kTransient,
  // 429: wait retry_after_seconds (back off when the server gave none), then retry.
  // Status: Unavailable.
  kRateLimited,
  // 401 (bad or malformed key, deactivated user or realm): park the account with the
  // server's msg. Status: Unauthenticated.
  kUnauthenticated,
  // The event queue is gone (BAD_EVENT_QUEUE_ID, "already been pruned", "was not in this
  // queue"): re-register and record a gap. Status: NotFound.
  kQueueLost,
  // A register refused with 400 (all_public_streams for a guest, a bad narrow, a bad
  // event type...): the account's configuration is wrong; park it with the server's msg.
  // Status: InvalidArgument.
  kConfiguration,
  // Any other 4xx: a request the server will refuse again (a bug, or an unsupported server).
  // Status: InvalidArgument.
  kBadRequest,
};
std::string_view ZulipErrorKindName(ZulipErrorKind kind);

// The X-RateLimit-* headers, for pacing polls before a 429 happens. Absent when the server
// did not send them (Zulip sends them on every rate-limited endpoint).
struct RateLimitInfo {
  std::optional<int64_t> remaining;
  std::optional<int64_t> limit;
  std::optional<double> reset_unix_seconds;
};

// How one call ended. `status` carries the operator-facing message: the endpoint, the HTTP
// status and Zulip's msg (never a credential).
struct ZulipOutcome {
  Status status;
  ZulipErrorKind kind = ZulipErrorKind::kNone;
  // For kRateLimited: the server's wait, from the Retry-After header or the body's
  // "retry-after", as a decimal number of seconds (never truncated to an integer).
  std::optional<double> retry_after_seconds;
  // Zulip's "code" ("BAD_EVENT_QUEUE_ID", "RATE_LIMIT_HIT", "UNAUTHORIZED"), when there was one.
  std::string code;
  // Zulip's "msg", when there was one.
  std::string msg;
  int http_status = 0;  // 0 when no response arrived
  TransportError transport_error = TransportError::kNone;
  RateLimitInfo rate_limit;

  bool ok() const { return kind == ZulipErrorKind::kNone; }
};

// A call's outcome with its value, which is meaningful only when outcome.ok().
template <typename T>
struct ZulipReply {
  ZulipOutcome outcome;
  T value{};
};

struct ServerSettingsResult {
  std::string zulip_version;
  int64_t zulip_feature_level = 0;
  std::string realm_url;  // realm_url, or realm_uri on older servers
};

struct RegisterResult {
  std::string queue_id;
  int64_t last_event_id = -1;
  int64_t zulip_feature_level = 0;
  std::string zulip_version;
  // Only when "message" was among the fetched types. See FACTS §2.2 for why it is not the end
  // point of a backfill for an all_public_streams account.
  std::optional<int64_t> max_message_id;
  // Only when "realm" was among the fetched types; 90 s applies when absent.
  std::optional<int64_t> event_queue_longpoll_timeout_seconds;
  // Register parameters this server ignored (queue_lifespan_secs on some servers).
  std::vector<std::string> ignored_parameters_unsupported;
};

struct GetEventsRequest {
  std::string queue_id;
  // The delivered watermark; -1 for the first GET on a new queue.
  int64_t last_event_id = -1;
  bool dont_block = false;
  // The server's event_queue_longpoll_timeout_seconds from register; 90 when unset.
  std::optional<int64_t> longpoll_timeout_seconds;
};

struct GetMessagesRequest {
  std::string anchor;  // a message id, or "newest", "oldest", "first_unread"
  bool include_anchor = false;
  int num_before = 0;
  int num_after = 1000;
  std::string narrow_json = "[]";  // JSON array text, passed as is
  bool apply_markdown = false;
  bool client_gravatar = true;
};

struct ZulipClientOptions {
  // As in a zuliprc: "chat.example.com", "https://chat.example.com/", "localhost:9991"...
  std::string site;
  std::string email;
  std::string api_key;  // never logged, never in a Status
  TlsOptions tls;
  // Idle timeout of every call but a blocking GET /events.
  std::chrono::milliseconds request_timeout{30'000};
  // Added to the server's long-poll timeout (90 s by default) for a blocking GET /events, so
  // that the server, not the client, ends a quiet poll.
  std::chrono::milliseconds longpoll_margin{10'000};
  // How much of an error body is kept to read "code" and "msg" from.
  size_t max_error_body = 64u << 10;
  // Largest non-streamed success body (register with its initial state, a page of messages).
  size_t max_response_body = 256u << 20;
};

enum class ZulipEndpoint { kServerSettings, kRegister, kGetEvents, kDeleteQueue, kGetMessages };

// Classifies one finished HTTP exchange (see ZulipErrorKind). `result.body` is the buffered
// body; for a streamed 200 it is empty and the answer is OK unless the transport failed. Pure;
// public for tests.
ZulipOutcome ClassifyZulipResponse(ZulipEndpoint endpoint, const HttpResult& result);

class ZulipClient {
 public:
  using Handle = HttpTransport::Handle;

  // `transport` must outlive the client.
  ZulipClient(HttpTransport& transport, ZulipClientOptions options);
  ZulipClient(const ZulipClient&) = delete;
  ZulipClient& operator=(const ZulipClient&) = delete;

  // The base URL every request starts with, e.g. "https://chat.example.com/api/": the site
  // through ZulipApiBaseUrl (config/zulip_site.h); request URLs are this + "v1/<endpoint>".
  const std::string& base_url() const { return base_url_; }

  // GET /server_settings: the server's version and feature level.
  Handle ServerSettings(std::function<void(ZulipReply<ServerSettingsResult>)> done);

  // POST /register with `fields` (name -> JSON text, built from the account's config and sent
  // as they are). kConfiguration when the server refuses them with 400.
  Handle Register(std::vector<std::pair<std::string, std::string>> fields,
                  std::function<void(ZulipReply<RegisterResult>)> done);

  // GET /events. A 200 body is streamed to `sink` as it arrives (the caller splits events out
  // of it; `sink` returning false pauses the transfer until Resume(), and the same bytes come
  // again). `done` then says how the transfer ended: OK means the server answered 200 and the
  // whole body reached the sink; the caller still checks the body was complete JSON and treats
  // a body that was not as kTransient. A non-200 body never reaches the sink.
  Handle GetEvents(const GetEventsRequest& get, std::function<bool(std::string_view)> sink,
                   std::function<void(ZulipOutcome)> done);

  // DELETE /events. kQueueLost means the queue was already gone, which a caller deleting it
  // may count as done.
  Handle DeleteQueue(std::string queue_id, std::function<void(ZulipOutcome)> done);

  // GET /messages; the value is the parsed response body (a JSON object with "messages",
  // "found_newest"...), checked to be a success: parsed once, here, with the depth cap of every
  // body from the network (json_parse.h).
  Handle GetMessages(const GetMessagesRequest& get,
                     std::function<void(ZulipReply<rapidjson::Document>)> done);

  // Pass-through to the transport, for the handles above.
  void Pause(Handle handle) { transport_.Pause(handle); }
  void Resume(Handle handle) { transport_.Resume(handle); }
  void Cancel(Handle handle) { transport_.Cancel(handle); }

 private:
  HttpRequest NewRequest(HttpMethod method, std::string_view endpoint) const;

  HttpTransport& transport_;
  ZulipClientOptions options_;
  std::string base_url_;
};

}  // namespace zb

#endif  // ZB_DAEMON_ZULIP_ZULIP_CLIENT_H_
