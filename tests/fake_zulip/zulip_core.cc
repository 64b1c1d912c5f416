#include "tests/fake_zulip/zulip_core.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace zb::fake_zulip {

struct ZulipCore::Client {
  std::string queue_id;
  int64_t user_id = 0;
  std::string email;
  std::optional<std::set<std::string>> event_types;
  std::vector<std::pair<std::string, std::string>> narrow;
  std::string narrow_json = "[]";
  bool all_public_streams = false;
  bool apply_markdown = false;
  bool client_gravatar = true;
  double lifespan = kDefaultQueueTimeoutSecs;
  double created = 0;
  double last_connection_time = 0;
  EventQueue queue;
  uint64_t handler = 0;  // 0: no GET parked
  Headers handler_headers;
  std::optional<TimerMap::iterator> heartbeat;
};

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string JsonQuote(std::string_view s) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Python's repr() of a float as Django would print it: shortest round-trip digits.
std::string FloatText(double value) {
  char buffer[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  std::string text = buffer;
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

// Zulip's json_response_from_error(): result, msg, code, then the error's extra fields.
HttpResponse JsonError(int status, std::string_view msg, std::string_view code,
                       std::string_view extra = "") {
  std::string body =
      R"({"result":"error","msg":)" + JsonQuote(msg) + R"(,"code":)" + JsonQuote(code);
  if (!extra.empty()) body += "," + std::string(extra);
  body += "}";
  return JsonResponse(status, std::move(body));
}

HttpResponse BadRequest(std::string_view msg) { return JsonError(400, msg, "BAD_REQUEST"); }

HttpResponse Unauthorized(std::string_view msg) {
  HttpResponse response = JsonError(401, msg, "UNAUTHORIZED");
  response.headers.emplace_back("WWW-Authenticate", R"(Basic realm="zulip")");
  return response;
}

HttpResponse BadEventQueueId(std::string_view queue_id) {
  return JsonError(400, "Bad event queue ID: " + std::string(queue_id), "BAD_EVENT_QUEUE_ID",
                   R"("queue_id":)" + JsonQuote(queue_id));
}

std::optional<std::string> DecodeBase64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      char c = in[i + j];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        v[j] = 0;
        ++pad;
      } else if (pad > 0 || (v[j] = value(c)) < 0) {
        return std::nullopt;
      }
    }
    uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

