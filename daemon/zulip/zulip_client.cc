#include "daemon/zulip/zulip_client.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <memory>

#include "daemon/base/backoff.h"
#include "daemon/base/json_parse.h"
#include "daemon/config/zulip_site.h"

namespace zb {

namespace {

constexpr int64_t kDefaultLongpollTimeoutSeconds = 90;
constexpr size_t kMaxMsgInStatus = 500;

std::string_view EndpointName(ZulipEndpoint endpoint) {
  switch (endpoint) {
    case ZulipEndpoint::kServerSettings:
      return "GET /server_settings";
    case ZulipEndpoint::kRegister:
      return "POST /register";
    case ZulipEndpoint::kGetEvents:
      return "GET /events";
    case ZulipEndpoint::kDeleteQueue:
      return "DELETE /events";
    case ZulipEndpoint::kGetMessages:
      return "GET /messages";
  }
  return "?";
}

template <typename T>
std::optional<T> ParseNumber(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

RateLimitInfo ParseRateLimit(const HttpResponseHead& head) {
  RateLimitInfo info;
  info.remaining = ParseNumber<int64_t>(head.ratelimit_remaining);
  info.limit = ParseNumber<int64_t>(head.ratelimit_limit);
  info.reset_unix_seconds = ParseNumber<double>(head.ratelimit_reset);
  return info;
}

// Zulip's msg as it appears in a Status: bounded, so a misbehaving proxy's page can't flood
// the logs.
std::string Bounded(std::string_view text) {
  if (text.size() <= kMaxMsgInStatus) return std::string(text);
  return std::string(text.substr(0, kMaxMsgInStatus)) + "...";
}

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

// The three ways Zulip says a queue is gone (FACTS §2.3). The code is checked first; the
// English texts are for BAD_REQUEST, whose messages are the only way to tell them apart.
bool IsQueueLost(std::string_view code, std::string_view msg) {
  if (code == "BAD_EVENT_QUEUE_ID") return true;
  if (StartsWithNoCase(msg, "Bad event queue id")) return true;  // servers before error codes
  if (msg.find("has already been pruned") != std::string_view::npos) return true;
  if (msg.starts_with("Event ") && msg.find("was not in this queue") != std::string_view::npos) {
    return true;
  }
  return false;
}

ZulipOutcome Fail(ZulipOutcome outcome, ZulipErrorKind kind, std::string_view endpoint,
                  std::string detail) {
  outcome.kind = kind;
  std::string text = std::string(endpoint) + ": " + std::move(detail);
  switch (kind) {
    case ZulipErrorKind::kTransient:
    case ZulipErrorKind::kRateLimited:
      outcome.status = Status::Unavailable(std::move(text));
      break;
    case ZulipErrorKind::kUnauthenticated:
      outcome.status = Status::Unauthenticated(std::move(text));
      break;
    case ZulipErrorKind::kQueueLost:
      outcome.status = Status::NotFound(std::move(text));
      break;
    case ZulipErrorKind::kConfiguration:
    case ZulipErrorKind::kBadRequest:
      outcome.status = Status::InvalidArgument(std::move(text));
      break;
    case ZulipErrorKind::kNone:
      break;
  }
  return outcome;
}

std::string GetString(const rapidjson::Value& object, const char* name) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::optional<int64_t> GetInt(const rapidjson::Value& object, const char* name) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsInt64()) return std::nullopt;
  return it->value.GetInt64();
}

// Parses a success body into `doc`, or says why it is not one. Returns false with `outcome`
// set to the failure.
bool ParseSuccessBody(ZulipEndpoint endpoint, const std::string& body, rapidjson::Document& doc,
                      ZulipOutcome& outcome) {
  Status parsed = ParseJson(body, doc);
  if (!parsed.ok() || !doc.IsObject()) {
    // Built before the call: Fail's arguments are evaluated in no fixed order, so `outcome`
    // may already be moved from when another argument reads it.
    std::string detail = "HTTP " + std::to_string(outcome.http_status) +
                         ": body is not a JSON object" +
                         (parsed.ok() ? std::string() : " (" + parsed.message() + ")");
    outcome = Fail(std::move(outcome), ZulipErrorKind::kTransient, EndpointName(endpoint),
                   std::move(detail));
    return false;
  }
  return true;
}

}  // namespace

