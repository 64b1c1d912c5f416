// Security end to end (issue 10): Kafka over TLS with SASL, Zulip over TLS through nginx with a
// test CA, and no secret in anything the bridge shows. The bridge runs as a subprocess against
// the real broker's SASL_SSL listener (tests/kafka/broker makes it, with its own CA and test
// users) and the fake Zulip; records are read back through the broker's plaintext listener.
//
// Each test fails when its property breaks: events missing over SASL_SSL, an API key or the
// SASL password in the log, /metrics, /readyz or the state directory, a wrong Kafka password
// that loses events instead of holding them, a Zulip certificate accepted without the CA that
// signed it.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/integration/bridge_harness.h"
#include "tests/test_support.h"

namespace zb::testing {
namespace {

// The test users the broker script creates on its SASL_SSL listener.
constexpr char kSaslUser[] = "zb-plain";
constexpr char kSaslPassword[] = "zb-plain-test-password";

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct Account {
  std::string name;
  std::string email;
  std::string api_key;
  // What the bridge is told; the fake may know another key (a bad key) or none.
  std::string configured_key;
  std::string site;       // "" = the fake's plain HTTP address
  std::string ca_bundle;  // "" = the system CAs
};

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ZB_REQUIRE_KAFKA(brokers);
    ZB_REQUIRE_KAFKA_CTL_AND_DIR();
    ZB_REQUIRE_SASL_LISTENER();
    brokers_ = brokers;
    kafka_ca_ = KafkaDirFromEnv() + "/tls/ca.pem";
    secure_brokers_ = Trim(Shell(KafkaCtlFromEnv() + " secure-address " + KafkaDirFromEnv()));
    http_port_ = FreeLoopbackPort();
    prefix_ = UniqueTopic("zbsec");
  }

  void TearDown() override {
    if (HasFailure() && bridge_) std::cerr << "---- bridge log ----\n" << bridge_->Log();
  }

  // Starts the fake Zulip knowing `users` (email, key).
  void StartZulip(const std::vector<FakeZulip::User>& users) {
    zulip_ = std::make_unique<FakeZulip>(dir_.path(), users);
  }

  // Writes the bridge's configuration: Kafka over SASL_SSL with the password taken from the
  // environment (${ZB_TEST_SASL_PASSWORD}), the accounts' keys in files.
  void WriteConfig(const std::vector<Account>& accounts, const std::string& log_level = "trace") {
    std::string yaml = "kafka:\n  brokers: [" + secure_brokers_ + "]\n  topic_template: \"" +
                       prefix_ +
                       ".{type}\"\n  flush_timeout_secs: 3\n  properties:\n"
                       "    security.protocol: SASL_SSL\n    sasl.mechanism: " +
                       sasl_mechanism_ + "\n    sasl.username: " + sasl_user_ +
                       "\n    sasl.password: \"${ZB_TEST_SASL_PASSWORD}\"\n"
                       "    ssl.ca.location: " +
                       kafka_ca_ + "\nstate_dir: " + dir_.Sub("state") +
                       "\nhttp:\n  listen: 127.0.0.1:" + std::to_string(http_port_) +
                       "\nlog:\n  level: " + log_level + "\naccounts:\n";
    for (const Account& a : accounts) {
      WriteFile(dir_.Sub(a.name + ".key"), a.configured_key + "\n");
      yaml += AccountYaml(a.name, a.site.empty() ? zulip_->site() : a.site, a.email,
                          dir_.Sub(a.name + ".key"));
      if (!a.ca_bundle.empty()) yaml += "    tls:\n      ca_bundle: " + a.ca_bundle + "\n";
    }
    WriteFile(dir_.Sub("zulip-bridge.yaml"), yaml);
  }

  void StartBridge(const std::string& sasl_password) {
    bridge_ = std::make_unique<Subprocess>(
        std::vector<std::string>{BridgeBinary(), "--config", dir_.Sub("zulip-bridge.yaml")},
        dir_.Sub("bridge.log"), std::vector<std::string>{"ZB_TEST_SASL_PASSWORD=" + sasl_password});
  }

  void StopBridge() {
    bridge_->Signal(SIGTERM);
    std::optional<int> code = bridge_->Wait(std::chrono::seconds(40));
    ASSERT_TRUE(code.has_value()) << "bridge did not stop within 40 s";
  }

  std::string QueueOf(const std::string& email) {
    std::string queue = zulip_->WaitForOneQueue(email);
    EXPECT_FALSE(queue.empty()) << email << " never registered";
    return queue;
  }