std::string_view Strip(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Typed request parameters, as Zulip's typed_endpoint reads them: values are JSON text.
class Params {
 public:
  explicit Params(const std::map<std::string, std::string>& params) : params_(params) {}

  const std::string* Raw(const std::string& name) const {
    used_.insert(name);
    auto it = params_.find(name);
    return it == params_.end() ? nullptr : &it->second;
  }

  // Json[bool]; nullopt when absent. On a bad value sets *error.
  std::optional<bool> Bool(const std::string& name, std::optional<HttpResponse>* error) const {
    const std::string* raw = Raw(name);
    if (!raw) return std::nullopt;
    rapidjson::Document doc;
    if (!Parse(name, *raw, &doc, error)) return std::nullopt;
    if (!doc.IsBool()) {
      *error = BadRequest(name + " is not a boolean");
      return std::nullopt;
    }
    return doc.GetBool();
  }

  std::optional<int64_t> Int(const std::string& name, std::optional<HttpResponse>* error) const {
    const std::string* raw = Raw(name);
    if (!raw) return std::nullopt;
    rapidjson::Document doc;
    if (!Parse(name, *raw, &doc, error)) return std::nullopt;
    if (!doc.IsInt64()) {
      *error = BadRequest(name + " is not an integer");
      return std::nullopt;
    }
    return doc.GetInt64();
  }

  // Json[list[str]] | None; nullopt when absent or null.
  std::optional<std::vector<std::string>> StringList(const std::string& name,
                                                     std::optional<HttpResponse>* error) const {
    const std::string* raw = Raw(name);
    if (!raw) return std::nullopt;
    rapidjson::Document doc;
    if (!Parse(name, *raw, &doc, error)) return std::nullopt;
    if (doc.IsNull()) return std::nullopt;
    if (!doc.IsArray()) {
      *error = BadRequest(name + " is not a list");
      return std::nullopt;
    }
    std::vector<std::string> out;
    for (const auto& v : doc.GetArray()) {
      if (!v.IsString()) {
        *error = BadRequest(name + "[" + std::to_string(out.size()) + "] is not a string");
        return std::nullopt;
      }
      out.emplace_back(v.GetString(), v.GetStringLength());
    }
    return out;
  }

  // Any JSON value, validated and re-serialised.
  bool Json(const std::string& name, rapidjson::Document* doc,
            std::optional<HttpResponse>* error) const {
    const std::string* raw = Raw(name);
    if (!raw) return false;
    return Parse(name, *raw, doc, error);
  }

  std::vector<std::string> Unused(const std::set<std::string>& also_ignore) const {
    std::vector<std::string> out;
    for (const auto& [name, value] : params_) {
      if (!used_.count(name) || also_ignore.count(name)) out.push_back(name);
    }
    return out;
  }

 private:
  static bool Parse(const std::string& name, const std::string& raw, rapidjson::Document* doc,
                    std::optional<HttpResponse>* error) {
    doc->Parse(raw.data(), raw.size());
    if (doc->HasParseError()) {
      *error = BadRequest(name + " is not valid JSON");
      return false;
    }
    return true;
  }

  const std::map<std::string, std::string>& params_;
  mutable std::set<std::string> used_;
};

// The queue settings /register (and GET /events without a queue id) take.
struct QueueParams {
  std::optional<std::vector<std::string>> event_types;
  std::optional<std::vector<std::string>> fetch_event_types;
  std::vector<std::pair<std::string, std::string>> narrow;
  std::string narrow_json = "[]";
  bool all_public_streams = false;
  bool apply_markdown = false;
  bool client_gravatar = true;
  int64_t lifespan_secs = 0;
};

std::optional<HttpResponse> ReadQueueParams(const Params& params, const FakeUser& user,
                                            const std::set<std::string>& unsupported,
                                            QueueParams* out) {
  std::optional<HttpResponse> error;
  out->apply_markdown = params.Bool("apply_markdown", &error).value_or(false);
  if (error) return error;
  out->client_gravatar = params.Bool("client_gravatar", &error).value_or(true);
  if (error) return error;
  std::optional<bool> all_public = params.Bool("all_public_streams", &error);
  if (error) return error;
  out->event_types = params.StringList("event_types", &error);
  if (error) return error;
  out->fetch_event_types = params.StringList("fetch_event_types", &error);
  if (error) return error;
  // Accepted and validated, but they only shape initial state, which the fake does not model.
  params.Bool("slim_presence", &error);
  if (error) return error;
  params.Bool("include_subscribers", &error);
  if (error) return error;
  params.Int("presence_history_limit_days", &error);
  if (error) return error;
  rapidjson::Document capabilities;
  if (params.Json("client_capabilities", &capabilities, &error) && !capabilities.IsObject()) {
    return BadRequest("client_capabilities is not a dict");
  }
  if (error) return error;
  if (!unsupported.count("queue_lifespan_secs")) {
    out->lifespan_secs = params.Int("queue_lifespan_secs", &error).value_or(0);
    if (error) return error;
  }

  rapidjson::Document narrow;
  if (params.Json("narrow", &narrow, &error)) {
    if (!narrow.IsArray()) return BadRequest("narrow is not a list");
    for (const auto& element : narrow.GetArray()) {
      if (!element.IsArray() || element.Size() != 2 || !element[0].IsString() ||
          !(element[1].IsString() || element[1].IsInt64())) {
        return BadRequest("narrow[" + std::to_string(out->narrow.size()) + "] is not valid");
      }
      std::string operand =
          element[1].IsString() ? element[1].GetString() : std::to_string(element[1].GetInt64());
      out->narrow.emplace_back(element[0].GetString(), operand);
    }
  }
  if (error) return error;
  // events_register.py: an empty narrow falls back on the bot's default stream.
  if (out->narrow.empty() && !user.default_events_register_stream.empty()) {
    out->narrow.emplace_back("stream", user.default_events_register_stream);
  }
  // check_supported_events_narrow_filter() and the "is" operands narrow_predicate knows.
  static const std::set<std::string> kOperators = {"channel", "stream", "topic", "sender", "is"};
  static const std::set<std::string> kIsOperands = {"dm",        "private", "starred", "unread",
                                                    "mentioned", "alerted", "resolved"};
  std::string narrow_json = "[";
  for (const auto& [op, operand] : out->narrow) {
    if (!kOperators.count(op)) return BadRequest("Operator " + op + " not supported.");
    if (op == "is" && !kIsOperands.count(operand)) {
      return BadRequest("Operator is:" + operand + " not supported.");
    }
    if (narrow_json.size() > 1) narrow_json += ",";
    narrow_json += "[" + JsonQuote(op) + "," + JsonQuote(operand) + "]";
  }
  out->narrow_json = narrow_json + "]";

  out->all_public_streams = all_public.value_or(user.default_all_public_streams);
  if (out->all_public_streams && user.is_guest) {
    return BadRequest("User not authorized for this query");
  }
  return std::nullopt;
}

void AddRateHeaders(const RateLimitResult& r, Headers* headers) {
  headers->emplace_back("X-RateLimit-Limit", std::to_string(r.limit));
  headers->emplace_back("X-RateLimit-Remaining", std::to_string(r.remaining));
  headers->emplace_back("X-RateLimit-Reset", std::to_string(r.reset));
}

bool HasApiKeyFormat(std::string_view key) {
  if (key.size() != 32) return false;
  return std::all_of(key.begin(), key.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
}

}  // namespace

ZulipCore::ZulipCore(FakeClock& clock, uint64_t seed, FinishFn finish)
    : clock_(clock),
      rng_(seed),
      finish_(std::move(finish)),
      next_gc_(clock.Now() + kGcIntervalSecs),
      server_generation_(static_cast<int64_t>(clock.Now())) {
  factory_ = EventFactory(seed);
  // A few humans, as in Zulip's development realm, so that messages have senders and direct
  // messages have someone to go to. Iago is the EventFactory's default sender (id 11).
  static constexpr struct {
    int64_t id;
    const char* email;
    const char* key;
    const char* name;
  } kHumans[] = {
      {11, "iago@zulip.com", "iago0000iago0000iago0000iago0000", "Iago"},
      {12, "hamlet@zulip.com", "hamlet00hamlet00hamlet00hamlet00", "King Hamlet"},
      {13, "cordelia@zulip.com", "cordeliacordeliacordeliacordelia", "Cordelia, Lear's daughter"},
      {14, "othello@zulip.com", "othello0othello0othello0othello0", "Othello, the Moor of Venice"},
  };
  for (const auto& human : kHumans) {
    (void)AddUser({.id = human.id,
                   .email = human.email,
                   .api_key = human.key,
                   .full_name = human.name,
                   .is_bot = false});
  }
}

ZulipCore::~ZulipCore() = default;

StatusOr<int64_t> ZulipCore::AddUser(FakeUser user) {
  if (user.email.empty() || user.api_key.empty()) {
    return Status::InvalidArgument("a user needs an email and an API key");
  }
  if (user_by_email_.count(Lower(user.email))) {
    return Status::InvalidArgument("user " + user.email + " exists already");
  }
  if (user_by_key_.count(user.api_key)) {
    return Status::InvalidArgument("user " + user.email + " reuses another user's API key");
  }
  auto taken = [&](int64_t id) {
    return std::any_of(users_.begin(), users_.end(), [&](const FakeUser& u) { return u.id == id; });
  };
  if (user.id == 0) {
    user.id = 8;  // ids of a fresh realm's system bots come first
    while (taken(user.id)) ++user.id;
  }
  if (taken(user.id)) return Status::InvalidArgument("user id taken");
  if (user.full_name.empty()) user.full_name = user.email.substr(0, user.email.find('@'));
  user_by_email_[Lower(user.email)] = users_.size();
  user_by_key_[user.api_key] = users_.size();
  users_.push_back(std::move(user));
  const FakeUser& added = users_.back();
  org_.AddMember({added.id, added.email, added.full_name, added.is_bot});
  return added.id;
}

const FakeUser* ZulipCore::FindUser(std::string_view email) const {
  auto it = user_by_email_.find(Lower(email));
  return it == user_by_email_.end() ? nullptr : &users_[it->second];
}

Status ZulipCore::SetUserActive(std::string_view email, bool active) {
  auto it = user_by_email_.find(Lower(email));
  if (it == user_by_email_.end()) return Status::NotFound("no user " + std::string(email));
  users_[it->second].active = active;
  return Status::Ok();
}

Status ZulipCore::SetRateLimit(std::string_view email, std::vector<RateRule> rules) {
  const FakeUser* user = FindUser(email);
  if (!user) return Status::NotFound("no user " + std::string(email));
  rate_limiter_.SetRules(user->id, std::move(rules));
  return Status::Ok();
}

void ZulipCore::SetDefaultRateLimit(std::vector<RateRule> rules) {
  rate_limiter_.SetDefaultRules(std::move(rules));
}

Status ZulipCore::SetMaxMessageId(std::string_view email, int64_t max_message_id) {
  const FakeUser* user = FindUser(email);
  if (!user) return Status::NotFound("no user " + std::string(email));
  max_message_id_[user->id] = max_message_id;
  return Status::Ok();
}

HttpResponse ZulipCore::Authenticate(const ApiRequest& request, const FakeUser** user) const {
  *user = nullptr;
  // authenticated_rest_api_view() in zerver/decorator.py, in its order.
  if (!request.authorization) return Unauthorized("Missing authorization header for basic auth");
  std::string_view header = Strip(*request.authorization);
  size_t space = header.find_first_of(" \t");
  if (space == std::string_view::npos) {
    return Unauthorized("Invalid authorization header for basic auth");
  }
  std::string_view auth_type = header.substr(0, space);
  std::string_view credentials = Strip(header.substr(space));
  if (credentials.find_first_of(" \t") != std::string_view::npos) {
    return Unauthorized("Invalid authorization header for basic auth");
  }
  if (Lower(auth_type) != "basic") {
    return BadRequest("This endpoint requires HTTP basic authentication.");
  }
  std::optional<std::string> decoded = DecodeBase64(credentials);
  if (!decoded || std::count(decoded->begin(), decoded->end(), ':') != 1) {
    return Unauthorized("Invalid authorization header for basic auth");
  }
  size_t colon = decoded->find(':');
  std::string email(Strip(std::string_view(*decoded).substr(0, colon)));
  std::string key(Strip(std::string_view(*decoded).substr(colon + 1)));
  // Every JsonableError of validate_api_key() comes back as 401 UNAUTHORIZED (FACTS §4).
  if (!HasApiKeyFormat(key)) return Unauthorized("Malformed API key");
  auto it = user_by_key_.find(key);
  if (it == user_by_key_.end()) return Unauthorized("Invalid API key");
  const FakeUser& found = users_[it->second];
  if (Lower(email) != Lower(found.email)) return Unauthorized("Invalid API key");
  if (!realm_active_) return Unauthorized("This organization has been deactivated");
  if (!found.active) return Unauthorized("Account is deactivated");
  *user = &found;
  return {};
}

ApiOutcome ZulipCore::Handle(const ApiRequest& request, uint64_t handler_id) {
  ApiOutcome outcome;
  if (request.path == "/api/v1/server_settings") {
    if (request.method != "GET" && request.method != "POST") {
      outcome.response = JsonError(405, "Method Not Allowed", "BAD_REQUEST");
      return outcome;
    }
    // Unauthenticated, not rate limited per user.
    outcome.response = JsonResponse(
        200, R"({"result":"success","msg":"","authentication_methods":{"password":true,)"
             R"("dev":false,"email":true,"ldap":false,"remoteuser":false,"github":false,)"
             R"("azuread":false,"gitlab":false,"apple":false,"google":false,"saml":false,)"
             R"("openid connect":false},"external_authentication_methods":[],)"
             R"("zulip_feature_level":)" +
                 std::to_string(identity_.zulip_feature_level) + R"(,"zulip_version":)" +
                 JsonQuote(identity_.zulip_version) + R"(,"zulip_merge_base":)" +
                 JsonQuote(identity_.zulip_merge_base) +
                 R"(,"push_notifications_enabled":false,"is_incompatible":false,)"
                 R"("email_auth_enabled":true,"require_email_format_usernames":true,)"
                 R"("realm_uri":)" +
                 JsonQuote(identity_.realm_url) + R"(,"realm_url":)" +
                 JsonQuote(identity_.realm_url) + R"(,"realm_name":)" +
                 JsonQuote(identity_.realm_name) +
                 R"(,"realm_icon":"/static/images/logo/zulip-icon-128x128.png",)"
                 R"("realm_description":"","realm_web_public_access_enabled":false})");
    return outcome;
  }

  bool is_events = request.path == "/api/v1/events";
  bool is_register = request.path == "/api/v1/register";
  bool is_messages = request.path == "/api/v1/messages";
  if (!is_events && !is_register && !is_messages) {
    outcome.response = JsonError(404, "Endpoint not found", "BAD_REQUEST");
    return outcome;
  }

  const FakeUser* user = nullptr;
  HttpResponse auth_error = Authenticate(request, &user);
  if (!user) {
    outcome.response = std::move(auth_error);
    return outcome;
  }

  // /events is served by Tornado, with its in-memory bucket; the rest by Django and Redis.
  RateLimitResult rate = rate_limiter_.Check(
      is_events ? RateLimiter::Backend::kDebt : RateLimiter::Backend::kSlidingWindow, user->id,
      clock_.Now());
  Headers rate_headers;
  AddRateHeaders(rate, &rate_headers);
  if (rate.limited) {
    std::string secs = FloatText(rate.secs_to_freedom);
    outcome.response = JsonError(429, "API usage exceeded rate limit", "RATE_LIMIT_HIT",
                                 R"("retry-after":)" + secs);
    outcome.response.headers = rate_headers;
    outcome.response.headers.emplace_back("Retry-After", secs);
    return outcome;
  }

  if (is_register && request.method == "POST") {
    outcome = Register(*user, request);
  } else if (is_events && request.method == "GET") {
    outcome = GetEvents(*user, request, handler_id, rate_headers);
  } else if (is_events && request.method == "DELETE") {
    outcome = DeleteEvents(*user, request);
  } else if (is_messages && request.method == "GET") {
    outcome = GetMessages(*user, request);
  } else {
    outcome.response = JsonError(405, "Method Not Allowed", "BAD_REQUEST");
  }
  if (!outcome.parked) {
    outcome.response.headers.insert(outcome.response.headers.end(), rate_headers.begin(),
                                    rate_headers.end());
  }
  return outcome;
}

std::string ZulipCore::NewQueueId() {
  // uuid4, as zerver/tornado/event_queue.py names queues since 2023.
  uint64_t a = rng_();
  uint64_t b = rng_();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char text[37];
  std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return text;
}

ZulipCore::Client& ZulipCore::NewClient(const FakeUser& user) {
  auto client = std::make_unique<Client>();
  client->queue_id = NewQueueId();
  client->user_id = user.id;
  client->email = user.email;
  client->created = client->last_connection_time = clock_.Now();
  Client& ref = *client;
  clients_by_user_[user.id].insert(client->queue_id);
  clients_.emplace(client->queue_id, std::move(client));
  return ref;
}

namespace {
void ApplyQueueParams(const QueueParams& params, double default_lifespan, double max_lifespan,
                      bool* all_public, bool* markdown, bool* gravatar, double* lifespan) {
  *all_public = params.all_public_streams;
  *markdown = params.apply_markdown;
  *gravatar = params.client_gravatar;
  // ClientDescriptor.__init__: 0 means the default; anything is capped at 7 days.
  double secs =
      params.lifespan_secs == 0 ? default_lifespan : static_cast<double>(params.lifespan_secs);
  *lifespan = std::min(secs, max_lifespan);
}
}  // namespace

ApiOutcome ZulipCore::Register(const FakeUser& user, const ApiRequest& request) {
  ApiOutcome outcome;
  Params params(request.params);
  QueueParams qp;
  if (auto error = ReadQueueParams(params, user, unsupported_register_params_, &qp)) {
    outcome.response = std::move(*error);
    return outcome;
  }
  std::vector<std::string> ignored = params.Unused(unsupported_register_params_);

  Client& client = NewClient(user);
  if (qp.event_types) {
    client.event_types.emplace(qp.event_types->begin(), qp.event_types->end());
  }
  client.narrow = qp.narrow;
  client.narrow_json = qp.narrow_json;
  ApplyQueueParams(qp, kDefaultQueueTimeoutSecs, kMaxQueueTimeoutSecs, &client.all_public_streams,
                   &client.apply_markdown, &client.client_gravatar, &client.lifespan);
  ++register_count_[user.id];

  // Events that arrive between allocating the queue and reading the initial state are folded
  // into the state; last_event_id skips them (do_events_register()).
  auto window = register_window_.find(user.id);
  if (window != register_window_.end()) {
    for (const auto& event : window->second) {
      if (Accepts(client, event)) client.queue.Push(event);
    }
    register_window_.erase(window);
  }
  client.queue.Prune(-1);
  client.queue.Contents();
  int64_t last_event_id = client.queue.last_queued_id();

  const std::optional<std::vector<std::string>>& fetch =
      qp.fetch_event_types ? qp.fetch_event_types : qp.event_types;
  auto want = [&](const std::string& type) {
    return !fetch || std::find(fetch->begin(), fetch->end(), type) != fetch->end();
  };

  std::string body = R"({"result":"success","msg":"","queue_id":)" + JsonQuote(client.queue_id) +
                     R"(,"zulip_version":)" + JsonQuote(identity_.zulip_version) +
                     R"(,"zulip_feature_level":)" + std::to_string(identity_.zulip_feature_level) +
                     R"(,"zulip_merge_base":)" + JsonQuote(identity_.zulip_merge_base);
  if (want("message")) {
    auto it = max_message_id_.find(user.id);
    body += R"(,"max_message_id":)" +
            std::to_string(it == max_message_id_.end() ? MaxMessageId(user.id) : it->second);
  }
  if (want("realm")) {
    body += R"(,"event_queue_longpoll_timeout_seconds":)" + std::to_string(kLongpollTimeoutSecs);
    body += R"(,"server_generation":)" + std::to_string(server_generation_);
  }
  body += R"(,"last_event_id":)" + std::to_string(last_event_id);
  if (!ignored.empty()) {
    body += R"(,"ignored_parameters_unsupported":[)";
    for (size_t i = 0; i < ignored.size(); ++i) body += (i ? "," : "") + JsonQuote(ignored[i]);
    body += "]";
  }
  body += "}";
  outcome.response = JsonResponse(200, std::move(body));
  return outcome;
}

ApiOutcome ZulipCore::GetEvents(const FakeUser& user, const ApiRequest& request,
                                uint64_t handler_id, Headers rate_headers) {
  ApiOutcome outcome;
  Params params(request.params);
  std::optional<HttpResponse> error;
  const std::string* queue_id = params.Raw("queue_id");
  std::optional<int64_t> last_event_id = params.Int("last_event_id", &error);
  bool dont_block = false;
  if (!error) dont_block = params.Bool("dont_block", &error).value_or(false);
  if (error) {
    outcome.response = std::move(*error);
    return outcome;
  }

  // fetch_events() in zerver/tornado/event_queue.py, step by step.
  Client* client = nullptr;
  bool implicit = false;
  bool was_connected = false;
  if (!queue_id) {
    if (!dont_block) {
      outcome.response = BadRequest("Missing 'queue_id' argument");
      return outcome;
    }
    QueueParams qp;
    if (auto bad = ReadQueueParams(params, user, {}, &qp)) {
      outcome.response = std::move(*bad);
      return outcome;
    }
    client = &NewClient(user);
    if (qp.event_types) client->event_types.emplace(qp.event_types->begin(), qp.event_types->end());
    client->narrow = qp.narrow;
    client->narrow_json = qp.narrow_json;
    ApplyQueueParams(qp, kDefaultQueueTimeoutSecs, kMaxQueueTimeoutSecs,
                     &client->all_public_streams, &client->apply_markdown, &client->client_gravatar,
                     &client->lifespan);
    implicit = true;
  } else {
    if (!last_event_id) {
      outcome.response = BadRequest("Missing 'last_event_id' argument");
      return outcome;
    }
    auto it = clients_.find(*queue_id);
    if (it == clients_.end() || it->second->user_id != user.id) {
      outcome.response = BadEventQueueId(*queue_id);
      return outcome;
    }
    client = it->second.get();
    EventQueue& queue = client->queue;
    if (*last_event_id < queue.newest_pruned_id()) {
      outcome.response = BadRequest("An event newer than " + std::to_string(*last_event_id) +
                                    " has already been pruned!");
      return outcome;
    }
    // The prune happens before the check below, so a bad id costs the events before it.
    queue.Prune(*last_event_id);
    if (*last_event_id != queue.newest_pruned_id()) {
      outcome.response =
          BadRequest("Event " + std::to_string(*last_event_id) + " was not in this queue");
      return outcome;
    }
    was_connected = FinishCurrentHandler(*client);
  }
  (void)was_connected;

  if (!client->queue.Empty() || dont_block) {
    std::string body = R"({"result":"success","msg":"","events":)" + client->queue.Contents();
    if (implicit) body += R"(,"queue_id":)" + JsonQuote(client->queue_id);
    body += "}";
    outcome.response = JsonResponse(200, std::move(body));
    return outcome;
  }
  ConnectHandler(*client, handler_id, std::move(rate_headers));
  outcome.parked = true;
  return outcome;
}

ApiOutcome ZulipCore::DeleteEvents(const FakeUser& user, const ApiRequest& request) {
  ApiOutcome outcome;
  Params params(request.params);
  const std::string* queue_id = params.Raw("queue_id");
  if (!queue_id) {
    outcome.response = JsonError(400, "Missing 'queue_id' argument", "REQUEST_VARIABLE_MISSING",
                                 R"("var_name":"queue_id")");
    return outcome;
  }
  auto it = clients_.find(*queue_id);
  if (it == clients_.end() || it->second->user_id != user.id) {
    outcome.response = BadEventQueueId(*queue_id);
    return outcome;
  }
  FinishCurrentHandler(*it->second);
  RemoveClient(*queue_id);
  outcome.response = JsonResponse(200, R"({"result":"success","msg":""})");
  return outcome;
}

void ZulipCore::ConnectHandler(Client& client, uint64_t handler_id, Headers rate_headers) {
  client.handler = handler_id;
  client.handler_headers = std::move(rate_headers);
  handlers_[handler_id] = client.queue_id;
  // Only a poll that blocks refreshes the idle clock (FACTS §3).
  client.last_connection_time = clock_.Now();
  std::uniform_int_distribution<int> jitter(0, 10);
  double deadline = client.last_connection_time + kHeartbeatMinSecs + jitter(rng_);
  client.heartbeat = heartbeats_.emplace(deadline, client.queue_id);
}

void ZulipCore::DisconnectHandler(Client& client) {
  if (client.handler != 0) handlers_.erase(client.handler);
  client.handler = 0;
  client.handler_headers.clear();
  if (client.heartbeat) {
    heartbeats_.erase(*client.heartbeat);
    client.heartbeat.reset();
  }
}

bool ZulipCore::FinishCurrentHandler(Client& client) {
  if (client.handler == 0) return false;
  HttpResponse response;
  response.body = R"({"result":"success","msg":"","events":)" + client.queue.Contents() +
                  R"(,"queue_id":)" + JsonQuote(client.queue_id) + "}";
  response.headers = client.handler_headers;
  uint64_t handler = client.handler;
  DisconnectHandler(client);
  finish_(handler, std::move(response));
  return true;
}

void ZulipCore::HandlerClosed(uint64_t handler_id) {
  auto it = handlers_.find(handler_id);
  if (it == handlers_.end()) return;
  auto client = clients_.find(it->second);
  if (client == clients_.end()) {
    handlers_.erase(it);
    return;
  }
  DisconnectHandler(*client->second);
}

bool ZulipCore::Accepts(const Client& client, const EventInput& event) const {
  // ClientDescriptor.accepts_event().
  if (client.event_types) {
    if (!client.event_types->count(event.type)) return false;
    if (event.type == "muted_topics" && client.event_types->count("user_topic")) return false;
  }
  if (event.type == "message") {
    for (const auto& [op, operand] : client.narrow) {
      std::string want = Lower(operand);
      bool flag_set = false;
      if (op == "stream" || op == "channel") {
        if (event.message_type != "stream" || Lower(event.stream_name) != want) return false;
      } else if (op == "topic") {
        if (event.message_type != "stream" || Lower(event.topic) != want) return false;
      } else if (op == "sender") {
        if (Lower(event.sender_email) != want) return false;
      } else if (op == "is") {
        auto has = [&](const char* f) {
          return std::find(event.flags.begin(), event.flags.end(), f) != event.flags.end();
        };
        if (operand == "dm" || operand == "private") {
          flag_set = event.message_type == "private";
        } else if (operand == "starred") {
          flag_set = has("starred");
        } else if (operand == "unread") {
          flag_set = !has("read");
        } else if (operand == "mentioned" || operand == "alerted") {
          flag_set = has("mentioned") || has("stream_wildcard_mentioned") ||
                     has("topic_wildcard_mentioned") || has("has_alert_word");
        } else if (operand == "resolved") {
          flag_set = event.topic.starts_with("\xE2\x9C\x94 ");
        }
        if (!flag_set) return false;
      }
    }
  }
  // Only the web app gets these; every queue of this fake belongs to an API client.
  if (event.type == "web_reload_client") return false;
  return true;
}

int64_t ZulipCore::AddEvent(Client& client, const EventInput& event) {
  int64_t id = client.queue.Push(event);
  FinishCurrentHandler(client);
  return id;
}

int64_t ZulipCore::PushParsed(int64_t user_id, const EventInput& event,
                              std::vector<std::pair<std::string, int64_t>>* out) {
  auto ids = clients_by_user_.find(user_id);
  if (ids == clients_by_user_.end()) return 0;
  int64_t pushed = 0;
  for (const std::string& queue_id : ids->second) {
    Client& client = *clients_.at(queue_id);
    if (!Accepts(client, event)) continue;
    int64_t id = AddEvent(client, event);
    if (out) out->emplace_back(queue_id, id);
    ++pushed;
  }
  return pushed;
}

StatusOr<std::vector<std::pair<std::string, int64_t>>> ZulipCore::PushEvent(std::string_view email,
                                                                            std::string_view json) {
  const FakeUser* user = FindUser(email);
  if (!user) return Status::NotFound("no user " + std::string(email));
  StatusOr<EventInput> event = ParseEvent(json);
  if (!event.ok()) return event.status();
  std::vector<std::pair<std::string, int64_t>> out;
  PushParsed(user->id, *event, &out);
  return out;
}

StatusOr<EmitResult> ZulipCore::Emit(const EmitRequest& request) {
  static constexpr int64_t kMaxCount = 10'000'000;
  if (request.count < 0 || request.count > kMaxCount) {
    return Status::InvalidArgument("count must be 0 to 10000000");
  }
  if (request.event_json.empty() == request.type.empty()) {
    return Status::InvalidArgument("give either an event or a type");
  }
  if (!request.type.empty() && request.type != "lively" &&
      std::find(EventFactory::Types().begin(), EventFactory::Types().end(), request.type) ==
          EventFactory::Types().end()) {
    return Status::InvalidArgument("cannot make events of type \"" + request.type + "\"");
  }
  Client* queue = nullptr;
  int64_t user_id = 0;
  if (!request.queue_id.empty()) {
    auto it = clients_.find(request.queue_id);
    if (it == clients_.end()) return Status::NotFound("no queue " + request.queue_id);
    queue = it->second.get();
  } else {
    const FakeUser* user = FindUser(request.email);
    if (!user) return Status::NotFound("no user " + request.email);
    user_id = user->id;
  }
  // A fixed event is parsed once: bulk emission is for benchmarks, so the loop stays cheap.
  std::optional<EventInput> fixed;
  if (!request.event_json.empty()) {
    StatusOr<EventInput> parsed = ParseEvent(request.event_json);
    if (!parsed.ok()) return parsed.status();
    fixed = std::move(*parsed);
  }
  // Made messages are sent through the organisation, so they have a member as sender, a
  // channel, and a place in the history that GET /messages reads.
  EventFactoryOptions options = request.options;
  const Member* sender = nullptr;
  const Channel* channel = nullptr;
  if (!fixed && (request.type == "message" || request.type == "lively")) {
    sender = org_.FindMemberByEmail(options.sender_email);
    if (!sender) return Status::InvalidArgument("no user " + options.sender_email);
    channel = org_.FindChannel(options.stream);
    if (!channel) return Status::InvalidArgument("no channel \"" + options.stream + "\"");
    options.sender_id = sender->id;
    options.stream_id = channel->id;
  }
  std::vector<Client*> targets;
  if (queue) targets.push_back(queue);
  if (auto ids = clients_by_user_.find(user_id); !queue && ids != clients_by_user_.end()) {
    for (const std::string& id : ids->second) targets.push_back(clients_.at(id).get());
  }
  factory_.set_now(clock_.Now());
  EmitResult result;
  std::vector<std::pair<int, EventInput>> variants;
  for (int64_t i = 0; i < request.count; ++i) {
    std::optional<EventInput> made;
    const char* type = request.type.c_str();
    if (!fixed && request.type == "lively") type = factory_.PickLivelyType();
    if (!fixed && std::string_view(type) == "message") {
      // The emit's target alone gets it (a benchmark decides its own fan-out); the history has
      // it as a message to the channel's subscribers.
      org_.ReserveMessageIds(factory_.next_message_id());
      const Message& message = org_.SendToChannel(
          sender->id, *channel, "topic " + std::to_string(org_.next_message_id() % 7),
          factory_.Content(options), static_cast<int64_t>(clock_.Now()));
      factory_.set_next_message_id(org_.next_message_id());
      variants.clear();
      ++result.events;
      for (Client* client : targets) {
        const EventInput& event = MessageEvent(message, *client, &variants);
        if (!queue && !Accepts(*client, event)) continue;
        AddEvent(*client, event);
        ++result.deliveries;
      }
      continue;
    }
    if (!fixed) {
      StatusOr<EventInput> parsed = ParseEvent(*factory_.Make(type, options));
      if (!parsed.ok()) return parsed.status();
      made = std::move(*parsed);
    }
    const EventInput& event = fixed ? *fixed : *made;
    ++result.events;
    if (queue) {
      AddEvent(*queue, event);
      ++result.deliveries;
    } else {
      result.deliveries += PushParsed(user_id, event, nullptr);
    }
  }
  return result;
}

std::vector<uint64_t> ZulipCore::Restart(bool keep_queues) {
  std::vector<uint64_t> broken;
  for (auto& [id, client] : clients_) {
    if (client->handler == 0) continue;
    broken.push_back(client->handler);
    DisconnectHandler(*client);
  }
  server_generation_ = static_cast<int64_t>(clock_.Now());
  if (!keep_queues) {
    std::vector<std::string> ids;
    for (const auto& [id, client] : clients_) ids.push_back(id);
    for (const auto& id : ids) RemoveClient(id);
    return broken;
  }
  std::string json = R"({"type":"restart","zulip_version":)" + JsonQuote(identity_.zulip_version) +
                     R"(,"zulip_merge_base":)" + JsonQuote(identity_.zulip_merge_base) +
                     R"(,"zulip_feature_level":)" + std::to_string(identity_.zulip_feature_level) +
                     R"(,"server_generation":)" + std::to_string(server_generation_) + "}";
  StatusOr<EventInput> event = ParseEvent(json);
  for (auto& [id, client] : clients_) {
    if (Accepts(*client, *event)) AddEvent(*client, *event);
  }
  return broken;
}

StatusOr<int64_t> ZulipCore::PushEventToQueue(std::string_view queue_id, std::string_view json) {
  auto it = clients_.find(std::string(queue_id));
  if (it == clients_.end()) return Status::NotFound("no queue " + std::string(queue_id));
  StatusOr<EventInput> event = ParseEvent(json);
  if (!event.ok()) return event.status();
  return AddEvent(*it->second, *event);
}

void ZulipCore::RemoveClient(const std::string& queue_id) {
  auto it = clients_.find(queue_id);
  if (it == clients_.end()) return;
  Client& client = *it->second;
  DisconnectHandler(client);
  dead_ground_truth_[queue_id] = client.queue.ground_truth();
  dead_owner_[queue_id] = Lower(client.email);
  auto by_user = clients_by_user_.find(client.user_id);
  if (by_user != clients_by_user_.end()) {
    by_user->second.erase(queue_id);
    if (by_user->second.empty()) clients_by_user_.erase(by_user);
  }
  clients_.erase(it);
}

Status ZulipCore::DropQueue(std::string_view queue_id) {
  auto it = clients_.find(std::string(queue_id));
  if (it == clients_.end()) return Status::NotFound("no queue " + std::string(queue_id));
  FinishCurrentHandler(*it->second);
  RemoveClient(std::string(queue_id));
  return Status::Ok();
}

size_t ZulipCore::DropAllQueues() {
  std::vector<std::string> ids;
  for (const auto& [id, client] : clients_) ids.push_back(id);
  for (const auto& id : ids) (void)DropQueue(id);
  return ids.size();
}

size_t ZulipCore::DropQueuesIdleFor(double secs) {
  double now = clock_.Now();
  std::vector<std::string> ids;
  for (const auto& [id, client] : clients_) {
    if (now - client->last_connection_time >= secs) ids.push_back(id);
  }
  for (const auto& id : ids) (void)DropQueue(id);
  return ids.size();
}

Status ZulipCore::SetRegisterWindowEvents(std::string_view email, std::vector<std::string> events) {
  const FakeUser* user = FindUser(email);
  if (!user) return Status::NotFound("no user " + std::string(email));
  std::vector<EventInput> parsed;
  for (const auto& json : events) {
    StatusOr<EventInput> event = ParseEvent(json);
    if (!event.ok()) return event.status();
    parsed.push_back(std::move(*event));
  }
  register_window_[user->id] = std::move(parsed);
  return Status::Ok();
}

std::optional<double> ZulipCore::NextDeadline() const {
  double next = next_gc_;
  if (!heartbeats_.empty()) next = std::min(next, heartbeats_.begin()->first);
  return next;
}

void ZulipCore::GarbageCollect(double now) {
  // gc_event_queues(): expired() is "no GET parked and idle for the queue's timeout".
  std::vector<std::string> expired;
  for (const auto& [id, client] : clients_) {
    if (client->handler == 0 && now - client->last_connection_time >= client->lifespan) {
      expired.push_back(id);
    }
  }
  for (const auto& id : expired) RemoveClient(id);
}

void ZulipCore::RunDueTimers() {
  double now = clock_.Now();
  while (true) {
    bool heartbeat_first = !heartbeats_.empty() && heartbeats_.begin()->first <= next_gc_;
    double deadline = heartbeat_first ? heartbeats_.begin()->first : next_gc_;
    if (deadline > now) return;
    if (heartbeat_first) {
      std::string queue_id = heartbeats_.begin()->second;
      heartbeats_.erase(heartbeats_.begin());
      auto it = clients_.find(queue_id);
      if (it == clients_.end()) continue;
      it->second->heartbeat.reset();
      // Every queue gets heartbeats, whatever its event_types say.
      AddEvent(*it->second, HeartbeatEvent());
    } else {
      GarbageCollect(now);
      // A PeriodicCallback that fell behind skips the missed runs.
      double behind = std::floor((now - next_gc_) / kGcIntervalSecs);
      next_gc_ += kGcIntervalSecs * (1 + std::max(0.0, behind));
    }
  }
}

QueueInfo ZulipCore::Info(const Client& client) const {
  QueueInfo info;
  info.queue_id = client.queue_id;
  info.email = client.email;
  if (client.event_types) {
    info.event_types.emplace(client.event_types->begin(), client.event_types->end());
  }
  info.narrow_json = client.narrow_json;
  info.all_public_streams = client.all_public_streams;
  info.apply_markdown = client.apply_markdown;
  info.client_gravatar = client.client_gravatar;
  info.lifespan_secs = client.lifespan;
  info.created = client.created;
  info.last_connection_time = client.last_connection_time;
  info.polling = client.handler != 0;
  info.next_event_id = client.queue.next_event_id();
  info.newest_pruned_id = client.queue.newest_pruned_id();
  info.queued = client.queue.size();
  return info;
}

std::vector<QueueInfo> ZulipCore::Queues() const {
  std::vector<QueueInfo> out;
  for (const auto& [id, client] : clients_) out.push_back(Info(*client));
  std::sort(out.begin(), out.end(),
            [](const QueueInfo& a, const QueueInfo& b) { return a.created < b.created; });
  return out;
}

std::optional<QueueInfo> ZulipCore::Queue(std::string_view queue_id) const {
  auto it = clients_.find(std::string(queue_id));
  if (it == clients_.end()) return std::nullopt;
  return Info(*it->second);
}

namespace {
void AppendGroundTruth(const std::string& queue_id, const std::vector<StoredEvent>& events,
                       std::string* out) {
  std::string quoted = JsonQuote(queue_id);
  for (const auto& event : events) {
    *out += R"({"queue_id":)" + quoted + R"(,"id":)" + std::to_string(event.id) + R"(,"event":)" +
            *event.json + "}\n";
  }
}
}  // namespace

StatusOr<std::string> ZulipCore::GroundTruth(std::string_view queue_id) const {
  std::string out;
  auto live = clients_.find(std::string(queue_id));
  if (live != clients_.end()) {
    AppendGroundTruth(live->first, live->second->queue.ground_truth(), &out);
    return out;
  }
  auto dead = dead_ground_truth_.find(std::string(queue_id));
  if (dead == dead_ground_truth_.end())
    return Status::NotFound("no queue " + std::string(queue_id));
  AppendGroundTruth(dead->first, dead->second, &out);
  return out;
}

std::string ZulipCore::GroundTruthAll() const {
  std::string out;
  for (const auto& [id, events] : dead_ground_truth_) AppendGroundTruth(id, events, &out);
  for (const auto& info : Queues()) {
    AppendGroundTruth(info.queue_id, clients_.at(info.queue_id)->queue.ground_truth(), &out);
  }
  return out;
}

std::string ZulipCore::GroundTruthForUser(std::string_view email) const {
  std::string want = Lower(email);
  std::string out;
  for (const auto& [id, events] : dead_ground_truth_) {
    auto owner = dead_owner_.find(id);
    if (owner != dead_owner_.end() && owner->second == want) AppendGroundTruth(id, events, &out);
  }
  for (const auto& info : Queues()) {
    if (Lower(info.email) != want) continue;
    AppendGroundTruth(info.queue_id, clients_.at(info.queue_id)->queue.ground_truth(), &out);
  }
  return out;
}

size_t ZulipCore::DropQueuesOlderThan(double secs) {
  double now = clock_.Now();
  std::vector<std::string> ids;
  for (const auto& [id, client] : clients_) {
    if (now - client->created >= secs) ids.push_back(id);
  }
  for (const auto& id : ids) (void)DropQueue(id);
  return ids.size();
}

namespace {
std::string IdList(const std::vector<int64_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out + "]";
}

// The fields Zulip's stream dictionaries share (stream create events, subscription add).
std::string ChannelFields(const Channel& channel) {
  std::string invite_only = channel.invite_only ? "true" : "false";
  std::string history = channel.invite_only ? "false" : "true";
  return R"("name":)" + JsonQuote(channel.name) + R"(,"stream_id":)" + std::to_string(channel.id) +
         R"(,"is_archived":false,"description":"","rendered_description":"","invite_only":)" +
         invite_only +
         R"(,"is_web_public":false,"stream_post_policy":1,"history_public_to_subscribers":)" +
         history +
         R"(,"first_message_id":null,"is_recently_active":true,"message_retention_days":null,)"
         R"("is_announcement_only":false,"can_add_subscribers_group":2,)"
         R"("can_remove_subscribers_group":2,"can_subscribe_group":2,)"
         R"("stream_weekly_traffic":null)";
}
}  // namespace

void ZulipCore::PushToUsers(const std::vector<int64_t>& user_ids, const std::string& json) {
  StatusOr<EventInput> event = ParseEvent(json);
  if (!event.ok()) return;  // made here, always an object with a type
  for (int64_t user_id : user_ids) PushParsed(user_id, *event, nullptr);
}

std::vector<int64_t> ZulipCore::ChannelAudience(const Channel& channel) const {
  if (channel.invite_only) return {channel.subscribers.begin(), channel.subscribers.end()};
  std::vector<int64_t> everyone;
  for (const FakeUser& user : users_) everyone.push_back(user.id);
  return everyone;
}

void ZulipCore::AnnounceSubscription(const Channel& channel, int64_t user_id, bool subscribed) {
  std::vector<int64_t> subscribers(channel.subscribers.begin(), channel.subscribers.end());
  if (subscribed) {
    PushToUsers({user_id}, R"({"type":"subscription","op":"add","subscriptions":[{)" +
                               ChannelFields(channel) +
                               R"(,"color":"#76ce90","is_muted":false,"pin_to_top":false,)"
                               R"("audible_notifications":null,"desktop_notifications":null,)"
                               R"("email_notifications":null,"push_notifications":null,)"
                               R"("wildcard_mentions_notify":null,"in_home_view":true,)"
                               R"("subscribers":)" +
                               IdList(subscribers) + "}]}");
  } else {
    PushToUsers({user_id}, R"({"type":"subscription","op":"remove","subscriptions":[{"name":)" +
                               JsonQuote(channel.name) + R"(,"stream_id":)" +
                               std::to_string(channel.id) + "}]}");
  }
  std::vector<int64_t> peers;
  for (int64_t id : ChannelAudience(channel)) {
    if (id != user_id) peers.push_back(id);
  }
  PushToUsers(peers, std::string(R"({"type":"subscription","op":)") +
                         (subscribed ? R"("peer_add")" : R"("peer_remove")") +
                         R"(,"stream_ids":[)" + std::to_string(channel.id) + R"(],"user_ids":[)" +
                         std::to_string(user_id) + "]}");
}

StatusOr<int64_t> ZulipCore::AddChannel(std::string_view name, bool invite_only,
                                        const std::vector<std::string>& subscriber_emails) {
  std::vector<int64_t> ids;
  for (const std::string& email : subscriber_emails) {
    const FakeUser* user = FindUser(email);
    if (!user) return Status::NotFound("no user " + email);
    ids.push_back(user->id);
  }
  StatusOr<int64_t> id = org_.AddChannel(name, invite_only, ids);
  if (!id.ok()) return id;
  const Channel& channel = *org_.FindChannel(*id);
  PushToUsers(ChannelAudience(channel), R"({"type":"stream","op":"create","streams":[{)" +
                                            ChannelFields(channel) + R"(,"date_created":)" +
                                            std::to_string(static_cast<int64_t>(clock_.Now())) +
                                            "}]}");
  for (int64_t user_id : channel.subscribers) AnnounceSubscription(channel, user_id, true);
  return id;
}

Status ZulipCore::SetSubscribed(std::string_view email, std::string_view channel, bool subscribed) {
  const FakeUser* user = FindUser(email);
  if (!user) return Status::NotFound("no user " + std::string(email));
  StatusOr<bool> changed = org_.SetSubscribed(user->id, channel, subscribed);
  if (!changed.ok()) return changed.status();
  if (*changed) AnnounceSubscription(*org_.FindChannel(channel), user->id, subscribed);
  return Status::Ok();
}

int64_t ZulipCore::MaxMessageId(int64_t user_id) const {
  const auto& messages = org_.messages();
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (Organisation::HasRow(*it, user_id)) return it->id;
  }
  return -1;
}

