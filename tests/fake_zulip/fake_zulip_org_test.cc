// Part 2 of the fake (issue 5), the organisation: channels, subscriptions, direct messages,
// message delivery with Zulip's flags, GET /api/v1/messages, the message ground truth and
// dropping queues by age. Over real sockets, time frozen (scale 0).
#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "tests/fake_zulip/fake_zulip_server.h"
#include "tests/test_support.h"

namespace zb::fake_zulip {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::zb::testing::IsOk;
using ::zb::testing::WaitFor;

struct Login {
  std::string email;
  std::string key;
};
const Login kBot{"bot@example.com", "abcdefghijklmnopqrstuvwxyz012345"};
const Login kOther{"other@example.com", "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"};
const Login kIago{"iago@zulip.com", "iago0000iago0000iago0000iago0000"};

struct Answer {
  long status = 0;
  std::string body;
};

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

Answer Request(const std::string& url, const std::string& method, const Login& login,
               const std::string& body = "") {
  Answer answer;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  std::string auth = login.email + ":" + login.key;
  curl_easy_setopt(curl, CURLOPT_USERPWD, auth.c_str());
  if (!body.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_easy_cleanup(curl);
  return answer;
}

std::string Escape(const std::string& text) {
  CURL* curl = curl_easy_init();
  char* escaped = curl_easy_escape(curl, text.c_str(), static_cast<int>(text.size()));
  std::string out = escaped;
  curl_free(escaped);
  curl_easy_cleanup(curl);
  return out;
}

rapidjson::Document Json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  return doc;
}

std::string Text(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

class FakeZulipOrgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeZulipOptions options;
    options.time_scale = 0;
    options.start_time = 1'700'000'000;
    auto server = FakeZulipServer::Start(options);
    ASSERT_THAT(server, IsOk());
    server_ = std::move(*server);
    ASSERT_THAT(server_->AddUser({.email = kBot.email, .api_key = kBot.key}), IsOk());
    ASSERT_THAT(server_->AddUser({.email = kOther.email, .api_key = kOther.key, .is_bot = false}),
                IsOk());
  }

  std::string Url(const std::string& path) { return server_->url() + path; }

  // Registers a queue for `login` with extra form fields; returns its id.
  std::string Register(const Login& login, const std::string& form = "") {
    Answer a =
        Request(Url("/api/v1/register"), "POST", login,
                "event_types=" + Escape(R"(["message"])") + (form.empty() ? "" : "&") + form);
    rapidjson::Document doc = Json(a.body);
    if (!doc.IsObject() || !doc.HasMember("queue_id")) return "<register failed: " + a.body + ">";
    return doc["queue_id"].GetString();
  }

  // The events queued for `queue_id` (a GET with dont_block).
  rapidjson::Document Events(const Login& login, const std::string& queue_id) {
    Answer a = Request(Url("/api/v1/events?dont_block=true&last_event_id=-1&queue_id=" + queue_id),
                       "GET", login);
    return Json(a.body);
  }

  Answer Control(const std::string& path, const std::string& json) {
    return Request(Url(path), "POST", kBot, json);
  }

  Answer Send(const std::string& json) { return Control("/_fake/messages", json); }

  Answer GetMessages(const Login& login, const std::string& query) {
    return Request(Url("/api/v1/messages?" + query), "GET", login);
  }

  static std::vector<int64_t> Ids(const rapidjson::Document& doc) {
    std::vector<int64_t> ids;
    if (!doc.IsObject() || !doc.HasMember("messages")) return {-1};
    for (const auto& m : doc["messages"].GetArray()) ids.push_back(m["id"].GetInt64());
    return ids;
  }

  std::unique_ptr<FakeZulipServer> server_;
};

