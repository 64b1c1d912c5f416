// The fake Zulip server over real sockets, one test per behaviour of FACTS.md §2–§4. Each test
// fails if the fake were more lenient than Zulip. Time is driven (scale 0) unless a test says
// otherwise, so lifespans and heartbeats cost no real time.
#include "tests/fake_zulip/fake_zulip_server.h"

#include <curl/curl.h>

#include <future>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/test_support.h"

namespace zb::fake_zulip {
namespace {

using ::testing::HasSubstr;
using ::zb::testing::IsOk;
using ::zb::testing::WaitFor;

constexpr char kBot[] = "bot@example.com";
constexpr char kBotKey[] = "abcdefghijklmnopqrstuvwxyz012345";
constexpr char kOther[] = "other@example.com";
constexpr char kOtherKey[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

struct Reply {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  rapidjson::Document json;

  // Accessors that never assert: a missing field reads as a sentinel, so that a wrong answer
  // fails the test's expectations instead of aborting the whole binary.
  std::string Str(const char* name) const {
    if (!json.IsObject()) return "<not a JSON object>";
    auto it = json.FindMember(name);
    return it != json.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
  }
  int64_t Int(const char* name) const {
    if (!json.IsObject()) return -999;
    auto it = json.FindMember(name);
    return it != json.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : -999;
  }
  bool Has(const char* name) const { return json.IsObject() && json.HasMember(name); }
  const rapidjson::Value* Events() const {
    if (!json.IsObject()) return nullptr;
    auto it = json.FindMember("events");
    return it != json.MemberEnd() && it->value.IsArray() ? &it->value : nullptr;
  }
  std::vector<int64_t> EventIds() const {
    std::vector<int64_t> ids;
    if (const rapidjson::Value* events = Events()) {
      for (const auto& e : events->GetArray()) {
        ids.push_back(e.IsObject() && e.HasMember("id") && e["id"].IsInt64() ? e["id"].GetInt64()
                                                                             : -999);
      }
    } else {
      ids.push_back(-1000);  // no events array at all
    }
    return ids;
  }
  std::vector<std::string> EventTypes() const {
    std::vector<std::string> types;
    if (const rapidjson::Value* events = Events()) {
      for (const auto& e : events->GetArray()) {
        types.emplace_back(e.IsObject() && e.HasMember("type") && e["type"].IsString()
                               ? e["type"].GetString()
                               : "?");
      }
    } else {
      types.emplace_back("<no events>");
    }
    return types;
  }
};

size_t CollectBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t CollectHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    value.erase(value.find_last_not_of("\r\n") + 1);
    (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
  }
  return size * n;
}

class FakeZulipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeZulipOptions options;
    options.time_scale = 0;
    options.start_time = 1'700'000'000;
    options.seed = 42;
    auto server = FakeZulipServer::Start(options);
    ASSERT_THAT(server, IsOk());
    server_ = std::move(*server);
    ASSERT_THAT(server_->AddUser({.email = kBot, .api_key = kBotKey}), IsOk());
    ASSERT_THAT(server_->AddUser({.email = kOther, .api_key = kOtherKey, .is_bot = false}), IsOk());
  }

  // One request; params go in the query string for GET, in a form body otherwise, as the
  // Python client sends them. `auth` is "email:key", or "" for none.
  Reply Call(const std::string& method, const std::string& path,
             const std::vector<std::pair<std::string, std::string>>& params = {},
             const std::string& auth = std::string(kBot) + ":" + kBotKey,
             const std::vector<std::string>& extra_headers = {}) {
    CURL* curl = curl_easy_init();
    std::string encoded;
    for (const auto& [name, value] : params) {
      char* v = curl_easy_escape(curl, value.c_str(), static_cast<int>(value.size()));
      encoded += (encoded.empty() ? "" : "&") + name + "=" + v;
      curl_free(v);
    }
    std::string url = server_->url() + path;
    if (method == "GET" && !encoded.empty()) url += "?" + encoded;
    Reply reply;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method != "GET") curl_easy_setopt(curl, CURLOPT_POSTFIELDS, encoded.c_str());
    if (!auth.empty()) {
      curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      curl_easy_setopt(curl, CURLOPT_USERPWD, auth.c_str());
    }
    curl_slist* headers = nullptr;
    for (const auto& h : extra_headers) headers = curl_slist_append(headers, h.c_str());
    if (headers) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CollectBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, CollectHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(curl);
    EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    reply.json.Parse(reply.body.c_str());
    return reply;
  }

  // A control-interface request with a JSON body (POST) or none (GET).
  Reply Control(const std::string& method, const std::string& path, const std::string& json = "") {
    CURL* curl = curl_easy_init();
    std::string url = server_->url() + path;
    Reply reply;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST") curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CollectBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    EXPECT_EQ(curl_easy_perform(curl), CURLE_OK);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_easy_cleanup(curl);
    reply.json.Parse(reply.body.c_str());
    return reply;
  }

  std::string Register(const std::vector<std::pair<std::string, std::string>>& params = {
                           {"fetch_event_types", "[]"}}) {
    Reply reply = Call("POST", "/api/v1/register", params);
    EXPECT_EQ(reply.status, 200) << reply.body;
    return reply.Str("queue_id");
  }

  Reply Get(const std::string& queue_id, int64_t last_event_id, bool dont_block = true) {
    std::vector<std::pair<std::string, std::string>> params = {
        {"queue_id", queue_id}, {"last_event_id", std::to_string(last_event_id)}};
    if (dont_block) params.emplace_back("dont_block", "true");
    return Call("GET", "/api/v1/events", params);
  }

  // A GET that blocks; wait for it to be parked with WaitParked().
  std::future<Reply> GetAsync(const std::string& queue_id, int64_t last_event_id) {
    return std::async(std::launch::async, [this, queue_id, last_event_id] {
      return Get(queue_id, last_event_id, false);
    });
  }

  void WaitParked(size_t n) {
    ASSERT_TRUE(WaitFor([&] { return server_->parked_polls() == n; }, std::chrono::seconds(10)))
        << "parked polls: " << server_->parked_polls() << ", wanted " << n;
  }

  int64_t Push(const std::string& queue_id, const std::string& json) {
    StatusOr<int64_t> id = server_->PushEventToQueue(queue_id, json);
    EXPECT_THAT(id, IsOk());
    return id.ok() ? *id : -1;
  }

  std::unique_ptr<FakeZulipServer> server_;
};