const EventInput& ZulipCore::MessageEvent(const Message& message, const Client& client,
                                          std::vector<std::pair<int, EventInput>>* cache) {
  // process_message_event(): the sender's copy is read; a recipient's is unread; a copy for an
  // all_public_streams or narrowed queue whose user did not receive the message has no flags.
  bool read = message.sender_id == client.user_id;
  int key = (read ? 4 : 0) | (client.apply_markdown ? 2 : 0) | (client.client_gravatar ? 1 : 0);
  for (const auto& [k, event] : *cache) {
    if (k == key) return event;
  }
  EventInput event;
  event.body = org_.EventBody(message, client.apply_markdown, client.client_gravatar,
                              read ? R"(["read"])" : "[]");
  event.type = event.full_type = "message";
  event.message_type = message.is_channel() ? "stream" : "private";
  if (const Channel* channel = org_.FindChannel(message.channel_id)) {
    event.stream_name = channel->name;
  }
  event.topic = message.topic;
  if (const Member* sender = org_.FindMember(message.sender_id)) {
    event.sender_email = sender->email;
  }
  if (read) event.flags.push_back("read");
  cache->emplace_back(key, std::move(event));
  return cache->back().second;
}

int64_t ZulipCore::DeliverMessage(const Message& message, const std::vector<Client*>& listeners) {
  std::vector<std::pair<int, EventInput>> variants;
  int64_t deliveries = 0;
  auto deliver = [&](Client& client) {
    const EventInput& event = MessageEvent(message, client, &variants);
    if (!Accepts(client, event)) return;
    AddEvent(client, event);
    ++deliveries;
  };
  std::vector<int64_t> rows;
  if (message.is_channel()) {
    if (message.subscribers) rows = *message.subscribers;
    if (!std::binary_search(rows.begin(), rows.end(), message.sender_id)) {
      rows.push_back(message.sender_id);
    }
  } else {
    rows = message.dm_user_ids;
  }
  for (int64_t user_id : rows) {
    auto ids = clients_by_user_.find(user_id);
    if (ids == clients_by_user_.end()) continue;
    for (const std::string& id : ids->second) deliver(*clients_.at(id));
  }
  // FACTS §3: all_public_streams and narrowed queues get every public-channel message.
  const Channel* channel = message.is_channel() ? org_.FindChannel(message.channel_id) : nullptr;
  if (channel && !channel->invite_only) {
    for (Client* client : listeners) {
      if (!Organisation::HasRow(message, client->user_id)) deliver(*client);
    }
  }
  return deliveries;
}

