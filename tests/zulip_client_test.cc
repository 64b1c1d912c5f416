// ZulipClient: request building and answer classification against the scripted transport,
// then the cases that depend on real bytes on a socket (header parsing, a cut-off body)
// against an in-process cpp-httplib server through CurlTransport.
#include <httplib.h>

#include "daemon/zulip/zulip_client.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "daemon/config/zulip_site.h"
#include "daemon/zulip/curl_transport.h"
#include "tests/fakes/fake_http_transport.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;
using ::zb::testing::FakeHttpTransport;
using ::zb::testing::FakeResponse;
using ::zb::testing::IsOk;
using ::zb::testing::WaitFor;

ZulipClientOptions Options(std::string site = "chat.example.com") {
  ZulipClientOptions o;
  o.site = std::move(site);
  o.email = "bot@example.com";
  o.api_key = "KEY-0123456789";
  return o;
}

HttpResult Result(int status, std::string body, HttpResponseHead head = {}) {
  HttpResult r;
  r.head = std::move(head);
  r.head.status = status;
  r.body = std::move(body);
  return r;
}

TEST(ZulipClientTest, NormalisesTheSiteAsThePythonBindingsDo) {
  EXPECT_EQ(ZulipApiBaseUrl("chat.example.com"), "https://chat.example.com/api/");
  EXPECT_EQ(ZulipApiBaseUrl("chat.example.com/"), "https://chat.example.com/api/");
  EXPECT_EQ(ZulipApiBaseUrl("https://chat.example.com//"), "https://chat.example.com/api/");
  EXPECT_EQ(ZulipApiBaseUrl("http://10.0.0.1:9991"), "http://10.0.0.1:9991/api/");
  EXPECT_EQ(ZulipApiBaseUrl("localhost:9991"), "http://localhost:9991/api/");
  EXPECT_EQ(ZulipApiBaseUrl("https://x.zulipchat.com/api"), "https://x.zulipchat.com/api/");
  EXPECT_EQ(ZulipApiBaseUrl("https://x.zulipchat.com/api/"), "https://x.zulipchat.com/api/");
  EXPECT_EQ(ZulipApiBaseUrl("https://example.com/zulip"), "https://example.com/zulip/api/");
}

TEST(ZulipClientTest, SuccessIsOk) {
  ZulipOutcome o = ClassifyZulipResponse(ZulipEndpoint::kGetEvents, Result(200, ""));
  EXPECT_TRUE(o.ok());
  EXPECT_THAT(o.status, IsOk());
}

TEST(ZulipClientTest, Parks401WithTheServersMessage) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kRegister,
      Result(401, R"({"result":"error","msg":"Account is deactivated","code":"UNAUTHORIZED"})"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kUnauthenticated);
  EXPECT_TRUE(o.status.IsUnauthenticated());
  EXPECT_NE(o.status.message().find("Account is deactivated"), std::string::npos) << o.status;
  EXPECT_EQ(o.code, "UNAUTHORIZED");
  EXPECT_FALSE(o.status.IsRetryable());
}

TEST(ZulipClientTest, RateLimitTakesTheDecimalRetryAfterHeader) {
  HttpResponseHead head;
  head.retry_after = "28.706807374954224";
  head.ratelimit_remaining = "0";
  head.ratelimit_limit = "200";
  head.ratelimit_reset = "1735689660";
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kGetEvents,
      Result(
          429,
          R"({"result":"error","msg":"API usage exceeded rate limit","code":"RATE_LIMIT_HIT","retry-after":3.5})",
          head));
  EXPECT_EQ(o.kind, ZulipErrorKind::kRateLimited);
  EXPECT_TRUE(o.status.IsUnavailable());
  ASSERT_TRUE(o.retry_after_seconds);
  EXPECT_EQ(*o.retry_after_seconds, 28.706807374954224);
  EXPECT_EQ(o.rate_limit.remaining, 0);
  EXPECT_EQ(o.rate_limit.limit, 200);
  EXPECT_EQ(o.rate_limit.reset_unix_seconds, 1735689660.0);
}