// §2.1 and §4: authentication.

TEST_F(FakeZulipTest, MissingAuthorizationIs401WithBasicChallenge) {
  Reply reply = Call("POST", "/api/v1/register", {}, "");
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.Str("code"), "UNAUTHORIZED");
  EXPECT_EQ(reply.headers["www-authenticate"], "Basic realm=\"zulip\"");
}

TEST_F(FakeZulipTest, NonBasicAuthorizationIs400) {
  Reply reply = Call("POST", "/api/v1/register", {}, "", {"Authorization: Bearer abc"});
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.Str("msg"), "This endpoint requires HTTP basic authentication.");
}

TEST_F(FakeZulipTest, MalformedBasicCredentialsAre401) {
  Reply not_base64 = Call("POST", "/api/v1/register", {}, "", {"Authorization: Basic !!!!"});
  EXPECT_EQ(not_base64.status, 401);
  EXPECT_EQ(not_base64.Str("code"), "UNAUTHORIZED");
  EXPECT_EQ(not_base64.Str("msg"), "Invalid authorization header for basic auth");
  // "bot@example.com" with no colon and key.
  Reply no_colon =
      Call("POST", "/api/v1/register", {}, "", {"Authorization: Basic Ym90QGV4YW1wbGUuY29t"});
  EXPECT_EQ(no_colon.status, 401);
  EXPECT_EQ(no_colon.headers["www-authenticate"], "Basic realm=\"zulip\"");
}

TEST_F(FakeZulipTest, MalformedApiKeyIs401) {
  Reply reply = Call("POST", "/api/v1/register", {}, std::string(kBot) + ":short");
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.Str("code"), "UNAUTHORIZED");
  EXPECT_EQ(reply.Str("msg"), "Malformed API key");
}

TEST_F(FakeZulipTest, UnknownApiKeyIs401InvalidApiKey) {
  Reply reply =
      Call("POST", "/api/v1/register", {}, std::string(kBot) + ":zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.Str("msg"), "Invalid API key");
  EXPECT_EQ(reply.headers["www-authenticate"], "Basic realm=\"zulip\"");
}

TEST_F(FakeZulipTest, AnotherUsersKeyIs401InvalidApiKey) {
  Reply reply = Call("POST", "/api/v1/register", {}, std::string(kBot) + ":" + kOtherKey);
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.Str("msg"), "Invalid API key");
}

TEST_F(FakeZulipTest, DeactivatedUserIs401Unauthorized) {
  ASSERT_THAT(server_->SetUserActive(kBot, false), IsOk());
  Reply reply = Call("POST", "/api/v1/register");
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.Str("code"), "UNAUTHORIZED");
  EXPECT_EQ(reply.Str("msg"), "Account is deactivated");
}

TEST_F(FakeZulipTest, DeactivatedRealmIs401AndCheckedBeforeTheUser) {
  ASSERT_THAT(server_->SetUserActive(kBot, false), IsOk());
  server_->SetRealmActive(false);
  Reply reply = Call("GET", "/api/v1/events", {{"queue_id", "x"}, {"last_event_id", "-1"}});
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.Str("code"), "UNAUTHORIZED");
  EXPECT_EQ(reply.Str("msg"), "This organization has been deactivated");
}

TEST_F(FakeZulipTest, ServerSettingsNeedsNoCredentialsAndNamesTheVersion) {
  Reply reply = Call("GET", "/api/v1/server_settings", {}, "");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.Str("zulip_version"), "10.2");
  EXPECT_EQ(reply.Int("zulip_feature_level"), 372);
}

// §2.2: /register.

