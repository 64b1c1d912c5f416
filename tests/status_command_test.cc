#include "daemon/ops/status_command.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTwoAccounts[] = R"({"ready":true,"accounts":[
  {"name":"sales","state":"polling","queue_id":"1732-abc","watermark":120,"last_received":125,
   "in_flight":5,"last_event_age_secs":3.5},
  {"name":"support","state":"parked","queue_id":"","watermark":-1,"last_received":-1,
   "in_flight":0,"parked_reason":"Invalid API key","last_event_age_secs":4000}],
  "parked":["support"]})";

TEST(StatusCommandTest, TableHasOneAlignedRowPerAccountWithLagAgeAndReason) {
  StatusOr<std::string> table = FormatStatusTable(kTwoAccounts);
  ASSERT_THAT(table.status(), testing::IsOk());
  EXPECT_EQ(*table,
            "ACCOUNT  STATE    QUEUE     WATERMARK  LAG  LAST EVENT  DETAIL\n"
            "sales    polling  1732-abc  120        5    3s ago\n"
            "support  parked   -         -          0    1h06m ago   parked: Invalid API key\n"
            "ready\n");
}

TEST(StatusCommandTest, LastErrorIsShownWhenNotParkedAndNotReadyIsSaid) {
  StatusOr<std::string> table = FormatStatusTable(
      R"({"ready":false,"accounts":[{"name":"a","state":"backing_off","queue_id":"q",)"
      R"("watermark":7,"last_received":9,"in_flight":0,"last_error":"HTTP 502"}]})");
  ASSERT_THAT(table.status(), testing::IsOk());
  EXPECT_THAT(*table, HasSubstr("backing_off"));
  EXPECT_THAT(*table, HasSubstr("last error: HTTP 502"));
  EXPECT_THAT(*table, HasSubstr("\nnot ready\n"));
}

TEST(StatusCommandTest, AnswerThatIsNotTheDaemonsIsRefusedWithWhatIsMissing) {
  EXPECT_THAT(FormatStatusTable("<html>nginx</html>").status().message(),
              HasSubstr("not a JSON object"));
  EXPECT_THAT(FormatStatusTable(R"({"ready":true})").status().message(),
              HasSubstr("no \"accounts\" array"));
}

TEST(StatusCommandTest, WildcardListenerIsAskedOnLoopbackAndPortZeroIsRefused) {
  HttpConfig http;
  http.listen = "0.0.0.0:9187";
  http.host = "0.0.0.0";
  http.port = 9187;
  EXPECT_EQ(*ReadyzUrl(http), "http://127.0.0.1:9187/readyz");
  http.host = "::";
  EXPECT_EQ(*ReadyzUrl(http), "http://[::1]:9187/readyz");
  http.listen = "127.0.0.1:0";
  http.host = "127.0.0.1";
  http.port = 0;
  StatusOr<std::string> url = ReadyzUrl(http);
  ASSERT_FALSE(url.ok());
  EXPECT_THAT(url.status().message(), HasSubstr("http.listen 127.0.0.1:0"));
}

TEST(StatusCommandTest, AsksTheConfiguredListenerEvenWhileNotReady) {
  httplib::Server server;
  server.Get("/readyz", [](const httplib::Request&, httplib::Response& res) {
    res.status = 503;  // what /readyz answers before the daemon is ready
    res.set_content(kTwoAccounts, "application/json");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread serving([&] { server.listen_after_bind(); });
  // stop() only works once the accept loop runs.
  ASSERT_TRUE(zb::testing::WaitFor([&] { return server.is_running(); }, std::chrono::seconds(10)));
  Config config;
  config.http.host = "127.0.0.1";
  config.http.port = static_cast<uint16_t>(port);
  config.http.listen = "127.0.0.1:" + std::to_string(port);
  StatusOr<std::string> table = QueryStatus(config);
  server.stop();
  serving.join();
  ASSERT_THAT(table.status(), testing::IsOk());
  EXPECT_THAT(*table, HasSubstr("parked: Invalid API key"));
}

TEST(StatusCommandTest, NothingListeningIsReportedWithTheAddress) {
  // Bind and close: the port is free and nothing answers there.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  close(fd);
  Config config;
  config.http.host = "127.0.0.1";
  config.http.port = static_cast<uint16_t>(port);
  StatusOr<std::string> table = QueryStatus(config);
  ASSERT_FALSE(table.ok());
  EXPECT_TRUE(table.status().IsUnavailable());
  EXPECT_THAT(table.status().message(), HasSubstr("127.0.0.1:" + std::to_string(port) + "/readyz"));
  EXPECT_THAT(table.status().message(), HasSubstr("is it running?"));
  EXPECT_THAT(table.status().message(), Not(HasSubstr("api_key")));
}

}  // namespace
}  // namespace zb