TEST_F(FakeZulipOrgTest, AChannelMessageReachesEverySubscriberWithTheirOwnFlags) {
  std::string bot = Register(kBot);
  std::string other = Register(kOther);
  std::string iago = Register(kIago);
  Answer sent = Send(
      R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"lunch","content":"hi"})");
  ASSERT_EQ(sent.status, 200) << sent.body;
  EXPECT_THAT(sent.body, HasSubstr(R"("first_id":1,"last_id":1,"deliveries":3)"));
  std::vector<std::tuple<Login, std::string, std::string>> expected = {
      {kBot, bot, "[]"}, {kOther, other, "[]"}, {kIago, iago, R"(["read"])"}};
  for (const auto& [login, queue, flags] : expected) {
    rapidjson::Document doc = Events(login, queue);
    ASSERT_EQ(doc["events"].Size(), 1u) << login.email;
    const auto& event = doc["events"][0];
    EXPECT_EQ(Text(event["flags"]), flags) << login.email;
    EXPECT_EQ(event["message"]["id"].GetInt64(), 1);
    EXPECT_STREQ(event["message"]["display_recipient"].GetString(), "Verona");
    EXPECT_EQ(event["message"]["stream_id"].GetInt64(), 5);
    EXPECT_STREQ(event["message"]["subject"].GetString(), "lunch");
    EXPECT_STREQ(event["message"]["sender_email"].GetString(), "iago@zulip.com");
    EXPECT_EQ(event["message"]["sender_id"].GetInt64(), 11);
    // Registered with Zulip's defaults: Markdown, and no avatar URL for gravatar users.
    EXPECT_STREQ(event["message"]["content"].GetString(), "hi");
    EXPECT_TRUE(event["message"]["avatar_url"].IsNull());
  }
  // Ids are realm-wide: the next message is 2, whoever sends it.
  EXPECT_THAT(Send(R"({"sender_email":"bot@example.com","channel":"Denmark","topic":"t"})").body,
              HasSubstr(R"("first_id":2)"));
}

TEST_F(FakeZulipOrgTest, APrivateChannelsMessagesReachOnlyItsSubscribers) {
  Answer created =
      Control("/_fake/channels",
              R"({"name":"secret","invite_only":true,"subscribers":["bot@example.com"]})");
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_THAT(created.body, HasSubstr(R"("stream_id":)"));
  std::string bot = Register(kBot);
  std::string other = Register(kOther, "all_public_streams=true");
  ASSERT_EQ(Send(R"({"sender_email":"bot@example.com","channel":"secret","topic":"t"})").status,
            200);
  EXPECT_EQ(Events(kBot, bot)["events"].Size(), 1u);
  EXPECT_EQ(Events(kOther, other)["events"].Size(), 0u);
}

TEST_F(FakeZulipOrgTest, PublicStreamQueuesSeeChannelsTheirUserIsNotSubscribedToWithNoFlags) {
  ASSERT_EQ(Control("/_fake/subscriptions",
                    R"({"email":"other@example.com","channel":"Verona","subscribe":false})")
                .status,
            200);
  std::string all_public = Register(kOther, "all_public_streams=true");
  std::string narrowed = Register(kOther, "narrow=" + Escape(R"([["stream","Verona"]])"));
  std::string plain = Register(kOther);
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"t"})").status,
            200);
  for (const std::string& queue : {all_public, narrowed}) {
    rapidjson::Document doc = Events(kOther, queue);
    ASSERT_EQ(doc["events"].Size(), 1u);
    EXPECT_EQ(Text(doc["events"][0]["flags"]), "[]");
  }
  EXPECT_EQ(Events(kOther, plain)["events"].Size(), 0u);
  // A narrowed queue still filters: another channel's message does not match it.
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Denmark","topic":"t"})").status,
            200);
  EXPECT_EQ(Events(kOther, narrowed)["events"].Size(), 1u);
  EXPECT_EQ(Events(kOther, plain)["events"].Size(), 1u);
}

TEST_F(FakeZulipOrgTest, ADirectMessageReachesOnlyItsParticipants) {
  std::string bot = Register(kBot);
  std::string other = Register(kOther, "all_public_streams=true");
  std::string iago = Register(kIago);
  Answer sent =
      Send(R"({"sender_email":"iago@zulip.com","to":["bot@example.com"],"content":"psst"})");
  ASSERT_EQ(sent.status, 200) << sent.body;
  EXPECT_THAT(sent.body, HasSubstr(R"("deliveries":2)"));
  rapidjson::Document doc = Events(kBot, bot);
  ASSERT_EQ(doc["events"].Size(), 1u);
  const auto& message = doc["events"][0]["message"];
  EXPECT_STREQ(message["type"].GetString(), "private");
  ASSERT_EQ(message["display_recipient"].Size(), 2u);
  EXPECT_STREQ(message["display_recipient"][0]["email"].GetString(), "bot@example.com");
  EXPECT_STREQ(message["display_recipient"][1]["email"].GetString(), "iago@zulip.com");
  EXPECT_EQ(Text(Events(kIago, iago)["events"][0]["flags"]), R"(["read"])");
  EXPECT_EQ(Events(kOther, other)["events"].Size(), 0u);
}