TEST_F(FakeZulipTest, RegisterReturnsAQueueAndLastEventIdMinusOne) {
  Reply reply = Call("POST", "/api/v1/register", {{"fetch_event_types", "[]"}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.Str("queue_id").size(), 36u);  // a uuid4
  EXPECT_EQ(reply.Int("last_event_id"), -1);
  EXPECT_EQ(reply.Str("zulip_version"), "10.2");
  EXPECT_EQ(reply.Int("zulip_feature_level"), 372);
  EXPECT_TRUE(reply.Has("zulip_merge_base"));
  EXPECT_FALSE(reply.Has("ignored_parameters_unsupported"));
}

TEST_F(FakeZulipTest, ApplyMarkdownDefaultsToFalseAndClientGravatarToTrue) {
  std::optional<QueueInfo> defaults = server_->Queue(Register());
  EXPECT_FALSE(defaults->apply_markdown);
  EXPECT_TRUE(defaults->client_gravatar);
  std::optional<QueueInfo> set =
      server_->Queue(Register({{"apply_markdown", "true"}, {"client_gravatar", "false"}}));
  EXPECT_TRUE(set->apply_markdown);
  EXPECT_FALSE(set->client_gravatar);
  // Values are JSON: a Python-style "True" is not a boolean.
  EXPECT_EQ(Call("POST", "/api/v1/register", {{"apply_markdown", "True"}}).status, 400);
}

TEST_F(FakeZulipTest, MaxMessageIdOnlyWhenMessagesAreFetched) {
  EXPECT_FALSE(Call("POST", "/api/v1/register", {{"fetch_event_types", "[\"realm\"]"}})
                   .Has("max_message_id"));
  EXPECT_TRUE(Call("POST", "/api/v1/register", {{"fetch_event_types", "[\"message\"]"}})
                  .Has("max_message_id"));
  // Without fetch_event_types, event_types decides what is fetched.
  Reply by_event_types = Call("POST", "/api/v1/register", {{"event_types", "[\"message\"]"}});
  EXPECT_EQ(by_event_types.Int("max_message_id"), -1);
  EXPECT_FALSE(by_event_types.Has("event_queue_longpoll_timeout_seconds"));
}

TEST_F(FakeZulipTest, LongpollTimeoutOnlyWhenRealmIsFetched) {
  Reply with = Call("POST", "/api/v1/register", {{"fetch_event_types", "[\"realm\"]"}});
  EXPECT_EQ(with.Int("event_queue_longpoll_timeout_seconds"), 90);
  EXPECT_TRUE(with.Has("server_generation"));
  Reply without = Call("POST", "/api/v1/register", {{"fetch_event_types", "[\"message\"]"}});
  EXPECT_FALSE(without.Has("event_queue_longpoll_timeout_seconds"));
  // No event_types at all fetches everything.
  Reply everything = Call("POST", "/api/v1/register");
  EXPECT_TRUE(everything.Has("event_queue_longpoll_timeout_seconds"));
  EXPECT_TRUE(everything.Has("max_message_id"));
}

TEST_F(FakeZulipTest, UnknownRegisterParametersAreListedAsIgnored) {
  Reply reply = Call("POST", "/api/v1/register",
                     {{"idle_queue_timeout", "3600"}, {"apply_markdown", "true"}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  ASSERT_TRUE(reply.Has("ignored_parameters_unsupported"));
  const auto& ignored = reply.json["ignored_parameters_unsupported"];
  ASSERT_TRUE(ignored.IsArray());
  ASSERT_EQ(ignored.Size(), 1u);
  EXPECT_STREQ(ignored[0].GetString(), "idle_queue_timeout");
}

TEST_F(FakeZulipTest, QueueLifespanIsCappedAtSevenDaysAndZeroMeansTenMinutes) {
  std::string capped = Register({{"queue_lifespan_secs", "99999999"}});
  EXPECT_EQ(server_->Queue(capped)->lifespan_secs, 7 * 86400);
  std::string zero = Register({{"queue_lifespan_secs", "0"}});
  EXPECT_EQ(server_->Queue(zero)->lifespan_secs, 600);
  std::string unset = Register();
  EXPECT_EQ(server_->Queue(unset)->lifespan_secs, 600);
}

TEST_F(FakeZulipTest, OlderServerIgnoresQueueLifespanAndSaysSo) {
  server_->WithCore(
      [](ZulipCore& core) { core.SetUnsupportedRegisterParameters({"queue_lifespan_secs"}); });
  Reply reply = Call("POST", "/api/v1/register", {{"queue_lifespan_secs", "86400"}});
  ASSERT_EQ(reply.status, 200);
  ASSERT_TRUE(reply.Has("ignored_parameters_unsupported")) << reply.body;
  EXPECT_STREQ(reply.json["ignored_parameters_unsupported"][0].GetString(), "queue_lifespan_secs");
  EXPECT_EQ(server_->Queue(reply.Str("queue_id"))->lifespan_secs, 600);
}

TEST_F(FakeZulipTest, EventsDuringRegisterAreSkippedByItsLastEventIdButNotByMinusOne) {
  ASSERT_THAT(server_->SetRegisterWindowEvents(
                  kBot, {R"({"type":"typing","op":"start"})", R"({"type":"typing","op":"stop"})"}),
              IsOk());
  Reply reply = Call("POST", "/api/v1/register", {{"fetch_event_types", "[]"}});
  EXPECT_EQ(reply.Int("last_event_id"), 1);
  std::string queue_id = reply.Str("queue_id");
  // A client that uses the returned id never sees them as events...
  EXPECT_TRUE(Get(queue_id, 1).EventIds().empty());
  // ... but they were in the queue: a fresh queue polled from -1 delivers them.
  ASSERT_THAT(server_->SetRegisterWindowEvents(kBot, {R"({"type":"typing","op":"start"})"}),
              IsOk());
  std::string second = Register();
  EXPECT_EQ(Get(second, -1).EventIds(), std::vector<int64_t>({0}));
}

TEST_F(FakeZulipTest, AllPublicStreamsDefaultsToTheBotsSetting) {
  ASSERT_THAT(server_->AddUser({.email = "public@example.com",
                                .api_key = "0123456789abcdefghij0123456789ab",
                                .default_all_public_streams = true}),
              IsOk());
  Reply reply =
      Call("POST", "/api/v1/register", {}, "public@example.com:0123456789abcdefghij0123456789ab");
  EXPECT_TRUE(server_->Queue(reply.Str("queue_id"))->all_public_streams);
  EXPECT_FALSE(server_->Queue(Register())->all_public_streams);
}

TEST_F(FakeZulipTest, GuestMayNotRegisterForAllPublicStreams) {
  ASSERT_THAT(server_->AddUser({.email = "guest@example.com",
                                .api_key = "guestguestguestguestguestguest12",
                                .is_bot = false,
                                .is_guest = true}),
              IsOk());
  Reply reply = Call("POST", "/api/v1/register", {{"all_public_streams", "true"}},
                     "guest@example.com:guestguestguestguestguestguest12");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.Str("msg"), "User not authorized for this query");
}

TEST_F(FakeZulipTest, EmptyNarrowFallsBackOnTheDefaultStream) {
  ASSERT_THAT(server_->AddUser({.email = "narrow@example.com",
                                .api_key = "narrownarrownarrownarrownarrow12",
                                .default_events_register_stream = "general"}),
              IsOk());
  Reply reply = Call("POST", "/api/v1/register", {{"narrow", "[]"}},
                     "narrow@example.com:narrownarrownarrownarrownarrow12");
  EXPECT_EQ(server_->Queue(reply.Str("queue_id"))->narrow_json, R"([["stream","general"]])");
}

TEST_F(FakeZulipTest, NarrowWithAnUnsupportedOperatorIsRefused) {
  Reply reply = Call("POST", "/api/v1/register", {{"narrow", R"([["search","x"]])"}});
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.Str("code"), "BAD_REQUEST");
  Reply followed = Call("POST", "/api/v1/register", {{"narrow", R"([["is","followed"]])"}});
  EXPECT_EQ(followed.status, 400);
}

TEST_F(FakeZulipTest, NarrowFiltersMessageEventsOnly) {
  std::string queue_id = Register({{"narrow", R"([["stream","general"]])"}});
  ASSERT_THAT(server_->PushEvent(kBot, R"({"type":"message","flags":[],"message":{"id":1,
      "type":"stream","display_recipient":"random","subject":"t"}})"),
              IsOk());
  ASSERT_THAT(server_->PushEvent(kBot, R"({"type":"message","flags":[],"message":{"id":2,
      "type":"stream","display_recipient":"General","subject":"t"}})"),
              IsOk());
  ASSERT_THAT(server_->PushEvent(kBot, R"({"type":"presence"})"), IsOk());
  Reply reply = Get(queue_id, -1);
  ASSERT_EQ(reply.EventTypes(), std::vector<std::string>({"message", "presence"}));
  EXPECT_EQ(reply.json["events"][0]["message"]["id"].GetInt(), 2);
}