TEST(ZulipClientTest, RateLimitFallsBackToTheBodysRetryAfter) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kRegister,
      Result(429,
             R"({"result":"error","code":"RATE_LIMIT_HIT","retry-after":28.706807374954224})"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kRateLimited);
  ASSERT_TRUE(o.retry_after_seconds);
  EXPECT_EQ(*o.retry_after_seconds, 28.706807374954224);
}

TEST(ZulipClientTest, RateLimitWithoutAWaitLeavesItToBackoff) {
  ZulipOutcome o = ClassifyZulipResponse(ZulipEndpoint::kGetEvents, Result(429, "Too many"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kRateLimited);
  EXPECT_FALSE(o.retry_after_seconds);
}

TEST(ZulipClientTest, ServerErrorsAndProxyPagesAreTransient) {
  for (int status : {500, 502, 503, 504}) {
    ZulipOutcome o = ClassifyZulipResponse(ZulipEndpoint::kGetEvents,
                                           Result(status, "<html>Bad Gateway</html>"));
    EXPECT_EQ(o.kind, ZulipErrorKind::kTransient) << status;
    EXPECT_TRUE(o.status.IsRetryable());
  }
  // A 4xx that is not Zulip's JSON (a proxy's page) is not Zulip's verdict either.
  ZulipOutcome o =
      ClassifyZulipResponse(ZulipEndpoint::kRegister, Result(404, "<html>Not Found</html>"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kTransient);
}

TEST(ZulipClientTest, TransportFailuresAreTransient) {
  for (TransportError e : {TransportError::kTimeout, TransportError::kReset,
                           TransportError::kTruncated, TransportError::kConnect}) {
    HttpResult r = Result(200, "");
    r.error = e;
    r.error_text = "boom";
    ZulipOutcome o = ClassifyZulipResponse(ZulipEndpoint::kGetEvents, r);
    EXPECT_EQ(o.kind, ZulipErrorKind::kTransient) << TransportErrorName(e);
    EXPECT_EQ(o.transport_error, e);
  }
}

TEST(ZulipClientTest, ReRegistersOnBadEventQueueId) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kGetEvents,
      Result(
          400,
          R"({"result":"error","msg":"Bad event queue ID: 1:2","code":"BAD_EVENT_QUEUE_ID","queue_id":"1:2"})"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kQueueLost);
  EXPECT_EQ(o.code, "BAD_EVENT_QUEUE_ID");
}

TEST(ZulipClientTest, QueueLostOnOldServersMessageWithoutCode) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kGetEvents,
      Result(400, R"({"result":"error","msg":"Bad event queue id: 1517975029:0"})"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kQueueLost);
}

TEST(ZulipClientTest, QueueLostWhenTheWatermarkWasAlreadyPruned) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kGetEvents,
      Result(
          400,
          R"({"result":"error","msg":"An event newer than 41 has already been pruned!","code":"BAD_REQUEST"})"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kQueueLost);
  EXPECT_TRUE(o.status.IsNotFound());
}

TEST(ZulipClientTest, QueueLostWhenTheWatermarkWasNotInTheQueue) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kGetEvents,
      Result(400,
             R"({"result":"error","msg":"Event 4 was not in this queue","code":"BAD_REQUEST"})"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kQueueLost);
}

TEST(ZulipClientTest, RegisterRefusedIsAConfigurationError) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kRegister,
      Result(
          400,
          R"({"result":"error","msg":"User not authorized for this query","code":"BAD_REQUEST"})"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kConfiguration);
  EXPECT_TRUE(o.status.IsInvalidArgument());
  EXPECT_NE(o.status.message().find("User not authorized for this query"), std::string::npos);
}

TEST(ZulipClientTest, OtherBadRequestOnEventsIsNotAQueueLoss) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kGetEvents,
      Result(
          400,
          R"({"result":"error","msg":"Missing 'last_event_id' argument","code":"BAD_REQUEST"})"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kBadRequest);
}

TEST(ZulipClientTest, StatusNeverCarriesTheApiKey) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kRegister, Result(401, R"({"result":"error","msg":"Invalid API key"})"));
  EXPECT_EQ(o.status.message().find("KEY-0123456789"), std::string::npos);
}