TEST_F(FakeZulipOrgTest, EventTypesAndNarrowsDecideWhichQueuesTakeAMessage) {
  Answer typing =
      Request(Url("/api/v1/register"), "POST", kBot, "event_types=" + Escape(R"(["typing"])"));
  std::string typing_queue = Json(typing.body)["queue_id"].GetString();
  std::string topic = Register(kBot, "narrow=" + Escape(R"([["topic","dinner"]])"));
  std::string dms = Register(kBot, "narrow=" + Escape(R"([["is","dm"]])"));
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"lunch"})").status,
            200);
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"dinner"})").status,
            200);
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","to":["bot@example.com"]})").status, 200);
  EXPECT_EQ(Events(kBot, typing_queue)["events"].Size(), 0u);
  rapidjson::Document by_topic = Events(kBot, topic);
  ASSERT_EQ(by_topic["events"].Size(), 1u);
  EXPECT_EQ(by_topic["events"][0]["message"]["id"].GetInt64(), 2);
  rapidjson::Document by_dm = Events(kBot, dms);
  ASSERT_EQ(by_dm["events"].Size(), 1u);
  EXPECT_EQ(by_dm["events"][0]["message"]["id"].GetInt64(), 3);
}

TEST_F(FakeZulipOrgTest, ApplyMarkdownAndClientGravatarShapeEachQueuesCopy) {
  std::string html = Register(kBot, "apply_markdown=true&client_gravatar=false");
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"t",)"
                 R"("content":"a < b"})")
                .status,
            200);
  rapidjson::Document doc = Events(kBot, html);
  const auto& message = doc["events"][0]["message"];
  EXPECT_STREQ(message["content"].GetString(), "<p>a &lt; b</p>");
  EXPECT_STREQ(message["content_type"].GetString(), "text/html");
  ASSERT_TRUE(message["avatar_url"].IsString());
  EXPECT_THAT(std::string(message["avatar_url"].GetString()), HasSubstr("https://"));
}

TEST_F(FakeZulipOrgTest, GetMessagesPagesForwardFromAnAnchorItLeavesOut) {
  ASSERT_EQ(
      Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"t","count":10})").status,
      200);
  rapidjson::Document page =
      Json(GetMessages(kBot, "anchor=3&include_anchor=false&num_before=0&num_after=4").body);
  EXPECT_THAT(Ids(page), ElementsAre(4, 5, 6, 7));
  EXPECT_FALSE(page["found_anchor"].GetBool());
  EXPECT_FALSE(page["found_newest"].GetBool());
  EXPECT_FALSE(page["history_limited"].GetBool());
  rapidjson::Document last =
      Json(GetMessages(kBot, "anchor=7&include_anchor=false&num_before=0&num_after=1000").body);
  EXPECT_THAT(Ids(last), ElementsAre(8, 9, 10));
  EXPECT_TRUE(last["found_newest"].GetBool());
  rapidjson::Document with_anchor =
      Json(GetMessages(kBot, "anchor=5&num_before=1&num_after=1").body);
  EXPECT_THAT(Ids(with_anchor), ElementsAre(4, 5, 6));
  EXPECT_TRUE(with_anchor["found_anchor"].GetBool());
}

TEST_F(FakeZulipOrgTest, GetMessagesAnchorsAtTheNewestAndTheOldest) {
  ASSERT_EQ(
      Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"t","count":5})").status,
      200);
  rapidjson::Document newest =
      Json(GetMessages(kBot, "anchor=newest&num_before=2&num_after=0").body);
  EXPECT_THAT(Ids(newest), ElementsAre(4, 5));
  EXPECT_TRUE(newest["found_newest"].GetBool());
  EXPECT_FALSE(newest["found_oldest"].GetBool());
  rapidjson::Document oldest =
      Json(GetMessages(kBot, "anchor=oldest&num_before=0&num_after=2").body);
  EXPECT_THAT(Ids(oldest), ElementsAre(1, 2));
  EXPECT_TRUE(oldest["found_oldest"].GetBool());
  EXPECT_FALSE(oldest["found_newest"].GetBool());
  rapidjson::Document all = Json(GetMessages(kBot, "anchor=oldest&num_before=0&num_after=9").body);
  EXPECT_TRUE(all["found_newest"].GetBool());
  // A numeric anchor is clamped: below 0 it is the oldest.
  rapidjson::Document negative = Json(GetMessages(kBot, "anchor=-5&num_before=0&num_after=1").body);
  EXPECT_THAT(Ids(negative), ElementsAre(1));
  EXPECT_TRUE(negative["found_oldest"].GetBool());
  EXPECT_EQ(negative["anchor"].GetInt64(), 0);
}