TEST_F(FakeZulipTest, EventTypesFilterFutureEventsAndUnknownTypesAreIgnored) {
  std::string queue_id = Register({{"event_types", R"(["message","no_such_type"])"}});
  auto pushed = server_->PushEvent(kBot, R"({"type":"presence"})");
  ASSERT_THAT(pushed, IsOk());
  EXPECT_TRUE(pushed->empty());
  pushed = server_->PushEvent(kBot, R"({"type":"message","flags":[],"message":{"id":1}})");
  ASSERT_THAT(pushed, IsOk());
  EXPECT_EQ(pushed->size(), 1u);
  EXPECT_EQ(Get(queue_id, -1).EventTypes(), std::vector<std::string>({"message"}));
}

// §2.3 and §3: GET /events.

TEST_F(FakeZulipTest, EventIdsCountPerQueueFromZero) {
  std::string a = Register();
  std::string b = Register();
  Push(a, R"({"type":"x"})");
  auto pushed = server_->PushEvent(kBot, R"({"type":"y"})");
  ASSERT_THAT(pushed, IsOk());
  std::map<std::string, int64_t> ids(pushed->begin(), pushed->end());
  EXPECT_EQ(ids[a], 1);
  EXPECT_EQ(ids[b], 0);
  EXPECT_EQ(Get(b, -1).EventIds(), std::vector<int64_t>({0}));
}

TEST_F(FakeZulipTest, EventsCarryTheirIdLastAndTheGroundTruthKeepsTheBytes) {
  std::string queue_id = Register();
  Push(queue_id, R"({"type":"x","id":77,"z":[1,2]})");
  Reply reply = Get(queue_id, -1);
  EXPECT_THAT(reply.body, HasSubstr(R"({"type":"x","z":[1,2],"id":0})"));
  auto truth = server_->GroundTruth(queue_id);
  ASSERT_THAT(truth, IsOk());
  EXPECT_EQ(*truth, "{\"queue_id\":\"" + queue_id +
                        R"(","id":0,"event":{"type":"x","z":[1,2],"id":0}})" + "\n");
}

TEST_F(FakeZulipTest, GetWithoutLastEventIdIsRefused) {
  std::string queue_id = Register();
  Reply reply = Call("GET", "/api/v1/events", {{"queue_id", queue_id}});
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.Str("msg"), "Missing 'last_event_id' argument");
}

