// Part 2 of the fake (issue 5): bulk emission, fault injection and server restarts, over real
// sockets. Time is frozen (scale 0), so no heartbeat or GC interferes.
#include <curl/curl.h>

#include <chrono>
#include <future>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/fake_zulip/fake_zulip_server.h"
#include "tests/test_support.h"

namespace zb::fake_zulip {
namespace {

using ::testing::HasSubstr;
using ::zb::testing::IsOk;
using ::zb::testing::WaitFor;

constexpr char kBot[] = "bot@example.com";
constexpr char kBotKey[] = "abcdefghijklmnopqrstuvwxyz012345";

struct Answer {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::string content_type;
  std::string retry_after;
};

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t Header(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  if (line.rfind("Retry-After:", 0) == 0) {
    *static_cast<std::string*>(out) = line.substr(13, line.find_first_of("\r\n") - 13);
  }
  return size * n;
}

// `body` is a form for /api/, JSON for /_fake/; empty with GET.
Answer Request(const std::string& url, const std::string& method, const std::string& body = "") {
  Answer answer;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  std::string auth = std::string(kBot) + ":" + kBotKey;
  curl_easy_setopt(curl, CURLOPT_USERPWD, auth.c_str());
  if (!body.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &answer.retry_after);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  answer.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  char* type = nullptr;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
  if (type) answer.content_type = type;
  curl_easy_cleanup(curl);
  return answer;
}

rapidjson::Document Json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  return doc;
}

class FakeZulipPart2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeZulipOptions options;
    options.time_scale = 0;
    options.start_time = 1'700'000'000;
    auto server = FakeZulipServer::Start(options);
    ASSERT_THAT(server, IsOk());
    server_ = std::move(*server);
    ASSERT_THAT(server_->AddUser({.email = kBot, .api_key = kBotKey}), IsOk());
  }

  std::string Url(const std::string& path) { return server_->url() + path; }

  std::string Register(const std::string& event_types = R"(["message","restart"])") {
    Answer a = Request(Url("/api/v1/register"), "POST", "event_types=" + event_types);
    rapidjson::Document doc = Json(a.body);
    if (!doc.IsObject() || !doc.HasMember("queue_id")) return "<register failed: " + a.body + ">";
    return doc["queue_id"].GetString();
  }

  Answer Events(const std::string& queue_id, int64_t last_event_id, bool block = false) {
    return Request(Url("/api/v1/events?queue_id=" + queue_id + "&last_event_id=" +
                       std::to_string(last_event_id) + (block ? "" : "&dont_block=true")),
                   "GET");
  }

  Answer Control(const std::string& path, const std::string& json) {
    return Request(Url(path), "POST", json);
  }

  std::unique_ptr<FakeZulipServer> server_;
};

TEST_F(FakeZulipPart2Test, EmitPushesManyFreshMessagesInOneRequest) {
  std::string queue = Register();
  Answer emit = Control("/_fake/emit", R"({"queue_id":")" + queue +
                                           R"(","type":"message","count":1000,"unicode":true})");
  ASSERT_EQ(emit.status, 200) << emit.body;
  EXPECT_THAT(emit.body, HasSubstr(R"("events":1000,"deliveries":1000)"));
  rapidjson::Document doc = Json(Events(queue, -1).body);
  ASSERT_TRUE(doc.IsObject() && doc["events"].IsArray());
  const auto& events = doc["events"].GetArray();
  ASSERT_EQ(events.Size(), 1000u);
  for (rapidjson::SizeType i = 0; i < events.Size(); ++i) {
    EXPECT_EQ(events[i]["id"].GetInt64(), static_cast<int64_t>(i));
    // Realm-wide message ids, increasing, one per message.
    EXPECT_EQ(events[i]["message"]["id"].GetInt64(), static_cast<int64_t>(i) + 1);
  }
  EXPECT_THAT(std::string(events[0]["message"]["content"].GetString()), HasSubstr("日本語"));
}