TEST(ZulipClientTest, RegisterSendsTheFieldsAndParsesTheAnswer) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::optional<ZulipReply<RegisterResult>> got;
  client.Register({{"event_types", R"(["message"])"}, {"queue_lifespan_secs", "86400"}},
                  [&](ZulipReply<RegisterResult> r) { got = std::move(r); });
  ASSERT_EQ(transport.size(), 1u);
  const auto& call = transport.last();
  EXPECT_EQ(call.request.method, HttpMethod::kPost);
  EXPECT_EQ(call.request.url, "https://chat.example.com/api/v1/register");
  EXPECT_EQ(call.request.basic_auth_user, "bot@example.com");
  EXPECT_EQ(call.request.basic_auth_password, "KEY-0123456789");
  EXPECT_EQ(call.Param("event_types"), R"(["message"])");
  EXPECT_EQ(call.Param("queue_lifespan_secs"), "86400");
  EXPECT_FALSE(got);  // never from inside the call
  transport.Reply(call.handle, FakeResponse::Json(200, R"({
    "result":"success","msg":"","queue_id":"f1a2","last_event_id":7,
    "zulip_version":"10.2","zulip_feature_level":372,"zulip_merge_base":"10.2",
    "max_message_id":1234,"event_queue_longpoll_timeout_seconds":90,
    "ignored_parameters_unsupported":["queue_lifespan_secs"]})"));
  transport.Pump();
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->outcome.ok()) << got->outcome.status;
  EXPECT_EQ(got->value.queue_id, "f1a2");
  EXPECT_EQ(got->value.last_event_id, 7);
  EXPECT_EQ(got->value.zulip_version, "10.2");
  EXPECT_EQ(got->value.zulip_feature_level, 372);
  EXPECT_EQ(got->value.max_message_id, 1234);
  EXPECT_EQ(got->value.event_queue_longpoll_timeout_seconds, 90);
  EXPECT_EQ(got->value.ignored_parameters_unsupported,
            std::vector<std::string>{"queue_lifespan_secs"});
}

TEST(ZulipClientTest, RegisterWithoutOptionalFieldsLeavesThemUnset) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::optional<ZulipReply<RegisterResult>> got;
  transport.Script(FakeResponse::Json(
      200,
      R"({"result":"success","msg":"","queue_id":"q","last_event_id":-1,"zulip_feature_level":1})"));
  client.Register({}, [&](ZulipReply<RegisterResult> r) { got = std::move(r); });
  transport.Pump();
  ASSERT_TRUE(got && got->outcome.ok());
  EXPECT_EQ(got->value.last_event_id, -1);
  EXPECT_FALSE(got->value.max_message_id);
  EXPECT_FALSE(got->value.event_queue_longpoll_timeout_seconds);
  EXPECT_TRUE(got->value.ignored_parameters_unsupported.empty());
}

TEST(ZulipClientTest, RegisterSuccessThatIsNotJsonIsTransient) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::optional<ZulipReply<RegisterResult>> got;
  transport.Script(FakeResponse::Json(200, R"({"result":"success","queue_id":"q")"));
  client.Register({}, [&](ZulipReply<RegisterResult> r) { got = std::move(r); });
  transport.Pump();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->outcome.kind, ZulipErrorKind::kTransient);
}

// A body nested this deep overflowed the stack of a recursive parser (exit 139, every account
// of the process down); from a broken proxy or a hostile site it must be one call's bad body.
constexpr size_t kHostileDepth = 200'000;
std::string NestedArrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(ZulipClientTest, RegisterBodyNestedTooDeepIsATransientErrorNamingTheCallAndTheDepth) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::optional<ZulipReply<RegisterResult>> got;
  transport.Script(FakeResponse::Json(
      200, R"({"result":"success","queue_id":"q","last_event_id":-1,"realm_users":)" +
               NestedArrays(kHostileDepth) + "}"));
  client.Register({}, [&](ZulipReply<RegisterResult> r) { got = std::move(r); });
  transport.Pump();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->outcome.kind, ZulipErrorKind::kTransient);
  EXPECT_THAT(got->outcome.status.message(), HasSubstr("POST /register"));
  EXPECT_THAT(got->outcome.status.message(), HasSubstr("nesting deeper than 512"));
}