std::string_view ZulipErrorKindName(ZulipErrorKind kind) {
  switch (kind) {
    case ZulipErrorKind::kNone:
      return "none";
    case ZulipErrorKind::kTransient:
      return "transient";
    case ZulipErrorKind::kRateLimited:
      return "rate_limited";
    case ZulipErrorKind::kUnauthenticated:
      return "unauthenticated";
    case ZulipErrorKind::kQueueLost:
      return "queue_lost";
    case ZulipErrorKind::kConfiguration:
      return "configuration";
    case ZulipErrorKind::kBadRequest:
      return "bad_request";
  }
  return "unknown";
}

ZulipOutcome ClassifyZulipResponse(ZulipEndpoint endpoint, const HttpResult& result) {
  ZulipOutcome outcome;
  outcome.http_status = result.head.status;
  outcome.transport_error = result.error;
  outcome.rate_limit = ParseRateLimit(result.head);
  const std::string_view name = EndpointName(endpoint);

  if (result.error != TransportError::kNone) {
    // Nothing complete arrived: whatever the status line said, the answer is unknown.
    return Fail(std::move(outcome), ZulipErrorKind::kTransient, name,
                std::string(TransportErrorName(result.error)) + ": " + result.error_text);
  }

  const int http = result.head.status;
  if (http >= 200 && http < 300) {
    // Zulip answers errors with 4xx/5xx only; a success body (which may be megabytes of
    // messages) is parsed once, by the caller of this function.
    return outcome;
  }
  rapidjson::Document doc;
  bool is_json = false;
  if (!result.body.empty()) {
    is_json = ParseJson(result.body, doc).ok() && doc.IsObject();
    if (is_json) {
      outcome.code = GetString(doc, "code");
      outcome.msg = Bounded(GetString(doc, "msg"));
    }
  }
  const std::string http_text = "HTTP " + std::to_string(http);
  // Built here, not inside the Fail(std::move(outcome), ...) calls below: a call's arguments
  // are evaluated in no fixed order, and clang moves `outcome` first, so reading its msg in
  // another argument lost Zulip's explanation from every error (a clang-tidy find).
  std::string with_msg = http_text;
  if (!outcome.msg.empty()) {
    with_msg.append(": ").append(outcome.msg);
  } else if (!outcome.code.empty()) {
    with_msg.append(": ").append(outcome.code);
  }

  if (http == 401) {
    return Fail(std::move(outcome), ZulipErrorKind::kUnauthenticated, name, std::move(with_msg));
  }
  if (http == 429) {
    outcome.retry_after_seconds = ParseRetryAfterSeconds(result.head.retry_after);
    if (!outcome.retry_after_seconds && is_json) {
      auto it = doc.FindMember("retry-after");
      if (it != doc.MemberEnd() && it->value.IsNumber() && it->value.GetDouble() >= 0) {
        outcome.retry_after_seconds = it->value.GetDouble();
      }
    }
    return Fail(std::move(outcome), ZulipErrorKind::kRateLimited, name, std::move(with_msg));
  }
  if (http >= 500 || http == 408 || http == 0) {
    return Fail(std::move(outcome), ZulipErrorKind::kTransient, name, std::move(with_msg));
  }
  if (!is_json) {
    // A proxy's page (nginx while Zulip restarts), not Zulip's answer: try again later.
    return Fail(std::move(outcome), ZulipErrorKind::kTransient, name,
                http_text + ": body is not Zulip's JSON");
  }
  if ((endpoint == ZulipEndpoint::kGetEvents || endpoint == ZulipEndpoint::kDeleteQueue) &&
      IsQueueLost(outcome.code, outcome.msg)) {
    return Fail(std::move(outcome), ZulipErrorKind::kQueueLost, name, std::move(with_msg));
  }
  if (endpoint == ZulipEndpoint::kRegister && http == 400) {
    return Fail(std::move(outcome), ZulipErrorKind::kConfiguration, name, std::move(with_msg));
  }
  return Fail(std::move(outcome), ZulipErrorKind::kBadRequest, name, std::move(with_msg));
}