  // Pushes `n` distinct stream messages to `email`'s queue; returns their texts.
  std::set<std::string> PushMessages(const std::string& email, int n, int first_id) {
    std::set<std::string> values;
    for (int i = 0; i < n; ++i) {
      std::string event = R"({"type":"message","flags":[],"message":{"id":)" +
                          std::to_string(first_id + i) + R"(,"type":"stream","content":"secure )" +
                          std::to_string(i) + R"("}})";
      std::vector<int64_t> ids = zulip_->PushEvent(email, event);
      EXPECT_EQ(ids.size(), 1u);
      values.insert(std::to_string(first_id + i));
    }
    return values;
  }

  // Waits until every message id in `ids` is in Kafka (read over plaintext).
  bool AllMessagesInKafka(const std::set<std::string>& ids, std::chrono::seconds timeout) {
    auto missing = [&](const std::vector<ReadRecord>& records) {
      std::set<std::string> left = ids;
      for (const ReadRecord& r : records) {
        for (auto it = left.begin(); it != left.end();) {
          it = r.value.find("\"id\":" + *it + ",") != std::string::npos ? left.erase(it)
                                                                        : std::next(it);
        }
      }
      return left;
    };
    std::vector<ReadRecord> records = ReadTopics(
        brokers_, {prefix_ + ".message"},
        [&](const std::vector<ReadRecord>& so_far) { return missing(so_far).empty(); }, timeout);
    std::set<std::string> left = missing(records);
    EXPECT_TRUE(left.empty()) << left.size() << " of " << ids.size() << " messages missing";
    return left.empty();
  }

  std::string Url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(http_port_) + path;
  }

  // Every file under the state directory, concatenated.
  std::string StateDirectoryContents() {
    std::string all;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.Sub("state"))) {
      if (entry.is_regular_file()) all += ReadWholeFile(entry.path().string());
    }
    return all;
  }

  TempDir dir_;
  std::string sasl_mechanism_ = "PLAIN";
  std::string sasl_user_ = kSaslUser;
  std::string brokers_;
  std::string secure_brokers_;
  std::string kafka_ca_;
  std::string prefix_;
  int http_port_ = 0;
  std::unique_ptr<FakeZulip> zulip_;
  std::unique_ptr<Subprocess> bridge_;
};