StatusOr<SendMessageResult> ZulipCore::SendMessages(const SendMessageRequest& request) {
  if (request.count < 0 || request.count > 10'000'000) {
    return Status::InvalidArgument("count must be 0 to 10000000");
  }
  const FakeUser* sender = FindUser(request.sender_email);
  if (!sender) return Status::NotFound("no user " + request.sender_email);
  if (request.channel.empty() == request.to.empty()) {
    return Status::InvalidArgument("give either a channel (and topic) or \"to\"");
  }
  const Channel* channel = nullptr;
  std::vector<int64_t> to;
  if (!request.channel.empty()) {
    channel = org_.FindChannel(request.channel);
    if (!channel) return Status::NotFound("no channel \"" + request.channel + "\"");
    if (request.topic.empty()) return Status::InvalidArgument("a channel message needs a topic");
  } else {
    for (const std::string& email : request.to) {
      const FakeUser* user = FindUser(email);
      if (!user) return Status::NotFound("no user " + email);
      to.push_back(user->id);
    }
  }
  std::vector<Client*> listeners;
  for (const auto& [id, client] : clients_) {
    if (client->all_public_streams || !client->narrow.empty()) listeners.push_back(client.get());
  }
  EventFactoryOptions options;
  options.content_bytes = request.content_bytes;
  options.unicode = request.unicode;
  SendMessageResult result;
  org_.ReserveMessageIds(factory_.next_message_id());
  for (int64_t i = 0; i < request.count; ++i) {
    std::string content = request.content.empty() ? factory_.Content(options) : request.content;
    int64_t now = static_cast<int64_t>(clock_.Now());
    const Message& message =
        channel ? org_.SendToChannel(sender->id, *channel, request.topic, std::move(content), now)
                : org_.SendDirect(sender->id, to, std::move(content), now);
    if (i == 0) result.first_id = message.id;
    result.last_id = message.id;
    result.deliveries += DeliverMessage(message, listeners);
  }
  factory_.set_next_message_id(org_.next_message_id());
  return result;
}