TEST_F(FakeZulipTest, GetWithoutQueueIdIsRefusedUnlessDontBlock) {
  Reply refused = Call("GET", "/api/v1/events", {{"last_event_id", "-1"}});
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.Str("msg"), "Missing 'queue_id' argument");
  Reply created = Call("GET", "/api/v1/events", {{"dont_block", "true"}});
  EXPECT_EQ(created.status, 200);
  EXPECT_TRUE(server_->Queue(created.Str("queue_id")).has_value());
}

TEST_F(FakeZulipTest, LastEventIdPrunesWhatItAcknowledges) {
  std::string queue_id = Register();
  for (int i = 0; i < 3; ++i) Push(queue_id, R"({"type":"x"})");
  EXPECT_EQ(Get(queue_id, -1).EventIds(), std::vector<int64_t>({0, 1, 2}));
  EXPECT_EQ(Get(queue_id, 1).EventIds(), std::vector<int64_t>({2}));
  // Nothing but last_event_id acknowledges: the same GET again returns the same events.
  EXPECT_EQ(Get(queue_id, 1).EventIds(), std::vector<int64_t>({2}));
}

TEST_F(FakeZulipTest, LastEventIdOlderThanThePrunedOneIsRefused) {
  std::string queue_id = Register();
  for (int i = 0; i < 3; ++i) Push(queue_id, R"({"type":"x"})");
  ASSERT_EQ(Get(queue_id, 1).status, 200);
  Reply reply = Get(queue_id, 0);
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.Str("code"), "BAD_REQUEST");
  EXPECT_EQ(reply.Str("msg"), "An event newer than 0 has already been pruned!");
}

TEST_F(FakeZulipTest, LastEventIdNeverInTheQueuePrunesAndThenFailsForGood) {
  std::string queue_id = Register();
  // An id past the end was never in the queue (the merged-id case is the test below).
  for (int i = 0; i < 4; ++i) Push(queue_id, R"({"type":"x"})");
  ASSERT_EQ(Get(queue_id, 1).EventIds(), std::vector<int64_t>({2, 3}));
  Reply reply = Get(queue_id, 7);
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.Str("msg"), "Event 7 was not in this queue");
  // The prune happened before the error: 2 and 3 are gone for good.
  EXPECT_EQ(server_->Queue(queue_id)->newest_pruned_id, 3);
  EXPECT_EQ(Get(queue_id, 7).status, 400);
  EXPECT_EQ(Get(queue_id, 1).Str("msg"), "An event newer than 1 has already been pruned!");
}

TEST_F(FakeZulipTest, MergedFlagEventsSkipIdsAndAnIdThatWasMergedAwayBreaksTheQueue) {
  std::string queue_id = Register();
  const std::string read3 =
      R"({"type":"update_message_flags","op":"add","operation":"add","flag":"read",)"
      R"("messages":[3],"all":false})";
  const std::string read5 =
      R"({"type":"update_message_flags","op":"add","operation":"add","flag":"read",)"
      R"("messages":[5],"all":false})";
  EXPECT_EQ(Push(queue_id, R"({"type":"x"})"), 0);
  EXPECT_EQ(Push(queue_id, read3), 1);
  EXPECT_EQ(Push(queue_id, R"({"type":"y"})"), 2);
  EXPECT_EQ(Push(queue_id, read5), 3);
  Reply reply = Get(queue_id, -1);
  // The merged event takes the newest id; id 1 never appears.
  EXPECT_EQ(reply.EventIds(), std::vector<int64_t>({0, 2, 3}));
  ASSERT_EQ(reply.EventIds().size(), 3u);
  EXPECT_EQ(reply.json["events"][2]["messages"].Size(), 2u);
  Reply bad = Get(queue_id, 1);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.Str("msg"), "Event 1 was not in this queue");
}

TEST_F(FakeZulipTest, RemoveReadFlagEventsAreNotMerged) {
  std::string queue_id = Register();
  const std::string unread =
      R"({"type":"update_message_flags","op":"remove","operation":"remove","flag":"read",)"
      R"("messages":[3],"all":false})";
  Push(queue_id, unread);
  Push(queue_id, unread);
  EXPECT_EQ(Get(queue_id, -1).EventIds(), std::vector<int64_t>({0, 1}));
}

TEST_F(FakeZulipTest, AllPendingEventsComeInOneResponse) {
  std::string queue_id = Register();
  for (int i = 0; i < 3000; ++i) Push(queue_id, R"({"type":"x"})");
  EXPECT_EQ(Get(queue_id, -1).EventIds().size(), 3000u);
}

TEST_F(FakeZulipTest, GetBlocksUntilAnEventArrives) {
  std::string queue_id = Register();
  auto poll = GetAsync(queue_id, -1);
  WaitParked(1);
  EXPECT_EQ(poll.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  Push(queue_id, R"({"type":"x"})");
  Reply reply = poll.get();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.EventIds(), std::vector<int64_t>({0}));
  EXPECT_EQ(reply.headers.count("x-ratelimit-remaining"), 1u);
}

TEST_F(FakeZulipTest, DontBlockAnswersAtOnceWithNoEvents) {
  std::string queue_id = Register();
  Reply reply = Get(queue_id, -1, /*dont_block=*/true);
  EXPECT_EQ(reply.status, 200);
  EXPECT_TRUE(reply.EventIds().empty());
  // queue_id comes only with a queue the GET itself created.
  EXPECT_FALSE(reply.Has("queue_id"));
}