ZulipClient::ZulipClient(HttpTransport& transport, ZulipClientOptions options)
    : transport_(transport),
      options_(std::move(options)),
      base_url_(ZulipApiBaseUrl(options_.site)) {}

HttpRequest ZulipClient::NewRequest(HttpMethod method, std::string_view endpoint) const {
  HttpRequest request;
  request.method = method;
  request.url = base_url_ + "v1/" + std::string(endpoint);
  request.basic_auth_user = options_.email;
  request.basic_auth_password = options_.api_key;
  request.idle_timeout = options_.request_timeout;
  request.max_buffered_body = options_.max_response_body;
  request.tls = options_.tls;
  return request;
}

ZulipClient::Handle ZulipClient::ServerSettings(
    std::function<void(ZulipReply<ServerSettingsResult>)> done) {
  HttpCallbacks callbacks;
  callbacks.on_done = [done = std::move(done)](const HttpResult& result) {
    ZulipReply<ServerSettingsResult> reply;
    reply.outcome = ClassifyZulipResponse(ZulipEndpoint::kServerSettings, result);
    rapidjson::Document doc;
    if (reply.outcome.ok() &&
        ParseSuccessBody(ZulipEndpoint::kServerSettings, result.body, doc, reply.outcome)) {
      reply.value.zulip_version = GetString(doc, "zulip_version");
      reply.value.zulip_feature_level = GetInt(doc, "zulip_feature_level").value_or(0);
      reply.value.realm_url = GetString(doc, "realm_url");
      if (reply.value.realm_url.empty()) reply.value.realm_url = GetString(doc, "realm_uri");
    }
    done(std::move(reply));
  };
  return transport_.Start(NewRequest(HttpMethod::kGet, "server_settings"), std::move(callbacks));
}

ZulipClient::Handle ZulipClient::Register(std::vector<std::pair<std::string, std::string>> fields,
                                          std::function<void(ZulipReply<RegisterResult>)> done) {
  HttpRequest request = NewRequest(HttpMethod::kPost, "register");
  request.form = std::move(fields);
  HttpCallbacks callbacks;
  callbacks.on_done = [done = std::move(done)](const HttpResult& result) {
    ZulipReply<RegisterResult> reply;
    reply.outcome = ClassifyZulipResponse(ZulipEndpoint::kRegister, result);
    rapidjson::Document doc;
    if (reply.outcome.ok() &&
        ParseSuccessBody(ZulipEndpoint::kRegister, result.body, doc, reply.outcome)) {
      RegisterResult& r = reply.value;
      r.queue_id = GetString(doc, "queue_id");
      std::optional<int64_t> last_event_id = GetInt(doc, "last_event_id");
      if (r.queue_id.empty() || !last_event_id) {
        // A 200 without a queue is not something to build on; a proxy or a broken server.
        reply.outcome = Fail(std::move(reply.outcome), ZulipErrorKind::kTransient, "POST /register",
                             "HTTP 200 without queue_id or last_event_id");
      } else {
        r.last_event_id = *last_event_id;
        r.zulip_feature_level = GetInt(doc, "zulip_feature_level").value_or(0);
        r.zulip_version = GetString(doc, "zulip_version");
        r.max_message_id = GetInt(doc, "max_message_id");
        r.event_queue_longpoll_timeout_seconds =
            GetInt(doc, "event_queue_longpoll_timeout_seconds");
        auto ignored = doc.FindMember("ignored_parameters_unsupported");
        if (ignored != doc.MemberEnd() && ignored->value.IsArray()) {
          for (const auto& v : ignored->value.GetArray()) {
            if (v.IsString()) r.ignored_parameters_unsupported.emplace_back(v.GetString());
          }
        }
      }
    }
    done(std::move(reply));
  };
  return transport_.Start(std::move(request), std::move(callbacks));
}