ApiOutcome ZulipCore::GetMessages(const FakeUser& user, const ApiRequest& request) {
  // get_messages_backend() in zerver/views/message_fetch.py.
  ApiOutcome outcome;
  Params params(request.params);
  std::optional<HttpResponse> error;
  auto missing = [&](const char* name) {
    outcome.response =
        JsonError(400, "Missing '" + std::string(name) + "' argument", "REQUEST_VARIABLE_MISSING",
                  R"("var_name":")" + std::string(name) + R"(")");
    return outcome;
  };
  FetchRequest fetch;
  fetch.user_id = user.id;
  const std::string* anchor = params.Raw("anchor");
  if (!anchor) return missing("anchor");
  std::string anchor_text(Strip(*anchor));
  if (anchor_text.size() >= 2 && anchor_text.front() == '"' && anchor_text.back() == '"') {
    anchor_text = anchor_text.substr(1, anchor_text.size() - 2);
  }
  bool first_unread = false;
  if (anchor_text == "newest") {
    fetch.anchored_to_right = true;
    fetch.anchor = Organisation::kNewestAnchor;
  } else if (anchor_text == "oldest") {
    fetch.anchored_to_left = true;
  } else if (anchor_text == "first_unread") {
    first_unread = true;
  } else {
    char* end = nullptr;
    long long value = std::strtoll(anchor_text.c_str(), &end, 10);
    if (anchor_text.empty() || *end != '\0') {
      outcome.response = BadRequest("Invalid anchor");
      return outcome;
    }
    // parse_anchor_value() clamps; fetch_messages() then treats 0 as "oldest" and the top as
    // "newest".
    fetch.anchor = std::clamp<long long>(value, 0, Organisation::kNewestAnchor);
    fetch.anchored_to_left = fetch.anchor == 0;
    fetch.anchored_to_right = fetch.anchor == Organisation::kNewestAnchor;
  }
  std::optional<int64_t> num_before = params.Int("num_before", &error);
  std::optional<int64_t> num_after;
  if (!error) num_after = params.Int("num_after", &error);
  if (!error) fetch.include_anchor = params.Bool("include_anchor", &error).value_or(true);
  bool apply_markdown = true;
  bool client_gravatar = true;
  if (!error) apply_markdown = params.Bool("apply_markdown", &error).value_or(true);
  if (!error) client_gravatar = params.Bool("client_gravatar", &error).value_or(true);
  rapidjson::Document narrow;
  bool has_narrow = !error && params.Json("narrow", &narrow, &error);
  if (error) {
    outcome.response = std::move(*error);
    return outcome;
  }
  if (!num_before) return missing("num_before");
  if (!num_after) return missing("num_after");
  if (*num_before < 0 || *num_after < 0) {
    outcome.response =
        BadRequest(std::string(*num_before < 0 ? "num_before" : "num_after") + " is too small");
    return outcome;
  }
  fetch.num_before = *num_before;
  fetch.num_after = *num_after;
  static constexpr int64_t kMaxMessagesPerFetch = 5000;
  if (fetch.num_before + fetch.num_after > kMaxMessagesPerFetch) {
    outcome.response = BadRequest("Too many messages requested (maximum 5000).");
    return outcome;
  }
  if (fetch.num_before > 0 && fetch.num_after > 0 && !fetch.include_anchor) {
    outcome.response = BadRequest("The anchor can only be excluded at an end of the range");
    return outcome;
  }
  if (has_narrow && !narrow.IsNull()) {
    if (!narrow.IsArray()) {
      outcome.response = BadRequest("narrow is not a list");
      return outcome;
    }
    auto operand_text = [](const rapidjson::Value& v) -> std::optional<std::string> {
      if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
      if (v.IsInt64()) return std::to_string(v.GetInt64());
      return std::nullopt;
    };
    for (const auto& element : narrow.GetArray()) {
      NarrowTerm term;
      std::optional<std::string> op, operand;
      if (element.IsArray() && element.Size() == 2) {
        op = operand_text(element[0]);
        operand = operand_text(element[1]);
      } else if (element.IsObject() && element.HasMember("operator") &&
                 element.HasMember("operand")) {
        op = operand_text(element["operator"]);
        operand = operand_text(element["operand"]);
        auto negated = element.FindMember("negated");
        if (negated != element.MemberEnd() && negated->value.IsBool()) {
          term.negated = negated->value.GetBool();
        }
      }
      if (!op || !operand) {
        outcome.response =
            BadRequest("Invalid narrow[" + std::to_string(fetch.narrow.size()) + "]");
        return outcome;
      }
      term.op = *op;
      term.operand = *operand;
      fetch.narrow.push_back(std::move(term));
    }
  }
  if (first_unread) {
    // The oldest message the user received and has not read (nothing here marks one read), or
    // else the newest.
    fetch.anchored_to_right = true;
    fetch.anchor = Organisation::kNewestAnchor;
    for (const Message& m : org_.messages()) {
      if (m.sender_id != user.id && Organisation::HasRow(m, user.id)) {
        fetch.anchored_to_right = false;
        fetch.anchor = m.id;
        break;
      }
    }
  }
  StatusOr<FetchResult> result = org_.Fetch(fetch);
  if (!result.ok()) {
    outcome.response = JsonError(400, result.status().message(), "BAD_NARROW");
    return outcome;
  }
  std::string body = R"({"result":"success","msg":"","found_anchor":)";
  body += result->found_anchor ? "true" : "false";
  body += R"(,"found_oldest":)";
  body += result->found_oldest ? "true" : "false";
  body += R"(,"found_newest":)";
  body += result->found_newest ? "true" : "false";
  body +=
      R"(,"history_limited":false,"anchor":)" + std::to_string(fetch.anchor) + R"(,"messages":[)";
  bool first = true;
  for (const Message* m : result->messages) {
    if (!first) body += ',';
    first = false;
    org_.AppendMessageJson(*m, apply_markdown, client_gravatar,
                           Organisation::FlagsJson(*m, user.id), &body);
  }
  body += "]}";
  outcome.response = JsonResponse(200, std::move(body));
  return outcome;
}

int ZulipCore::RegisterCount(std::string_view email) const {
  const FakeUser* user = FindUser(email);
  if (!user) return 0;
  auto it = register_count_.find(user->id);
  return it == register_count_.end() ? 0 : it->second;
}

}  // namespace zb::fake_zulip