TEST_F(FakeZulipTest, HeartbeatComesAfter45To55SecondsWhateverTheEventTypes) {
  std::string queue_id = Register({{"event_types", R"(["message"])"}});
  auto poll = GetAsync(queue_id, -1);
  WaitParked(1);
  server_->AdvanceTime(44.9);
  EXPECT_EQ(server_->parked_polls(), 1u);
  server_->AdvanceTime(10.2);
  Reply reply = poll.get();
  EXPECT_EQ(reply.EventTypes(), std::vector<std::string>({"heartbeat"}));
  EXPECT_EQ(reply.EventIds(), std::vector<int64_t>({0}));
}

TEST_F(FakeZulipTest, NoHeartbeatWhileNoGetIsParked) {
  std::string queue_id = Register();
  server_->AdvanceTime(120);
  EXPECT_TRUE(Get(queue_id, -1).EventIds().empty());
}

TEST_F(FakeZulipTest, TimeScaleBringsTheHeartbeatSooner) {
  std::string queue_id = Register();
  server_->SetTimeScale(1000);  // 55 fake seconds in 55 ms
  auto poll = GetAsync(queue_id, -1);
  ASSERT_EQ(poll.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(poll.get().EventTypes(), std::vector<std::string>({"heartbeat"}));
}

TEST_F(FakeZulipTest, NewGetFinishesThePendingOne) {
  std::string queue_id = Register();
  auto first = GetAsync(queue_id, -1);
  WaitParked(1);
  auto second = GetAsync(queue_id, -1);
  Reply old = first.get();
  EXPECT_EQ(old.status, 200);
  EXPECT_TRUE(old.EventIds().empty());
  WaitParked(1);
  Push(queue_id, R"({"type":"x"})");
  EXPECT_EQ(second.get().EventIds(), std::vector<int64_t>({0}));
}

TEST_F(FakeZulipTest, UnknownQueueIsBadEventQueueIdWithTheQueueId) {
  Reply reply = Get("no-such-queue", -1);
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.Str("code"), "BAD_EVENT_QUEUE_ID");
  EXPECT_EQ(reply.Str("queue_id"), "no-such-queue");
  EXPECT_EQ(reply.Str("msg"), "Bad event queue ID: no-such-queue");
}

TEST_F(FakeZulipTest, AnotherUsersQueueIsBadEventQueueId) {
  std::string queue_id = Register();
  Reply reply = Call("GET", "/api/v1/events", {{"queue_id", queue_id}, {"last_event_id", "-1"}},
                     std::string(kOther) + ":" + kOtherKey);
  EXPECT_EQ(reply.Str("code"), "BAD_EVENT_QUEUE_ID");
}

// §3: lifespan and garbage collection.

TEST_F(FakeZulipTest, IdleQueueIsCollectedAfterItsLifespanAtTheNextSweep) {
  std::string queue_id = Register({{"queue_lifespan_secs", "90"}});
  server_->AdvanceTime(91);  // past the lifespan; the sweeps ran at +60 only
  EXPECT_TRUE(server_->Queue(queue_id).has_value());
  server_->AdvanceTime(30);  // the sweep at +120
  EXPECT_FALSE(server_->Queue(queue_id).has_value());
  EXPECT_EQ(Get(queue_id, -1).Str("code"), "BAD_EVENT_QUEUE_ID");
}

TEST_F(FakeZulipTest, DontBlockPollsDoNotKeepAQueueAlive) {
  std::string queue_id = Register();  // 600 s
  for (int i = 0; i < 11; ++i) {
    server_->AdvanceTime(50);
    ASSERT_EQ(Get(queue_id, -1).status, 200) << "after " << (i + 1) * 50 << " s";
  }
  server_->AdvanceTime(60);
  EXPECT_EQ(Get(queue_id, -1).Str("code"), "BAD_EVENT_QUEUE_ID");
}

TEST_F(FakeZulipTest, PollsThatFindEventsWaitingDoNotKeepAQueueAlive) {
  std::string queue_id = Register();
  Push(queue_id, R"({"type":"x"})");
  for (int i = 0; i < 11; ++i) {
    server_->AdvanceTime(50);
    // A blocking GET that returns at once because the event is still unacknowledged.
    Reply reply = Get(queue_id, -1, /*dont_block=*/false);
    ASSERT_EQ(reply.EventIds(), std::vector<int64_t>({0})) << "after " << (i + 1) * 50 << " s";
  }
  server_->AdvanceTime(60);
  EXPECT_EQ(Get(queue_id, -1).Str("code"), "BAD_EVENT_QUEUE_ID");
}

TEST_F(FakeZulipTest, APollThatBlocksRefreshesTheLifespan) {
  std::string queue_id = Register();
  server_->AdvanceTime(500);
  auto poll = GetAsync(queue_id, -1);
  WaitParked(1);
  Push(queue_id, R"({"type":"x"})");
  ASSERT_EQ(poll.get().EventIds(), std::vector<int64_t>({0}));
  server_->AdvanceTime(500);  // 1000 s after register, 500 s after the blocking poll
  EXPECT_EQ(Get(queue_id, 0).status, 200);
}