TEST_F(SecurityTest, KafkaOverTlsWithSaslPlainGetsEveryEventAndNoSecretIsEverShown) {
  const std::string good_key = "goodKey0123456789abcdefghijklmno";
  const std::string wrong_key = "wrongKey123456789abcdefghijklmno";
  const std::string known_key = "knownKey23456789abcdefghijklmnop";
  StartZulip({{"good-bot@example.com", good_key}, {"bad-bot@example.com", known_key}});
  WriteConfig({{"good", "good-bot@example.com", good_key, good_key, "", ""},
               {"bad", "bad-bot@example.com", known_key, wrong_key, "", ""}});
  StartBridge(kSaslPassword);
  std::string queue = QueueOf("good-bot@example.com");
  ASSERT_FALSE(queue.empty());
  std::set<std::string> ids = PushMessages("good-bot@example.com", 40, 5000);
  ASSERT_TRUE(AllMessagesInKafka(ids, std::chrono::seconds(60)));

  // The bad key is refused (401) and the account parked: its error path has been logged.
  HttpAnswer ready;
  ASSERT_TRUE(WaitFor(
      [&] {
        ready = HttpGet(Url("/readyz"));
        return ready.body.find("parked") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << ready.body;
  HttpAnswer metrics = HttpGet(Url("/metrics"));
  ASSERT_EQ(metrics.status, 200);
  HttpAnswer health = HttpGet(Url("/healthz"));
  StopBridge();

  std::string log = bridge_->Log();
  ASSERT_NE(log.find("good"), std::string::npos);  // the log is there and speaks of accounts
  const std::vector<std::pair<std::string, std::string>> shown = {
      {"the log", log},
      {"/metrics", metrics.body},
      {"/readyz", ready.body},
      {"/healthz", health.body},
      {"the state directory", StateDirectoryContents()}};
  for (const auto& [where, text] : shown) {
    for (const std::string& secret : {good_key, wrong_key, known_key, std::string(kSaslPassword)}) {
      EXPECT_EQ(text.find(secret), std::string::npos) << where << " shows a secret";
    }
  }
}

// SCRAM-SHA-256 and SCRAM-SHA-512 over TLS. Debian 12's librdkafka 2.0.2 cannot do SCRAM with
// a Kafka 4 broker (docs/configuration.md), so this runs a Kafka 3 broker of its own
// (ZB_KAFKA3_VERSION, which ./dev test fetches), with the same listeners and test users.
TEST_F(SecurityTest, KafkaOverTlsWithSaslScramGetsEveryEventFromAKafka3Broker) {
  ZB_REQUIRE_KAFKA3(version);
  PrivateBroker kafka3(dir_.Sub("kafka3"), version);
  brokers_ = kafka3.Run("start");
  secure_brokers_ = kafka3.Run("secure-address");
  kafka_ca_ = kafka3.dir() + "/tls/ca.pem";
  ASSERT_FALSE(secure_brokers_.empty());

  const std::string key = "scramKey123456789abcdefghijklmno";
  const std::string password = "zb-scram-test-password";  // the broker script's test user
  StartZulip({{"scram-bot@example.com", key}});
  sasl_user_ = "zb-scram";
  int first_id = 9000;
  for (const char* mechanism : {"SCRAM-SHA-256", "SCRAM-SHA-512"}) {
    SCOPED_TRACE(mechanism);
    sasl_mechanism_ = mechanism;
    prefix_ = UniqueTopic("zbscram");
    WriteConfig({{"scram", "scram-bot@example.com", key, key, "", ""}}, "info");
    StartBridge(password);
    ASSERT_FALSE(QueueOf("scram-bot@example.com").empty());
    std::set<std::string> ids = PushMessages("scram-bot@example.com", 20, first_id);
    first_id += 20;
    EXPECT_TRUE(AllMessagesInKafka(ids, std::chrono::seconds(60)));
    StopBridge();
    EXPECT_EQ(bridge_->Log().find(password), std::string::npos) << "the log shows the password";
  }
}

TEST_F(SecurityTest, AWrongKafkaPasswordHoldsEveryEventUntilItIsFixed) {
  const std::string key = "holdKey0123456789abcdefghijklmno";
  StartZulip({{"hold-bot@example.com", key}});
  WriteConfig({{"hold", "hold-bot@example.com", key, key, "", ""}}, "info");
  StartBridge("not-the-password");
  std::string queue = QueueOf("hold-bot@example.com");
  ASSERT_FALSE(queue.empty());
  std::set<std::string> ids = PushMessages("hold-bot@example.com", 25, 7000);
  // librdkafka reports the refused authentication; the bridge says so.
  ASSERT_TRUE(WaitFor([&] { return bridge_->Log().find("Authentication") != std::string::npos; },
                      std::chrono::seconds(30)))
      << bridge_->Log();
  StopBridge();
  EXPECT_EQ(bridge_->Log().find("not-the-password"), std::string::npos);

  // Nothing was acknowledged to Zulip, so the restart with the right password gets it all.
  StartBridge(kSaslPassword);
  AllMessagesInKafka(ids, std::chrono::seconds(60));
  EXPECT_EQ(zulip_->QueuesOf("hold-bot@example.com"), std::vector<std::string>{queue})
      << "the queue was re-registered: events were at risk";
}

// The Grafana dashboard shipped in deploy/grafana queries only metrics a running bridge serves:
// every zb_ name in every panel's expression has its # TYPE line in a live /metrics.
TEST_F(SecurityTest, EveryMetricTheGrafanaDashboardQueriesIsServed) {
  const std::string key = "dashKey0123456789abcdefghijklmno";
  StartZulip({{"dash-bot@example.com", key}});
  WriteConfig({{"dash", "dash-bot@example.com", key, key, "", ""}}, "info");
  StartBridge(kSaslPassword);
  ASSERT_FALSE(QueueOf("dash-bot@example.com").empty());
  ASSERT_TRUE(
      AllMessagesInKafka(PushMessages("dash-bot@example.com", 3, 11000), std::chrono::seconds(60)));
  HttpAnswer metrics = HttpGet(Url("/metrics"));
  ASSERT_EQ(metrics.status, 200);

  std::string dashboard =
      ReadWholeFile(std::string(ZB_SOURCE_DIR) + "/deploy/grafana/zulip-bridge.json");
  rapidjson::Document doc;
  doc.Parse(dashboard.c_str());
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("panels")) << "deploy/grafana/zulip-bridge.json";
  std::set<std::string> queried;
  const std::regex metric_name("zb_[a-z_]+");
  for (const rapidjson::Value& panel : doc["panels"].GetArray()) {
    for (const rapidjson::Value& target : panel["targets"].GetArray()) {
      std::string expr = target["expr"].GetString();
      for (std::sregex_iterator it(expr.begin(), expr.end(), metric_name), end; it != end; ++it) {
        queried.insert(it->str());
      }
    }
  }
  ASSERT_GE(queried.size(), 10u);
  for (const std::string& name : queried) {
    // A histogram's series are <name>_bucket, _sum and _count under one "# TYPE <name>".
    const std::regex histogram_series("(.*)_(bucket|sum|count)");
    std::smatch m;
    bool served = metrics.body.find("# TYPE " + name + " ") != std::string::npos ||
                  (std::regex_match(name, m, histogram_series) &&
                   metrics.body.find("# TYPE " + m[1].str() + " histogram\n") != std::string::npos);
    EXPECT_TRUE(served) << "the dashboard queries " << name << ", which /metrics does not serve";
  }
  StopBridge();
}

// nginx (Debian's) terminates TLS with a certificate from a CA made for the test, in front of
// the fake Zulip, as a real deployment would.
class ZulipTlsTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    if (IsSkipped() || HasFailure()) return;
    ZB_REQUIRE_NGINX();
    tls_dir_ = dir_.Sub("zulip-tls");
    std::filesystem::create_directories(tls_dir_);
    Shell("cd " + tls_dir_ +
          " && openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=zulip test CA'"
          " -keyout ca.key -out ca.pem"
          " && openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout site.key"
          " -out site.csr"
          " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > site.ext"
          " && openssl x509 -req -in site.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30"
          " -extfile site.ext -out site.pem");
  }

  void StartNginx() {
    nginx_port_ = FreeLoopbackPort();
    std::string prefix = dir_.Sub("nginx");
    std::filesystem::create_directories(prefix + "/logs");
    // Long-polls stay open up to 90 s; buffering off so the bridge sees bytes as they come.
    WriteFile(prefix + "/nginx.conf",
              "pid " + prefix + "/nginx.pid;\nerror_log " + prefix +
                  "/logs/error.log;\nevents {}\nhttp {\n  access_log off;\n"
                  "  client_body_temp_path " +
                  prefix + "/body;\n  proxy_temp_path " + prefix +
                  "/proxy;\n  server {\n    listen 127.0.0.1:" + std::to_string(nginx_port_) +
                  " ssl;\n    ssl_certificate " + tls_dir_ +
                  "/site.pem;\n    ssl_certificate_key " + tls_dir_ +
                  "/site.key;\n    location / {\n      proxy_pass http://127.0.0.1:" +
                  std::to_string(zulip_->port()) +
                  ";\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n"
                  "      proxy_buffering off;\n      proxy_read_timeout 120s;\n    }\n  }\n}\n");
    nginx_ = std::make_unique<Subprocess>(
        std::vector<std::string>{FindTool("nginx"), "-p", prefix, "-e", prefix + "/logs/error.log",
                                 "-c", prefix + "/nginx.conf", "-g", "daemon off;"},
        dir_.Sub("nginx.out"));
    ASSERT_TRUE(WaitFor(
        [&] {
          // Anything that answers over TLS will do; the CA is checked by the bridge, not here.
          return Shell("curl -s -o /dev/null -w '%{http_code}' --cacert " + tls_dir_ +
                       "/ca.pem https://127.0.0.1:" + std::to_string(nginx_port_) +
                       "/api/v1/server_settings || true")
                     .find("200") != std::string::npos;
        },
        std::chrono::seconds(20)))
        << ReadWholeFile(prefix + "/logs/error.log") << nginx_->Log();
  }

  std::string tls_dir_;
  int nginx_port_ = 0;
  std::unique_ptr<Subprocess> nginx_;
};