TEST(ZulipClientTest, ServerSettingsBodyNestedTooDeepIsATransientError) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::optional<ZulipReply<ServerSettingsResult>> got;
  transport.Script(
      FakeResponse::Json(200, R"({"zulip_version":)" + NestedArrays(kHostileDepth) + "}"));
  client.ServerSettings([&](ZulipReply<ServerSettingsResult> r) { got = std::move(r); });
  transport.Pump();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->outcome.kind, ZulipErrorKind::kTransient);
  EXPECT_THAT(got->outcome.status.message(), HasSubstr("nesting deeper than 512"));
}

TEST(ZulipClientTest, GetMessagesBodyNestedTooDeepIsATransientErrorNamingTheCall) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::optional<ZulipReply<rapidjson::Document>> got;
  transport.Script(FakeResponse::Json(
      200, R"({"result":"success","found_newest":true,"messages":[{"id":1,"content":)" +
               NestedArrays(kHostileDepth) + "}]}"));
  client.GetMessages({.anchor = "0"},
                     [&](ZulipReply<rapidjson::Document> r) { got = std::move(r); });
  transport.Pump();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->outcome.kind, ZulipErrorKind::kTransient);
  EXPECT_THAT(got->outcome.status.message(), HasSubstr("GET /messages"));
  EXPECT_THAT(got->outcome.status.message(), HasSubstr("nesting deeper than 512"));
}

TEST(ZulipClientTest, ErrorBodyNestedTooDeepIsNotZulipsAnswer) {
  ZulipOutcome o = ClassifyZulipResponse(
      ZulipEndpoint::kGetMessages, Result(400, R"({"result":"error","code":"BAD_REQUEST","x":)" +
                                                   NestedArrays(kHostileDepth) + "}"));
  EXPECT_EQ(o.kind, ZulipErrorKind::kTransient);
}

TEST(ZulipClientTest, GetEventsStreamsA200BodyToTheSink) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options("localhost:9991"));
  std::string sunk;
  std::optional<ZulipOutcome> done;
  client.GetEvents(
      {.queue_id = "q1", .last_event_id = -1},
      [&](std::string_view chunk) {
        sunk.append(chunk);
        return true;
      },
      [&](ZulipOutcome o) { done = std::move(o); });
  const auto& call = transport.last();
  EXPECT_EQ(call.request.url, "http://localhost:9991/api/v1/events");
  EXPECT_EQ(call.Param("queue_id"), "q1");
  EXPECT_EQ(call.Param("last_event_id"), "-1");
  EXPECT_EQ(call.Param("dont_block"), "false");
  // The server's 90 s, plus the margin: the server ends a quiet poll, not us.
  EXPECT_EQ(call.request.idle_timeout, std::chrono::milliseconds(100'000));
  FakeResponse r;
  r.chunks = {R"({"result":"success","msg":"","events":[{"type":"heartbeat","id":0})", "]}"};
  transport.Reply(call.handle, r);
  transport.Pump();
  ASSERT_TRUE(done);
  EXPECT_TRUE(done->ok()) << done->status;
  EXPECT_EQ(sunk, R"({"result":"success","msg":"","events":[{"type":"heartbeat","id":0}]})");
}

TEST(ZulipClientTest, GetEventsUsesTheServersLongpollTimeoutAndDontBlock) {
  FakeHttpTransport transport;
  ZulipClientOptions options = Options();
  options.request_timeout = std::chrono::milliseconds(5000);
  ZulipClient client(transport, options);
  client.GetEvents(
      {.queue_id = "q", .last_event_id = 3, .longpoll_timeout_seconds = 20},
      [](std::string_view) { return true; }, [](ZulipOutcome) {});
  EXPECT_EQ(transport.last().request.idle_timeout, std::chrono::milliseconds(30'000));
  client.GetEvents(
      {.queue_id = "q", .last_event_id = 3, .dont_block = true},
      [](std::string_view) { return true; }, [](ZulipOutcome) {});
  EXPECT_EQ(transport.last().Param("dont_block"), "true");
  EXPECT_EQ(transport.last().request.idle_timeout, std::chrono::milliseconds(5000));
}

TEST(ZulipClientTest, GetEventsErrorBodyNeverReachesTheSink) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  bool sink_called = false;
  std::optional<ZulipOutcome> done;
  transport.Script(FakeResponse::Json(
      400, R"({"result":"error","msg":"Bad event queue ID: q","code":"BAD_EVENT_QUEUE_ID"})"));
  client.GetEvents(
      {.queue_id = "q", .last_event_id = 5}, [&](std::string_view) { return sink_called = true; },
      [&](ZulipOutcome o) { done = std::move(o); });
  transport.Pump();
  EXPECT_FALSE(sink_called);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->kind, ZulipErrorKind::kQueueLost);
}

TEST(ZulipClientTest, GetEventsSinkCanPauseAndGetsTheSameBytesAgain) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::vector<std::string> offered;
  bool full = true;
  std::optional<ZulipOutcome> done;
  ZulipClient::Handle h = client.GetEvents(
      {.queue_id = "q", .last_event_id = 5},
      [&](std::string_view chunk) {
        offered.emplace_back(chunk);
        return !full;
      },
      [&](ZulipOutcome o) { done = std::move(o); });
  FakeResponse r;
  r.chunks = {"{\"events\":[", "]}"};
  transport.Reply(h, r);
  transport.Pump();
  EXPECT_EQ(offered, std::vector<std::string>{"{\"events\":["});
  EXPECT_FALSE(done);
  full = false;
  client.Resume(h);
  transport.Pump();
  EXPECT_EQ(offered, (std::vector<std::string>{"{\"events\":[", "{\"events\":[", "]}"}));
  ASSERT_TRUE(done);
  EXPECT_TRUE(done->ok());
}