TEST_F(FakeZulipTest, AParkedPollKeepsItsQueueThroughASweep) {
  std::string queue_id = Register({{"queue_lifespan_secs", "30"}});
  server_->AdvanceTime(16);
  // Parked at +16: its heartbeat comes at +61..71, after the sweep at +60, which finds the
  // queue idle for 44 s > 30 s but with a GET parked.
  auto poll = GetAsync(queue_id, -1);
  WaitParked(1);
  server_->AdvanceTime(44.5);
  EXPECT_TRUE(server_->Queue(queue_id).has_value());
  Push(queue_id, R"({"type":"x"})");
  EXPECT_EQ(poll.get().EventIds(), std::vector<int64_t>({0}));
}

TEST_F(FakeZulipTest, AClientThatGivesUpOnAPollNoLongerHoldsItsQueue) {
  std::string queue_id = Register({{"queue_lifespan_secs", "30"}});
  {
    CURL* curl = curl_easy_init();
    std::string url = server_->url() + "/api/v1/events?queue_id=" + queue_id + "&last_event_id=-1";
    std::string userpwd = std::string(kBot) + ":" + kBotKey;
    std::string sink;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_USERPWD, userpwd.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CollectBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 300L);
    EXPECT_EQ(curl_easy_perform(curl), CURLE_OPERATION_TIMEDOUT);
    curl_easy_cleanup(curl);
  }
  WaitParked(0);
  server_->AdvanceTime(61);
  EXPECT_FALSE(server_->Queue(queue_id).has_value());
}

// §2.4: DELETE /events.

TEST_F(FakeZulipTest, DeleteRemovesTheQueueAndFinishesItsPendingGet) {
  std::string queue_id = Register();
  auto poll = GetAsync(queue_id, -1);
  WaitParked(1);
  Reply deleted = Call("DELETE", "/api/v1/events", {{"queue_id", queue_id}});
  EXPECT_EQ(deleted.status, 200);
  EXPECT_EQ(deleted.body, R"({"result":"success","msg":""})");
  EXPECT_EQ(poll.get().status, 200);
  EXPECT_EQ(Get(queue_id, -1).Str("code"), "BAD_EVENT_QUEUE_ID");
}

TEST_F(FakeZulipTest, DeleteOfAnUnknownQueueIsBadEventQueueId) {
  Reply reply = Call("DELETE", "/api/v1/events", {{"queue_id", "gone"}});
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.Str("code"), "BAD_EVENT_QUEUE_ID");
}

// §4: rate limiting.

TEST_F(FakeZulipTest, EveryApiResponseCarriesRateLimitHeaders) {
  Reply ok = Call("POST", "/api/v1/register");
  EXPECT_EQ(ok.headers["x-ratelimit-limit"], "200");
  EXPECT_EQ(ok.headers["x-ratelimit-remaining"], "199");
  EXPECT_GE(std::stoll(ok.headers["x-ratelimit-reset"]), 1'700'000'000);
  Reply error = Get("nope", -1);
  EXPECT_EQ(error.status, 400);
  EXPECT_EQ(error.headers.count("x-ratelimit-remaining"), 1u);
}

TEST_F(FakeZulipTest, The201stRequestInAMinuteIs429WithAFractionalRetryAfter) {
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(Call("POST", "/api/v1/register", {{"fetch_event_types", "[]"}}).status, 200) << i;
    server_->AdvanceTime(0.1);
  }
  Reply limited = Call("POST", "/api/v1/register");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.Str("code"), "RATE_LIMIT_HIT");
  EXPECT_EQ(limited.Str("msg"), "API usage exceeded rate limit");
  ASSERT_TRUE(limited.Has("retry-after")) << limited.body;
  ASSERT_TRUE(limited.json["retry-after"].IsDouble());
  double retry_after = limited.json["retry-after"].GetDouble();
  // The first request, 20 s ago, frees a slot at 60 s (fake Unix time is a double: ~1e-5).
  EXPECT_NEAR(retry_after, 40.0, 1e-3);
  EXPECT_DOUBLE_EQ(std::stod(limited.headers["retry-after"]), retry_after);
  EXPECT_NE(limited.headers["retry-after"].find('.'), std::string::npos);
  EXPECT_EQ(limited.headers["x-ratelimit-remaining"], "0");
  server_->AdvanceTime(retry_after + 0.001);
  EXPECT_EQ(Call("POST", "/api/v1/register").status, 200);
}

TEST_F(FakeZulipTest, RateLimitCanBeSetPerUser) {
  ASSERT_THAT(server_->SetRateLimit(kBot, "10:2"), IsOk());
  EXPECT_EQ(Call("POST", "/api/v1/register").status, 200);
  EXPECT_EQ(Call("POST", "/api/v1/register").status, 200);
  Reply limited = Call("POST", "/api/v1/register");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.headers["x-ratelimit-limit"], "2");
  // Another user has the default.
  EXPECT_EQ(Call("POST", "/api/v1/register", {}, std::string(kOther) + ":" + kOtherKey).status,
            200);
}