TEST_F(FakeZulipOrgTest, GetMessagesRefusesTooManyAndAnAnchorLeftOutInTheMiddle) {
  Answer too_many = GetMessages(kBot, "anchor=newest&num_before=5000&num_after=1");
  EXPECT_EQ(too_many.status, 400);
  EXPECT_THAT(too_many.body, HasSubstr("Too many messages requested (maximum 5000)."));
  EXPECT_EQ(GetMessages(kBot, "anchor=newest&num_before=5000&num_after=0").status, 200);
  Answer middle = GetMessages(kBot, "anchor=3&include_anchor=false&num_before=1&num_after=1");
  EXPECT_EQ(middle.status, 400);
  EXPECT_THAT(middle.body, HasSubstr("The anchor can only be excluded at an end of the range"));
  Answer no_anchor = GetMessages(kBot, "num_before=1&num_after=1");
  EXPECT_EQ(no_anchor.status, 400);
  EXPECT_THAT(no_anchor.body, HasSubstr("Missing 'anchor' argument"));
}

TEST_F(FakeZulipOrgTest, GetMessagesWithoutAChannelOperatorSearchesOnlyTheUsersOwnHistory) {
  ASSERT_EQ(Control("/_fake/subscriptions",
                    R"({"email":"other@example.com","channel":"Verona","subscribe":false})")
                .status,
            200);
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"t"})").status,
            200);
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Denmark","topic":"t"})").status,
            200);
  std::string q = "anchor=oldest&num_before=0&num_after=100&narrow=";
  EXPECT_THAT(Ids(Json(GetMessages(kOther, q + "%5B%5D").body)), ElementsAre(2));
  rapidjson::Document pub =
      Json(GetMessages(kOther, q + Escape(R"([{"operator":"channels","operand":"public"}])")).body);
  EXPECT_THAT(Ids(pub), ElementsAre(1, 2));
  EXPECT_EQ(Text(pub["messages"][0]["flags"]), R"(["read","historical"])");
  EXPECT_EQ(Text(pub["messages"][1]["flags"]), "[]");
  // The legacy [operator, operand] form.
  EXPECT_THAT(Ids(Json(GetMessages(kOther, q + Escape(R"([["stream","Verona"]])")).body)),
              ElementsAre(1));
  EXPECT_EQ(Text(Json(GetMessages(kIago, q + "%5B%5D").body)["messages"][0]["flags"]),
            R"(["read"])");
}

TEST_F(FakeZulipOrgTest, GetMessagesNarrowsByTopicSenderAndDirectMessages) {
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"a"})").status,
            200);
  ASSERT_EQ(Send(R"({"sender_email":"other@example.com","channel":"Verona","topic":"b"})").status,
            200);
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","to":["bot@example.com"]})").status, 200);
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","to":["other@example.com"]})").status, 200);
  std::string q = "anchor=newest&num_before=100&num_after=0&narrow=";
  EXPECT_THAT(
      Ids(Json(GetMessages(kBot, q + Escape(R"([["channel","Verona"],["topic","b"]])")).body)),
      ElementsAre(2));
  EXPECT_THAT(
      Ids(Json(
          GetMessages(kBot, q + Escape(R"([{"operator":"sender","operand":"iago@zulip.com"}])"))
              .body)),
      ElementsAre(1, 3));
  EXPECT_THAT(Ids(Json(GetMessages(kBot, q + Escape(R"([["is","dm"]])")).body)), ElementsAre(3));
  EXPECT_THAT(Ids(Json(GetMessages(kBot, q + Escape(R"([{"operator":"is","operand":"dm",)"
                                                    R"("negated":true}])"))
                           .body)),
              ElementsAre(1, 2));
}