TEST_F(FakeZulipPart2Test, EmitOfAGivenEventGoesOnlyToTheUsersQueuesThatAcceptIt) {
  std::string messages = Register(R"(["message"])");
  std::string typing = Register(R"(["typing"])");
  Answer emit = Control("/_fake/emit", R"({"email":"bot@example.com","count":3,)"
                                       R"("event":{"type":"typing","op":"start"}})");
  ASSERT_EQ(emit.status, 200) << emit.body;
  EXPECT_THAT(emit.body, HasSubstr(R"("events":3,"deliveries":3)"));
  EXPECT_EQ(server_->Queue(typing)->queued, 3u);
  EXPECT_EQ(server_->Queue(messages)->queued, 0u);
}

TEST_F(FakeZulipPart2Test, EmitRefusesAnUnknownTypeAndAnUnknownQueue) {
  std::string queue = Register();
  EXPECT_EQ(Control("/_fake/emit", R"({"queue_id":")" + queue + R"(","type":"nonsense"})").status,
            400);
  EXPECT_EQ(Control("/_fake/emit", R"({"queue_id":"nope","type":"message"})").status, 404);
}

TEST_F(FakeZulipPart2Test, LivelyEmissionMixesEventTypes) {
  std::string queue = Register("null");
  ASSERT_EQ(Control("/_fake/emit", R"({"queue_id":")" + queue + R"(","type":"lively","count":400})")
                .status,
            200);
  rapidjson::Document doc = Json(Events(queue, -1).body);
  ASSERT_TRUE(doc.IsObject() && doc["events"].IsArray());
  std::set<std::string> types;
  for (const auto& e : doc["events"].GetArray()) types.insert(e["type"].GetString());
  EXPECT_TRUE(types.count("message") && types.count("reaction") && types.count("typing") &&
              types.count("presence"))
      << types.size();
}

TEST_F(FakeZulipPart2Test, EmitAtASteadyRateDeliversTheCountOverTime) {
  std::string queue = Register();
  Answer start = Control(
      "/_fake/emit", R"({"queue_id":")" + queue + R"(","type":"message","count":50,"rate":1000})");
  ASSERT_EQ(start.status, 200) << start.body;
  EXPECT_THAT(start.body, HasSubstr(R"("started":true,"count":50)"));
  EXPECT_TRUE(
      WaitFor([&] { return server_->Queue(queue)->queued == 50; }, std::chrono::seconds(20)));
  EXPECT_EQ(Control("/_fake/emit", R"({"queue_id":"nope","type":"message","rate":10})").status,
            404);
}

TEST_F(FakeZulipPart2Test, GroundTruthPerUserCoversTheirDroppedQueuesAndNoOneElses) {
  ASSERT_THAT(server_->AddUser(
                  {.email = "other@example.com", .api_key = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"}),
              IsOk());
  std::string first = Register();
  ASSERT_EQ(Control("/_fake/emit", R"({"queue_id":")" + first + R"(","type":"message","count":2})")
                .status,
            200);
  ASSERT_EQ(Control("/_fake/crash", "{}").status, 200);
  std::string second = Register();
  ASSERT_EQ(Control("/_fake/emit", R"({"queue_id":")" + second + R"(","type":"typing"})").status,
            200);
  Answer truth = Request(Url("/_fake/ground_truth?email=BOT@example.com"), "GET");
  ASSERT_EQ(truth.status, 200);
  std::vector<std::string> lines;
  for (size_t start = 0, end; (end = truth.body.find('\n', start)) != std::string::npos;
       start = end + 1) {
    lines.push_back(truth.body.substr(start, end - start));
  }
  ASSERT_EQ(lines.size(), 3u) << truth.body;
  EXPECT_THAT(lines[0], HasSubstr(first));
  EXPECT_THAT(lines[2], HasSubstr(second));
  EXPECT_THAT(lines[2], HasSubstr(R"("type":"typing")"));
  EXPECT_EQ(Request(Url("/_fake/ground_truth?email=other@example.com"), "GET").body, "");
}

TEST_F(FakeZulipPart2Test, A502FaultAnswersWithNginxsHtmlPageForTheNextRequestsOnly) {
  std::string queue = Register();
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"502","count":2})").status, 200);
  for (int i = 0; i < 2; ++i) {
    Answer a = Events(queue, -1);
    EXPECT_EQ(a.status, 502);
    EXPECT_THAT(a.body, HasSubstr("<center>nginx</center>"));
    EXPECT_THAT(a.content_type, HasSubstr("text/html"));
  }
  EXPECT_EQ(Events(queue, -1).status, 200);
}