TEST_F(ZulipTlsTest, ZulipBehindTlsIsTrustedOnlyWithTheCaThatSignedIt) {
  const std::string key_a = "tlsKeyA123456789abcdefghijklmnop";
  const std::string key_b = "tlsKeyB123456789abcdefghijklmnop";
  StartZulip({{"trusting-bot@example.com", key_a}, {"system-ca-bot@example.com", key_b}});
  StartNginx();
  const std::string https_site = "https://127.0.0.1:" + std::to_string(nginx_port_);
  WriteConfig(
      {{"trusting", "trusting-bot@example.com", key_a, key_a, https_site, tls_dir_ + "/ca.pem"},
       {"system-ca", "system-ca-bot@example.com", key_b, key_b, https_site, ""}},
      "info");
  StartBridge(kSaslPassword);
  std::string queue = QueueOf("trusting-bot@example.com");
  ASSERT_FALSE(queue.empty());
  std::set<std::string> ids = PushMessages("trusting-bot@example.com", 20, 9000);
  AllMessagesInKafka(ids, std::chrono::seconds(60));

  // The account that trusts only the system CAs refuses the test CA's certificate, says why,
  // and never reaches Zulip's API.
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string log = bridge_->Log();
        return log.find("system-ca") != std::string::npos &&
               (log.find("certificate") != std::string::npos ||
                log.find("SSL") != std::string::npos);
      },
      std::chrono::seconds(30)))
      << bridge_->Log();
  EXPECT_TRUE(zulip_->QueuesOf("system-ca-bot@example.com").empty());
  StopBridge();
  nginx_->Signal(SIGQUIT);
  nginx_->Wait(std::chrono::seconds(10));
}

}  // namespace
}  // namespace zb::testing