TEST_F(FakeZulipOrgTest, GetMessagesRendersHtmlUnlessAskedForMarkdown) {
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"t",)"
                 R"("content":"x & y"})")
                .status,
            200);
  std::string q = "anchor=newest&num_before=1&num_after=0";
  rapidjson::Document html = Json(GetMessages(kBot, q).body);
  EXPECT_STREQ(html["messages"][0]["content"].GetString(), "<p>x &amp; y</p>");
  EXPECT_TRUE(html["messages"][0]["avatar_url"].IsNull());
  rapidjson::Document raw =
      Json(GetMessages(kBot, q + "&apply_markdown=false&client_gravatar=false").body);
  EXPECT_STREQ(raw["messages"][0]["content"].GetString(), "x & y");
  EXPECT_STREQ(raw["messages"][0]["content_type"].GetString(), "text/x-markdown");
  EXPECT_TRUE(raw["messages"][0]["avatar_url"].IsString());
}

TEST_F(FakeZulipOrgTest, APrivateChannelIsAnUnknownChannelToOutsiders) {
  ASSERT_EQ(Control("/_fake/channels",
                    R"({"name":"secret","invite_only":true,"subscribers":["bot@example.com"]})")
                .status,
            200);
  std::string q =
      "anchor=newest&num_before=1&num_after=0&narrow=" + Escape(R"([["channel","secret"]])");
  Answer outsider = GetMessages(kOther, q);
  EXPECT_EQ(outsider.status, 400);
  EXPECT_THAT(outsider.body, HasSubstr("Invalid narrow operator: unknown channel"));
  ASSERT_EQ(Send(R"({"sender_email":"bot@example.com","channel":"secret","topic":"t"})").status,
            200);
  // A late subscriber does not see what was said before they joined.
  ASSERT_EQ(
      Control("/_fake/subscriptions", R"({"email":"other@example.com","channel":"secret"})").status,
      200);
  ASSERT_EQ(Send(R"({"sender_email":"bot@example.com","channel":"secret","topic":"t"})").status,
            200);
  EXPECT_THAT(Ids(Json(GetMessages(kBot, q).body)), ElementsAre(2));
  std::string all =
      "anchor=oldest&num_before=0&num_after=10&narrow=" + Escape(R"([["channel","secret"]])");
  EXPECT_THAT(Ids(Json(GetMessages(kOther, all).body)), ElementsAre(2));
  EXPECT_THAT(Ids(Json(GetMessages(kBot, all).body)), ElementsAre(1, 2));
}

TEST_F(FakeZulipOrgTest, GetMessagesIsRateLimitedAndFaultsApplyToIt) {
  ASSERT_THAT(server_->SetRateLimit(kBot.email, "60:1"), IsOk());
  std::string q = "anchor=newest&num_before=1&num_after=0";
  EXPECT_EQ(GetMessages(kBot, q).status, 200);
  Answer limited = GetMessages(kBot, q);
  EXPECT_EQ(limited.status, 429);
  EXPECT_THAT(limited.body, HasSubstr("RATE_LIMIT_HIT"));
  server_->AddFault({.kind = FaultRule::Kind::k502, .count = 1, .path_prefix = "/api/v1/messages"});
  EXPECT_EQ(GetMessages(kOther, q).status, 502);
  EXPECT_EQ(GetMessages(kOther, q).status, 200);
}

TEST_F(FakeZulipOrgTest, EmittedMessagesGoToTheTargetAndIntoTheHistory) {
  std::string bot = Register(kBot);
  std::string other = Register(kOther);
  Answer emit = Control("/_fake/emit", R"({"queue_id":")" + bot +
                                           R"(","type":"message","count":3,"content_bytes":50})");
  ASSERT_EQ(emit.status, 200) << emit.body;
  EXPECT_EQ(Events(kBot, bot)["events"].Size(), 3u);
  EXPECT_EQ(Events(kOther, other)["events"].Size(), 0u);
  // Other is subscribed to Verona, so the messages are in their history too.
  EXPECT_THAT(Ids(Json(GetMessages(kOther, "anchor=oldest&num_before=0&num_after=10").body)),
              ElementsAre(1, 2, 3));
  EXPECT_EQ(Control("/_fake/emit", R"({"queue_id":")" + bot +
                                       R"(","type":"message","sender_email":"nobody@example.com"})")
                .status,
            400);
}