TEST_F(FakeZulipPart2Test, A500FaultAnswersWithAJsonError) {
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"500","count":1})").status, 200);
  Answer a = Request(Url("/api/v1/register"), "POST", "event_types=[\"message\"]");
  EXPECT_EQ(a.status, 500);
  EXPECT_THAT(a.body, HasSubstr(R"("result":"error")"));
}

TEST_F(FakeZulipPart2Test, A429FaultCarriesRetryAfter) {
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"429","count":1,"delay_secs":2.5})").status, 200);
  Answer a = Request(Url("/api/v1/register"), "POST", "event_types=[\"message\"]");
  EXPECT_EQ(a.status, 429);
  EXPECT_THAT(a.body, HasSubstr(R"("code":"RATE_LIMIT_HIT","retry-after":2.5)"));
  EXPECT_EQ(a.retry_after, "2.5");
}

TEST_F(FakeZulipPart2Test, AFaultWithProbabilityZeroNeverFiresAndPathsAreMatched) {
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"500","probability":0})").status, 200);
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"502","path":"/api/v1/events"})").status, 200);
  std::string queue = Register();  // neither fires on /register
  EXPECT_EQ(queue.size(), 36u) << queue;
  EXPECT_EQ(Events(queue, -1).status, 502);
  ASSERT_EQ(Control("/_fake/faults/clear", "{}").status, 200);
  EXPECT_EQ(Events(queue, -1).status, 200);
}

TEST_F(FakeZulipPart2Test, ATruncatedJsonFaultCutsTheBodyInHalf) {
  std::string queue = Register();
  ASSERT_THAT(server_->PushEventToQueue(queue, R"({"type":"message","message":{"id":1}})"), IsOk());
  std::string whole = Events(queue, -1).body;
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"truncated_json","count":1})").status, 200);
  Answer a = Events(queue, -1);
  EXPECT_EQ(a.code, CURLE_OK);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, whole.substr(0, whole.size() / 2));
  EXPECT_TRUE(Json(a.body).HasParseError());
}

TEST_F(FakeZulipPart2Test, AResetFaultBreaksTheConnectionWithAnRst) {
  std::string queue = Register();
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"reset","count":1})").status, 200);
  Answer a = Events(queue, -1);
  EXPECT_EQ(a.code, CURLE_RECV_ERROR) << curl_easy_strerror(a.code);
  EXPECT_EQ(Events(queue, -1).status, 200);  // the queue is untouched
}

TEST_F(FakeZulipPart2Test, ACloseMidBodyFaultSendsHalfTheAnnouncedBody) {
  std::string queue = Register();
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"close_mid_body","count":1})").status, 200);
  Answer a = Events(queue, -1);
  EXPECT_EQ(a.code, CURLE_PARTIAL_FILE) << curl_easy_strerror(a.code);
  EXPECT_EQ(a.status, 200);
}

TEST_F(FakeZulipPart2Test, AFaultOnAParkedLongPollSpoilsItsLaterAnswer) {
  std::string queue = Register();
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"close_mid_body","count":1})").status, 200);
  auto poll = std::async(std::launch::async, [&] { return Events(queue, -1, true); });
  ASSERT_TRUE(WaitFor([&] { return server_->parked_polls() == 1; }, std::chrono::seconds(10)));
  ASSERT_THAT(server_->PushEventToQueue(queue, R"({"type":"message","message":{"id":1}})"), IsOk());
  Answer a = poll.get();
  EXPECT_EQ(a.code, CURLE_PARTIAL_FILE) << curl_easy_strerror(a.code);
}