TEST(ZulipClientTest, DeleteQueueSendsTheQueueIdAsAForm) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::optional<ZulipOutcome> done;
  transport.Script(FakeResponse::Json(200, R"({"result":"success","msg":""})"));
  client.DeleteQueue("q9", [&](ZulipOutcome o) { done = std::move(o); });
  EXPECT_EQ(transport.last().request.method, HttpMethod::kDelete);
  EXPECT_EQ(transport.last().request.url, "https://chat.example.com/api/v1/events");
  EXPECT_EQ(transport.last().Param("queue_id"), "q9");
  transport.Pump();
  ASSERT_TRUE(done);
  EXPECT_TRUE(done->ok());
}

TEST(ZulipClientTest, GetMessagesSendsEveryParameterExplicitly) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::optional<ZulipReply<rapidjson::Document>> got;
  const std::string body =
      R"({"result":"success","msg":"","messages":[],"found_newest":true,"anchor":41})";
  transport.Script(FakeResponse::Json(200, body));
  client.GetMessages({.anchor = "41",
                      .include_anchor = false,
                      .num_before = 0,
                      .num_after = 1000,
                      .narrow_json = R"([{"operator":"channels","operand":"public"}])",
                      .apply_markdown = false,
                      .client_gravatar = true},
                     [&](ZulipReply<rapidjson::Document> r) { got = std::move(r); });
  const auto& call = transport.last();
  EXPECT_EQ(call.request.url, "https://chat.example.com/api/v1/messages");
  EXPECT_EQ(call.Param("anchor"), "41");
  EXPECT_EQ(call.Param("include_anchor"), "false");
  EXPECT_EQ(call.Param("num_before"), "0");
  EXPECT_EQ(call.Param("num_after"), "1000");
  EXPECT_EQ(call.Param("narrow"), R"([{"operator":"channels","operand":"public"}])");
  EXPECT_EQ(call.Param("apply_markdown"), "false");
  EXPECT_EQ(call.Param("client_gravatar"), "true");
  transport.Pump();
  ASSERT_TRUE(got && got->outcome.ok());
  ASSERT_TRUE(got->value.IsObject());
  EXPECT_TRUE(got->value["found_newest"].GetBool());
  EXPECT_EQ(got->value["anchor"].GetInt64(), 41);
}