TEST_F(FakeZulipOrgTest, EmittedMessagesForAUserGoToThatUsersQueuesOnly) {
  std::string bot = Register(kBot);
  std::string other = Register(kOther);
  Answer emit = Control("/_fake/emit", R"({"email":"bot@example.com","type":"message","count":2})");
  ASSERT_EQ(emit.status, 200) << emit.body;
  EXPECT_THAT(emit.body, HasSubstr(R"("events":2,"deliveries":2)"));
  EXPECT_EQ(Events(kBot, bot)["events"].Size(), 2u);
  EXPECT_EQ(Events(kOther, other)["events"].Size(), 0u);
}

TEST_F(FakeZulipOrgTest, LivelyEmissionSendsItsMessagesThroughTheOrganisation) {
  std::string bot = Register(kBot, "event_types=null");
  ASSERT_EQ(
      Control("/_fake/emit", R"({"queue_id":")" + bot + R"(","type":"lively","count":300})").status,
      200);
  rapidjson::Document doc = Events(kBot, bot);
  std::vector<int64_t> delivered;
  for (const auto& event : doc["events"].GetArray()) {
    if (std::string(event["type"].GetString()) == "message") {
      delivered.push_back(event["message"]["id"].GetInt64());
    }
  }
  ASSERT_GT(delivered.size(), 50u);
  rapidjson::Document history =
      Json(GetMessages(kBot, "anchor=oldest&num_before=0&num_after=5000").body);
  EXPECT_EQ(Ids(history), delivered);
  std::string truth = server_->MessageGroundTruth();
  EXPECT_EQ(static_cast<size_t>(std::count(truth.begin(), truth.end(), '\n')), delivered.size());
}

TEST_F(FakeZulipOrgTest, FirstUnreadAnchorsAtTheOldestMessageReceivedFromSomeoneElse) {
  ASSERT_EQ(Send(R"({"sender_email":"bot@example.com","channel":"Verona","topic":"t"})").status,
            200);
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"t"})").status,
            200);
  rapidjson::Document doc =
      Json(GetMessages(kBot, "anchor=first_unread&num_before=0&num_after=0").body);
  EXPECT_THAT(Ids(doc), ElementsAre(2));
  EXPECT_TRUE(doc["found_anchor"].GetBool());
}

TEST_F(FakeZulipOrgTest, MessageGroundTruthHasEveryMessageWithItsRecipient) {
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"t"})").status,
            200);
  // The library's way, as an in-process test sends.
  StatusOr<SendMessageResult> sent =
      server_->SendMessages({.sender_email = "iago@zulip.com", .to = {"other@example.com"}});
  ASSERT_THAT(sent, IsOk());
  EXPECT_EQ(sent->first_id, 2);
  Answer truth = Request(Url("/_fake/messages/ground_truth"), "GET", kBot);
  ASSERT_EQ(truth.status, 200);
  std::vector<rapidjson::Document> lines;
  for (size_t start = 0, end; (end = truth.body.find('\n', start)) != std::string::npos;
       start = end + 1) {
    lines.push_back(Json(truth.body.substr(start, end - start)));
  }
  ASSERT_EQ(lines.size(), 2u) << truth.body;
  EXPECT_EQ(lines[0]["id"].GetInt64(), 1);
  EXPECT_STREQ(lines[0]["sender"].GetString(), "iago@zulip.com");
  EXPECT_STREQ(lines[0]["recipient"]["channel"].GetString(), "Verona");
  EXPECT_STREQ(lines[0]["recipient"]["topic"].GetString(), "t");
  EXPECT_EQ(lines[0]["event"]["message"]["id"].GetInt64(), 1);
  EXPECT_EQ(Text(lines[1]["recipient"]), R"({"dm":["other@example.com","iago@zulip.com"]})");
  EXPECT_EQ(Text(lines[1]["recipients"]), R"(["other@example.com","iago@zulip.com"])");
  EXPECT_EQ(server_->MessageGroundTruth(), truth.body);
}