TEST_F(FakeZulipPart2Test, ASlowFaultStillAnswersCorrectly) {
  std::string queue = Register();
  ASSERT_EQ(Control("/_fake/faults", R"({"kind":"slow","count":1,"delay_secs":0.2})").status, 200);
  Answer a = Events(queue, -1);
  EXPECT_EQ(a.status, 200);
  EXPECT_THAT(a.body, HasSubstr(R"("result":"success")"));
}

TEST_F(FakeZulipPart2Test, ARestartBreaksParkedPollsKeepsQueuesAndSendsARestartEvent) {
  std::string queue = Register();
  auto poll = std::async(std::launch::async, [&] { return Events(queue, -1, true); });
  ASSERT_TRUE(WaitFor([&] { return server_->parked_polls() == 1; }, std::chrono::seconds(10)));
  server_->AdvanceTime(5);
  Answer restart = Control("/_fake/restart", "{}");
  ASSERT_EQ(restart.status, 200) << restart.body;
  EXPECT_THAT(restart.body, HasSubstr(R"("broken_polls":1,"server_generation":1700000005)"));
  Answer broken = poll.get();
  EXPECT_EQ(broken.code, CURLE_GOT_NOTHING) << curl_easy_strerror(broken.code);
  rapidjson::Document doc = Json(Events(queue, -1).body);
  ASSERT_TRUE(doc.IsObject() && doc["events"].IsArray() && doc["events"].Size() == 1)
      << Events(queue, -1).body;
  const auto& event = doc["events"][0];
  EXPECT_EQ(std::string(event["type"].GetString()), "restart");
  EXPECT_EQ(event["server_generation"].GetInt64(), 1700000005);
  EXPECT_EQ(event["zulip_feature_level"].GetInt(), 372);
}

TEST_F(FakeZulipPart2Test, ARestartSendsNoRestartEventToQueuesThatDoNotWantIt) {
  std::string queue = Register(R"(["message"])");
  ASSERT_EQ(server_->Restart(true), 0u);
  EXPECT_EQ(server_->Queue(queue)->queued, 0u);
}

TEST_F(FakeZulipPart2Test, ACrashLosesEveryQueue) {
  std::string queue = Register();
  ASSERT_EQ(Control("/_fake/crash", "{}").status, 200);
  Answer a = Events(queue, -1);
  EXPECT_EQ(a.status, 400);
  EXPECT_THAT(a.body, HasSubstr("BAD_EVENT_QUEUE_ID"));
}

}  // namespace
}  // namespace zb::fake_zulip

namespace zb::fake_zulip {
namespace {

TEST(EventFactory, AMadeMessageIsWhatParsingItsJsonGives) {
  EventFactory fast(7), slow(7);
  EventFactoryOptions options;
  options.unicode = true;
  options.content_bytes = 2000;
  EventInput made = fast.MakeMessage(options);
  StatusOr<std::string> json = slow.Make("message", options);
  ASSERT_THAT(json, IsOk());
  StatusOr<EventInput> parsed = ParseEvent(*json);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(made.body, parsed->body);
  EXPECT_EQ(made.type, parsed->type);
  EXPECT_EQ(made.full_type, parsed->full_type);
  EXPECT_EQ(made.message_type, parsed->message_type);
  EXPECT_EQ(made.stream_name, parsed->stream_name);
  EXPECT_EQ(made.topic, parsed->topic);
  EXPECT_EQ(made.sender_email, parsed->sender_email);
  EXPECT_EQ(made.flags, parsed->flags);
  EXPECT_GE(made.body.size(), 2000u);
}

TEST(EventFactory, MessagesGetIncreasingRealmWideIdsAndOtherEventsReferToThem) {
  EventFactory factory;
  EventFactoryOptions options;
  for (int i = 0; i < 3; ++i) ASSERT_THAT(factory.Make("message", options), IsOk());
  EXPECT_EQ(factory.next_message_id(), 4);
  for (const std::string& type : EventFactory::Types()) {
    StatusOr<std::string> json = factory.Make(type, options);
    ASSERT_THAT(json, IsOk()) << type;
    EXPECT_THAT(ParseEvent(*json), IsOk()) << *json;
  }
  EXPECT_FALSE(factory.Make("no_such_type", options).ok());
}

}  // namespace
}  // namespace zb::fake_zulip