TEST(ZulipClientTest, ServerSettingsReadsVersionAndFeatureLevel) {
  FakeHttpTransport transport;
  ZulipClient client(transport, Options());
  std::optional<ZulipReply<ServerSettingsResult>> got;
  transport.Script(FakeResponse::Json(
      200,
      R"({"result":"success","zulip_version":"10.2","zulip_feature_level":372,"realm_uri":"https://chat.example.com"})"));
  client.ServerSettings([&](ZulipReply<ServerSettingsResult> r) { got = std::move(r); });
  EXPECT_EQ(transport.last().request.url, "https://chat.example.com/api/v1/server_settings");
  transport.Pump();
  ASSERT_TRUE(got && got->outcome.ok());
  EXPECT_EQ(got->value.zulip_version, "10.2");
  EXPECT_EQ(got->value.zulip_feature_level, 372);
  EXPECT_EQ(got->value.realm_url, "https://chat.example.com");
}

// End to end, through CurlTransport, against an in-process server.
class ZulipClientHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.new_task_queue = [] { return new httplib::ThreadPool(8); };
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    auto loop = EventLoop::Create(RealClock::Instance());
    ASSERT_THAT(loop, IsOk());
    loop_ = std::move(loop).value();
    auto transport = CurlTransport::Create(*loop_);
    ASSERT_THAT(transport, IsOk());
    transport_ = std::move(transport).value();
    client_ = std::make_unique<ZulipClient>(*transport_,
                                            Options("http://127.0.0.1:" + std::to_string(port_)));
  }
  void StartAll() {
    server_thread_ = std::thread([this] { server_.listen_after_bind(); });
    ASSERT_TRUE(WaitFor([this] { return server_.is_running(); }, seconds(10)));
    loop_thread_ = std::thread([this] { EXPECT_THAT(loop_->Run(), IsOk()); });
  }
  void TearDown() override {
    if (loop_thread_.joinable()) {
      std::atomic<bool> done{false};
      loop_->Post([&] {
        client_.reset();
        transport_.reset();
        done = true;
      });
      EXPECT_TRUE(WaitFor([&] { return done.load(); }, seconds(30)));
      loop_->Stop();
      loop_thread_.join();
    }
    if (server_thread_.joinable()) {
      server_.stop();
      server_thread_.join();
    }
  }
  // Runs one GET /events and returns how it ended.
  ZulipOutcome PollOnce(std::string* sunk = nullptr) {
    std::optional<ZulipOutcome> done;
    std::atomic<bool> finished{false};
    loop_->Post([&] {
      client_->GetEvents(
          {.queue_id = "q", .last_event_id = 4},
          [&](std::string_view chunk) {
            if (sunk) sunk->append(chunk);
            return true;
          },
          [&](ZulipOutcome o) {
            done = std::move(o);
            finished = true;
          });
    });
    EXPECT_TRUE(WaitFor([&] { return finished.load(); }, seconds(30)));
    return done.value_or(ZulipOutcome{});
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread server_thread_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<CurlTransport> transport_;
  std::unique_ptr<ZulipClient> client_;
  std::thread loop_thread_;
};

TEST_F(ZulipClientHttpTest, RateLimitedPollReadsTheFractionalRetryAfterExactly) {
  server_.Get("/api/v1/events", [](const httplib::Request&, httplib::Response& res) {
    res.status = 429;
    res.set_header("Retry-After", "28.706807374954224");
    res.set_header("X-RateLimit-Remaining", "0");
    res.set_header("X-RateLimit-Limit", "200");
    res.set_header("X-RateLimit-Reset", "1735689660");
    res.set_content(
        R"({"result":"error","msg":"API usage exceeded rate limit","code":"RATE_LIMIT_HIT","retry-after":28.706807374954224})",
        "application/json");
  });
  StartAll();
  ZulipOutcome o = PollOnce();
  EXPECT_EQ(o.kind, ZulipErrorKind::kRateLimited) << o.status;
  ASSERT_TRUE(o.retry_after_seconds);
  EXPECT_EQ(*o.retry_after_seconds, 28.706807374954224);
  EXPECT_EQ(o.rate_limit.remaining, 0);
  EXPECT_EQ(o.rate_limit.limit, 200);
}

TEST_F(ZulipClientHttpTest, UnauthorizedSurfacesTheServersMessage) {
  server_.Get("/api/v1/events", [](const httplib::Request&, httplib::Response& res) {
    res.status = 401;
    res.set_header("WWW-Authenticate", "Basic realm=\"zulip\"");
    res.set_content(R"({"result":"error","msg":"Invalid API key","code":"UNAUTHORIZED"})",
                    "application/json");
  });
  StartAll();
  ZulipOutcome o = PollOnce();
  EXPECT_EQ(o.kind, ZulipErrorKind::kUnauthenticated);
  EXPECT_EQ(o.msg, "Invalid API key");
  EXPECT_NE(o.status.message().find("Invalid API key"), std::string::npos);
  EXPECT_EQ(o.status.message().find("KEY-0123456789"), std::string::npos);
}

TEST_F(ZulipClientHttpTest, QueueLossMessagesAreClassifiedFromTheWire) {
  std::atomic<int> n{0};
  server_.Get("/api/v1/events", [&](const httplib::Request&, httplib::Response& res) {
    res.status = 400;
    switch (n++) {
      case 0:
        res.set_content(
            R"({"result":"error","msg":"Bad event queue ID: q","code":"BAD_EVENT_QUEUE_ID","queue_id":"q"})",
            "application/json");
        break;
      case 1:
        res.set_content(
            R"({"result":"error","msg":"An event newer than 4 has already been pruned!","code":"BAD_REQUEST"})",
            "application/json");
        break;
      default:
        res.set_content(
            R"({"result":"error","msg":"Event 4 was not in this queue","code":"BAD_REQUEST"})",
            "application/json");
    }
  });
  StartAll();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(PollOnce().kind, ZulipErrorKind::kQueueLost) << i;
}

TEST_F(ZulipClientHttpTest, BodyCutShortIsTransient) {
  // Declares more bytes than it sends, then closes the connection.
  server_.Get("/api/v1/events", [](const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(1000, "application/json",
                             [](size_t offset, size_t, httplib::DataSink& sink) {
                               if (offset > 0) return false;  // abort: the connection closes
                               std::string part = R"({"result":"success","events":[{"id":5,)";
                               sink.write(part.data(), part.size());
                               return true;
                             });
  });
  StartAll();
  std::string sunk;
  ZulipOutcome o = PollOnce(&sunk);
  EXPECT_EQ(o.kind, ZulipErrorKind::kTransient) << o.status;
  EXPECT_EQ(sunk, R"({"result":"success","events":[{"id":5,)");
}

TEST_F(ZulipClientHttpTest, RegisterRefusedAsConfigurationWithTheReason) {
  std::string fields;
  server_.Post("/api/v1/register", [&](const httplib::Request& req, httplib::Response& res) {
    fields = req.get_param_value("all_public_streams") + " " + req.get_param_value("narrow");
    res.status = 400;
    res.set_content(
        R"({"result":"error","msg":"User not authorized for this query","code":"BAD_REQUEST"})",
        "application/json");
  });
  StartAll();
  std::optional<ZulipReply<RegisterResult>> got;
  std::atomic<bool> finished{false};
  loop_->Post([&] {
    client_->Register({{"all_public_streams", "true"}, {"narrow", "[]"}},
                      [&](ZulipReply<RegisterResult> r) {
                        got = std::move(r);
                        finished = true;
                      });
  });
  ASSERT_TRUE(WaitFor([&] { return finished.load(); }, seconds(30)));
  EXPECT_EQ(fields, "true []");
  EXPECT_EQ(got->outcome.kind, ZulipErrorKind::kConfiguration);
  EXPECT_EQ(got->outcome.msg, "User not authorized for this query");
}

}  // namespace
}  // namespace zb