TEST_F(FakeZulipTest, EventsUseTornadosDebtBucketApartFromRegister) {
  ASSERT_THAT(server_->SetRateLimit(kBot, "10:5"), IsOk());
  std::string queue_id = Register();
  // Each GET adds 10/5 = 2 s of debt; the sixth would pass the 10 s window.
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Get(queue_id, -1).status, 200) << i;
  Reply limited = Get(queue_id, -1);
  EXPECT_EQ(limited.status, 429);
  ASSERT_TRUE(limited.Has("retry-after")) << limited.body;
  ASSERT_TRUE(limited.json["retry-after"].IsNumber());
  EXPECT_NEAR(limited.json["retry-after"].GetDouble(), 2.0, 1e-3);
  // The register bucket is a different one: 1 of 5 used.
  EXPECT_EQ(Call("POST", "/api/v1/register").status, 200);
  server_->AdvanceTime(2);
  EXPECT_EQ(Get(queue_id, -1).status, 200);
}

TEST_F(FakeZulipTest, StoppingTheServerClosesParkedPolls) {
  std::string queue_id = Register();
  std::string url = server_->url() + "/api/v1/events?queue_id=" + queue_id + "&last_event_id=-1";
  auto poll = std::async(std::launch::async, [url] {
    CURL* curl = curl_easy_init();
    std::string userpwd = std::string(kBot) + ":" + kBotKey;
    std::string sink;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_USERPWD, userpwd.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CollectBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    return rc;
  });
  WaitParked(1);
  server_.reset();
  EXPECT_EQ(poll.get(), CURLE_GOT_NOTHING);
}

// The control interface, for tests that run fake-zulip as a separate process.

TEST_F(FakeZulipTest, ControlInterfacePushesEventsAndReportsQueues) {
  std::string queue_id = Register();
  Reply pushed = Call("POST", "/_fake/events", {}, "",
                      {"Content-Type: application/json"});  // no body: refused below
  EXPECT_EQ(pushed.status, 400);
  CURL* curl = curl_easy_init();
  std::string body = R"({"email":"bot@example.com","event":{"type":"x"}})";
  std::string url = server_->url() + "/_fake/events";
  std::string out;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
  ASSERT_EQ(curl_easy_perform(curl), CURLE_OK);
  curl_easy_cleanup(curl);
  EXPECT_THAT(out, HasSubstr("\"id\":0"));
  EXPECT_EQ(Get(queue_id, -1).EventIds(), std::vector<int64_t>({0}));
  Reply queues = Call("GET", "/_fake/queues", {}, "");
  EXPECT_THAT(queues.body, HasSubstr(queue_id));
}

TEST_F(FakeZulipTest, ControlInterfaceManagesUsersAndTheRealm) {
  Reply added =
      Control("POST", "/_fake/users",
              R"({"email":"new@example.com","api_key":"newnewnewnewnewnewnewnewnewnew12"})");
  ASSERT_EQ(added.status, 200) << added.body;
  std::string auth = "new@example.com:newnewnewnewnewnewnewnewnewnew12";
  EXPECT_EQ(Call("POST", "/api/v1/register", {}, auth).status, 200);
  EXPECT_EQ(Control("POST", "/_fake/users/deactivate", R"({"email":"new@example.com"})").status,
            200);
  EXPECT_EQ(Call("POST", "/api/v1/register", {}, auth).Str("msg"), "Account is deactivated");
  EXPECT_EQ(Control("POST", "/_fake/users/reactivate", R"({"email":"new@example.com"})").status,
            200);
  EXPECT_EQ(Control("POST", "/_fake/realm/deactivate").status, 200);
  EXPECT_EQ(Call("POST", "/api/v1/register", {}, auth).Str("msg"),
            "This organization has been deactivated");
  EXPECT_EQ(Control("POST", "/_fake/users/deactivate", R"({"email":"nobody@example.com"})").status,
            404);
}

TEST_F(FakeZulipTest, ControlInterfaceDrivesTimeAndDropsQueues) {
  std::string kept = Register({{"queue_lifespan_secs", "86400"}});
  std::string idle = Register();
  EXPECT_EQ(Control("POST", "/_fake/time/advance", R"({"seconds":601})").status, 200);
  // The sweep at +600 found the default-lifespan queue idle for 600 s.
  EXPECT_FALSE(server_->Queue(idle).has_value());
  ASSERT_TRUE(server_->Queue(kept).has_value());
  Reply time = Control("GET", "/_fake/time");
  EXPECT_NEAR(time.json["now"].GetDouble(), 1'700'000'601, 1e-3);
  Reply dropped = Control("POST", "/_fake/queues/drop_all");
  EXPECT_EQ(dropped.Int("dropped"), 1);
  EXPECT_EQ(Get(kept, -1).Str("code"), "BAD_EVENT_QUEUE_ID");
}

TEST_F(FakeZulipTest, ControlInterfaceServesTheGroundTruthOfLiveAndDroppedQueues) {
  std::string queue_id = Register();
  Push(queue_id, R"({"type":"a"})");
  Push(queue_id, R"({"type":"b"})");
  ASSERT_THAT(server_->DropQueue(queue_id), IsOk());
  Reply truth = Control("GET", "/_fake/ground_truth?queue_id=" + queue_id);
  EXPECT_EQ(truth.status, 200);
  EXPECT_EQ(truth.body, "{\"queue_id\":\"" + queue_id + R"(","id":0,"event":{"type":"a","id":0}})" +
                            "\n{\"queue_id\":\"" + queue_id +
                            R"(","id":1,"event":{"type":"b","id":1}})" + "\n");
  EXPECT_EQ(Control("GET", "/_fake/ground_truth?queue_id=never").status, 404);
}

}  // namespace
}  // namespace zb::fake_zulip