TEST_F(FakeZulipOrgTest, RegisterReportsTheUsersNewestReceivedMessage) {
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","channel":"Verona","topic":"t"})").status,
            200);
  ASSERT_EQ(Send(R"({"sender_email":"iago@zulip.com","to":["other@example.com"]})").status, 200);
  Answer a =
      Request(Url("/api/v1/register"), "POST", kBot, "fetch_event_types=%5B%22message%22%5D");
  EXPECT_THAT(a.body, HasSubstr(R"("max_message_id":1)"));
}

TEST_F(FakeZulipOrgTest, DropOlderDropsQueuesByAgeHoweverBusy) {
  std::string old_queue = Register(kBot);
  server_->AdvanceTime(100);
  std::string young = Register(kBot);
  // A blocking poll on the old queue keeps it from being idle.
  auto poll = std::async(std::launch::async, [&] {
    return Request(Url("/api/v1/events?last_event_id=-1&queue_id=" + old_queue), "GET", kBot);
  });
  ASSERT_TRUE(WaitFor([&] { return server_->parked_polls() == 1; }, std::chrono::seconds(20)));
  EXPECT_EQ(Control("/_fake/queues/drop_idle", R"({"seconds":50})").body,
            R"({"result":"success","dropped":0})");
  EXPECT_EQ(Control("/_fake/queues/drop_older", R"({"seconds":50})").body,
            R"({"result":"success","dropped":1})");
  EXPECT_EQ(poll.get().status, 200);
  EXPECT_FALSE(server_->Queue(old_queue).has_value());
  EXPECT_TRUE(server_->Queue(young).has_value());
  EXPECT_EQ(server_->DropQueuesOlderThan(0), 1u);
}

TEST_F(FakeZulipOrgTest, ChannelsAndSubscriptionsChangeWithZulipsEvents) {
  auto register_for = [&](const Login& login) {
    Answer a = Request(Url("/api/v1/register"), "POST", login,
                       "event_types=" + Escape(R"(["stream","subscription"])"));
    return std::string(Json(a.body)["queue_id"].GetString());
  };
  auto types = [&](const Login& login, const std::string& queue) {
    std::vector<std::string> out;
    rapidjson::Document doc = Events(login, queue);
    for (const auto& e : doc["events"].GetArray()) {
      out.push_back(std::string(e["type"].GetString()) + "/" + e["op"].GetString());
    }
    return out;
  };
  std::string bot = register_for(kBot);
  std::string other = register_for(kOther);
  ASSERT_EQ(
      Control("/_fake/channels", R"({"name":"new","subscribers":["bot@example.com"]})").status,
      200);
  EXPECT_THAT(types(kBot, bot), ElementsAre("stream/create", "subscription/add"));
  EXPECT_THAT(types(kOther, other), ElementsAre("stream/create", "subscription/peer_add"));
  ASSERT_EQ(Control("/_fake/subscriptions",
                    R"({"email":"bot@example.com","channel":"new","subscribe":false})")
                .status,
            200);
  EXPECT_THAT(types(kBot, bot),
              ElementsAre("stream/create", "subscription/add", "subscription/remove"));
  EXPECT_THAT(types(kOther, other),
              ElementsAre("stream/create", "subscription/peer_add", "subscription/peer_remove"));
  // A private channel is news only to its subscribers.
  ASSERT_EQ(Control("/_fake/channels",
                    R"({"name":"hush","invite_only":true,"subscribers":["bot@example.com"]})")
                .status,
            200);
  EXPECT_EQ(types(kOther, other).size(), 3u);
  EXPECT_EQ(types(kBot, bot).size(), 5u);
}

TEST_F(FakeZulipOrgTest, ChannelsListsTheDefaultOrganisation) {
  Answer channels = Request(Url("/_fake/channels"), "GET", kBot);
  ASSERT_EQ(channels.status, 200);
  EXPECT_THAT(channels.body,
              HasSubstr(R"({"stream_id":5,"name":"Verona","invite_only":false,"subscribers":[)"
                        R"("bot@example.com","other@example.com","iago@zulip.com",)"));
  EXPECT_THAT(channels.body,
              HasSubstr(R"("name":"core team","invite_only":true,"subscribers":[])"));
  EXPECT_EQ(Control("/_fake/channels", R"({"name":"verona"})").status, 400);
  EXPECT_EQ(
      Control("/_fake/subscriptions", R"({"email":"bot@example.com","channel":"nope"})").status,
      404);
}

}  // namespace
}  // namespace zb::fake_zulip