ZulipClient::Handle ZulipClient::GetEvents(const GetEventsRequest& get,
                                           std::function<bool(std::string_view)> sink,
                                           std::function<void(ZulipOutcome)> done) {
  HttpRequest request = NewRequest(HttpMethod::kGet, "events");
  request.query = {{"queue_id", get.queue_id},
                   {"last_event_id", std::to_string(get.last_event_id)},
                   {"dont_block", get.dont_block ? "true" : "false"}};
  if (!get.dont_block) {
    request.idle_timeout = std::chrono::seconds(get.longpoll_timeout_seconds.value_or(
                               kDefaultLongpollTimeoutSeconds)) +
                           options_.longpoll_margin;
  }

  // Shared by the callbacks: whether this response streams, and the error body otherwise.
  struct State {
    bool streaming = false;
    std::string error_body;
  };
  auto state = std::make_shared<State>();
  const size_t max_error_body = options_.max_error_body;
  HttpCallbacks callbacks;
  callbacks.on_head = [state](const HttpResponseHead& head) {
    state->streaming = head.status == 200;
  };
  callbacks.on_body_chunk = [state, sink = std::move(sink),
                             max_error_body](std::string_view chunk) {
    if (state->streaming) return sink(chunk);
    // An error body only needs its code and msg: keep a bounded prefix, drop the rest.
    size_t room = max_error_body - std::min(max_error_body, state->error_body.size());
    state->error_body.append(chunk.substr(0, room));
    return true;
  };
  callbacks.on_done = [state, done = std::move(done)](HttpResult result) {
    if (!state->streaming) result.body = std::move(state->error_body);
    done(ClassifyZulipResponse(ZulipEndpoint::kGetEvents, result));
  };
  return transport_.Start(std::move(request), std::move(callbacks));
}

ZulipClient::Handle ZulipClient::DeleteQueue(std::string queue_id,
                                             std::function<void(ZulipOutcome)> done) {
  HttpRequest request = NewRequest(HttpMethod::kDelete, "events");
  request.form = {{"queue_id", std::move(queue_id)}};
  request.max_buffered_body = options_.max_error_body;
  HttpCallbacks callbacks;
  callbacks.on_done = [done = std::move(done)](const HttpResult& result) {
    done(ClassifyZulipResponse(ZulipEndpoint::kDeleteQueue, result));
  };
  return transport_.Start(std::move(request), std::move(callbacks));
}

ZulipClient::Handle ZulipClient::GetMessages(
    const GetMessagesRequest& get, std::function<void(ZulipReply<rapidjson::Document>)> done) {
  HttpRequest request = NewRequest(HttpMethod::kGet, "messages");
  auto json_bool = [](bool b) { return std::string(b ? "true" : "false"); };
  request.query = {{"anchor", get.anchor},
                   {"include_anchor", json_bool(get.include_anchor)},
                   {"num_before", std::to_string(get.num_before)},
                   {"num_after", std::to_string(get.num_after)},
                   {"narrow", get.narrow_json},
                   {"apply_markdown", json_bool(get.apply_markdown)},
                   {"client_gravatar", json_bool(get.client_gravatar)}};
  HttpCallbacks callbacks;
  callbacks.on_done = [done = std::move(done)](const HttpResult& result) {
    ZulipReply<rapidjson::Document> reply;
    reply.outcome = ClassifyZulipResponse(ZulipEndpoint::kGetMessages, result);
    if (reply.outcome.ok() &&
        !ParseSuccessBody(ZulipEndpoint::kGetMessages, result.body, reply.value, reply.outcome)) {
      reply.value.SetNull();
    }
    done(std::move(reply));
  };
  return transport_.Start(std::move(request), std::move(callbacks));
}

}  // namespace zb
