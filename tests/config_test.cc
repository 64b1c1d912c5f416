// LoadConfig: the table of broken configurations with the exact message each one gets, the
// good configurations (every credential source, zuliprc variants, ${ENV}), and redaction.
#include "daemon/config/config.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::zb::testing::IsOk;
using ::zb::testing::TempDir;

// Every secret any good configuration uses; none may ever be printed.
constexpr char kEnvApiKey[] = "zbSecretKeyFromEnv0001";
constexpr char kKafkaPassword[] = "zbKafkaPassword0007";
const std::vector<std::string> kSecrets = {
    kEnvApiKey,
    "zbSecretKeyFromFile0002",
    "zbSecretKeyZuliprc0003",
    "zbSecretKeyZuliprc0004",
    "zbSecretKeyZuliprc0005",
    "zbSecretKeyZuliprc0006",
    kKafkaPassword,
    "zbSslKeyPassword0008",
    "zbOauthSecret0009",
    "zbInlineKey0010",
    "zbSaslUser0011",
};

const std::vector<std::string> kGoodConfigs = {
    "minimal.yaml",
    "api_key_file.yaml",
    "zuliprc.yaml",
    "localhost_insecure.yaml",
    "systemd_credential.yaml",
    "kafka_secrets.yaml",
};

// A copy of tests/testdata/config in a temp dir (configs create their state dirs beside
// themselves), and a fake environment.
class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest() {
    std::filesystem::copy(ZB_SOURCE_DIR "/tests/testdata/config", dir_.path(),
                          std::filesystem::copy_options::recursive);
    env_ = {{"ZB_TEST_API_KEY", kEnvApiKey},
            {"ZB_TEST_KAFKA_PASSWORD", kKafkaPassword},
            {"CREDENTIALS_DIRECTORY", dir_.Sub("secrets")}};
  }

  EnvLookup Env() const {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }

  std::string Write(const std::string& yaml) {
    std::string path = dir_.Sub("config.yaml");
    std::ofstream(path) << yaml;
    return path;
  }

  StatusOr<Config> Load(const std::string& yaml) { return LoadConfig(Write(yaml), Env()); }

  StatusOr<Config> LoadGood(const std::string& name) {
    return LoadConfig(dir_.Sub("good/" + name), Env());
  }

  TempDir dir_;
  std::map<std::string, std::string> env_;
};

// ---- broken configurations ----

struct BrokenCase {
  const char* name;
  const char* yaml;
  // One line per problem, without the leading "<file>:"; "{dir}" stands for the temp dir.
  const char* expected;
};

const BrokenCase kBroken[] = {
    {"UnknownKeySuggestsTheNearest",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key_fle: secrets/bot.key
)",
     "5:5: accounts[0]: no credentials; expected one of zuliprc, api_key, api_key_file or "
     "systemd_credential\n"
     "8:5: accounts[0].api_key_fle: unknown key; did you mean 'api_key_file'?"},
    {"UnknownKeyFarFromAnyListsTheValidOnes",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
verbosity: 3
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "4:1: verbosity: unknown key; expected one of: kafka, state_dir, http, log, metrics, "
     "retry, dead_letter, accounts"},
    {"UnknownKeyInKafka",
     R"(kafka:
  brokers: [localhost:9092]
  topic-template: "zulip.{type}"
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "3:3: kafka.topic-template: unknown key; did you mean 'topic_template'?"},
    {"BoolOfTheWrongType",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: k
    all_public_streams: yes
)",
     "9:25: accounts[0].all_public_streams: expected true or false"},
    {"IntegerOfTheWrongType",
     R"(kafka:
  brokers: [localhost:9092]
  flush_timeout_secs: soon
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "3:23: kafka.flush_timeout_secs: expected an integer from 1 to 3600"},
    {"QueueLifespanBeyondZulipsCap",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: k
    queue_lifespan_secs: 1209600
)",
     "9:26: accounts[0].queue_lifespan_secs: expected an integer from 600 to 604800 (Zulip's "
     "default is 600 and it caps lifespans at 7 days)"},
    {"ListWhereAMappingBelongs",
     R"(kafka: [localhost:9092]
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "1:8: kafka: expected a mapping of keys to values"},
    {"DuplicateAccountNamesIgnoringCase",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
  - {name: Bot, site: chat.example.com, email: bot2@example.com, api_key: k}
)",
     "6:12: accounts[1].name: duplicate account name 'Bot' (also accounts[0]); expected names "
     "unique regardless of case"},
    {"AccountNameThatCannotNameAFile",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - {name: "sales team/eu", site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "5:12: accounts[0].name: invalid account name 'sales team/eu'; expected 1 to 64 "
     "characters of A-Z a-z 0-9 . _ - (not . or ..), since it names files and Kafka keys"},
    {"MissingApiKeyFile",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key_file: secrets/missing.key
)",
     "8:19: accounts[0].api_key_file: cannot read '{dir}/secrets/missing.key': No such file "
     "or directory"},
    {"ApiKeyFileThatIsADirectory",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key_file: secrets
)",
     "8:19: accounts[0].api_key_file: cannot read '{dir}/secrets': Is a directory"},
    {"UnsetEnvironmentVariable",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: ${ZB_NOT_SET}
)",
     "8:14: accounts[0].api_key: environment variable ZB_NOT_SET is not set"},
    {"InvalidVariableNameWithoutEchoingTheValue",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: "zbInlineKey0010${not-a-name}"
)",
     "8:14: accounts[0].api_key: a ${...} with an invalid variable name; expected ${NAME} with "
     "NAME made of letters, digits and _ (write $${ for a literal ${)"},
    {"SystemdCredentialOutsideSystemd",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    systemd_credential: zulip-key
)",
     "8:25: accounts[0].systemd_credential: $CREDENTIALS_DIRECTORY is not set; expected the "
     "daemon to run under systemd with LoadCredential=zulip-key:..."},
    {"TwoCredentialSources",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: ${ZB_TEST_API_KEY}
    api_key_file: secrets/bot.key
)",
     "9:5: accounts[0].api_key_file: a second credential source; expected exactly one of "
     "zuliprc, api_key, api_key_file or systemd_credential"},
    {"SiteMissingBesideApiKey",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    email: bot@example.com
    api_key: k
)",
     "5:5: accounts[0].site: missing; expected the Zulip server URL, e.g. "
     "https://chat.example.com (required with api_key)"},
    {"ZuliprcWithoutKey",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    zuliprc: bad.zuliprc
)",
     "6:14: accounts[0].zuliprc: {dir}/bad.zuliprc: [api] has no key; expected key, email and "
     "site"},
    {"ZuliprcWithATypo",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    zuliprc: typo.zuliprc
)",
     "6:14: accounts[0].zuliprc: {dir}/typo.zuliprc: line 3: unknown key 'emial' in [api]; "
     "did you mean 'email'?"},
    {"ZuliprcInsecureNeitherTrueNorFalse",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    zuliprc: maybe.zuliprc
)",
     "6:14: accounts[0].zuliprc: {dir}/maybe.zuliprc: line 5: insecure must be true or false"},
    {"ZuliprcInsecureWithoutTheExplicitKey",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: dev
    zuliprc: zuliprc/localhost.zuliprc
)",
     "6:14: accounts[0].zuliprc: {dir}/zuliprc/localhost.zuliprc sets insecure=true; expected "
     "verification to be turned off only by tls.insecure_skip_verify: true in the "
     "configuration"},
    {"ClientCertKeyWithoutClientCert",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: k
    tls:
      client_cert_key: tls/client.key
)",
     "10:7: accounts[0].tls: client_cert_key without client_cert; expected both or "
     "client_cert alone"},
    {"StateDirThatCannotBeCreated",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: not_a_dir/state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "3:12: state_dir: cannot create '{dir}/not_a_dir/state': Not a directory; expected a "
     "directory the daemon can create and write"},
    {"StateDirThatIsAFile",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: not_a_dir
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "3:12: state_dir: '{dir}/not_a_dir' is not a directory; expected a directory"},
    {"AcksOtherThanAll",
     R"(kafka:
  brokers: [localhost:9092]
  properties:
    acks: 1
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "4:11: kafka.properties.acks: acks=1 would let a broker failure lose acknowledged events, "
     "breaking at-least-once delivery; expected all (or remove it)"},
    {"IdempotenceTurnedOff",
     R"(kafka:
  brokers: [localhost:9092]
  properties:
    enable.idempotence: false
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "4:25: kafka.properties.enable.idempotence: enable.idempotence=false would allow "
     "duplicates and reordering within a partition on retry; expected true (or remove it)"},
    {"BootstrapServersAmongTheProperties",
     R"(kafka:
  brokers: [localhost:9092]
  properties:
    bootstrap.servers: other:9092
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "4:5: kafka.properties.bootstrap.servers: set the brokers in kafka.brokers instead"},
    {"TopicTemplateWithAnInvalidCharacter",
     R"(kafka:
  brokers: [localhost:9092]
  topic_template: "zulip/{type}"
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "3:19: kafka.topic_template: yields 'zulip/alert_words' for type alert_words and account "
     "bot, not a valid Kafka topic name; expected 1 to 249 characters of a-z A-Z 0-9 . _ - "
     "(not . or ..)"},
    {"TopicTemplateTooLongForTheLongestAccountName",
     R"(kafka:
  brokers: [localhost:9092]
  topics:
    message: "zulip-messages-from-the-account-named-{account}-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
  - {name: a-rather-long-account-name-for-the-sales-department-in-europe, site: chat.example.com, email: b@example.com, api_key: k}
)",
     "4:14: kafka.topics.message: yields "
     "'zulip-messages-from-the-account-named-a-rather-long-account-name-for-the-sales-department-"
     "in-europe-"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' "
     "for type message and account "
     "a-rather-long-account-name-for-the-sales-department-in-europe, not a valid Kafka topic "
     "name; expected 1 to 249 characters of a-z A-Z 0-9 . _ - (not . or ..)"},
    {"TopicTemplateWithAnUnknownPlaceholder",
     R"(kafka:
  brokers: [localhost:9092]
  topic_template: "zulip.{realm}.{type}"
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "3:19: kafka.topic_template: unknown placeholder {realm}; expected {type}, {account}"},
    {"PerTypeTopicForAMisspelledType",
     R"(kafka:
  brokers: [localhost:9092]
  topics:
    mesage: zulip.messages
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "4:5: kafka.topics.mesage: unknown event type; did you mean 'message'?"},
    {"ConversationKeyForATypeWithoutConversations",
     R"(kafka:
  brokers: [localhost:9092]
  key:
    reaction: conversation
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "4:15: kafka.key.reaction: conversation keys exist only for message events; expected "
     "account"},
    {"NarrowThatIsAFlatList",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: k
    narrow: [channel, general]
)",
     "9:14: accounts[0].narrow[0]: not an [operator, operand] pair; expected a list of "
     "[operator, operand] pairs, e.g. [[channel, general], [is, dm]]\n"
     "9:23: accounts[0].narrow[1]: not an [operator, operand] pair; expected a list of "
     "[operator, operand] pairs, e.g. [[channel, general], [is, dm]]"},
    {"NarrowThatIsAString",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: k
    narrow: "channel:general"
)",
     "9:13: accounts[0].narrow: expected a list of [operator, operand] pairs, e.g. [[channel, "
     "general], [is, dm]]"},
    {"NarrowWithAnUnknownOperator",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: k
    narrow: [[chanel, general]]
)",
     "9:15: accounts[0].narrow[0]: unknown narrow operator 'chanel'; did you mean 'channel'? "
     "(the operators Zulip applies to event queues)"},
    {"MisspelledEventType",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: k
    event_types: [message, reactions]
)",
     "9:28: accounts[0].event_types[1]: unknown event type 'reactions'; did you mean "
     "'reaction'?"},
    {"BackfillFromNeitherIdNorTime",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: k
    backfill_from: yesterday
)",
     "9:20: accounts[0].backfill_from: expected none, a message id, or an RFC 3339 time such "
     "as 2026-01-31T00:00:00Z"},
    {"LogFormatNotOffered",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
log:
  format: text
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "5:11: log.format: expected one of: logfmt, json"},
    {"ListenAddressWithoutPort",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
http:
  listen: localhost
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "5:11: http.listen: invalid address 'localhost'; expected host:port, e.g. 127.0.0.1:9187 "
     "or [::1]:9187"},
    {"MaxBackoffBelowInitial",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
retry:
  initial_backoff_ms: 5000
  max_backoff_ms: 1000
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "6:19: retry.max_backoff_ms: smaller than retry.initial_backoff_ms (5000); expected at "
     "least that"},
    {"UnknownClientCapability",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts:
  - name: bot
    site: chat.example.com
    email: bot@example.com
    api_key: k
    client_capabilities:
      bulk_message_deletions: true
)",
     "10:7: accounts[0].client_capabilities.bulk_message_deletions: unknown key; did you mean "
     "'bulk_message_deletion'?"},
    {"DuplicateKey",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
state_dir: other
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "4:1: state_dir: duplicate key; the first is on line 3"},
    {"MissingAccounts",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
)",
     "1:1: accounts: missing; expected a list of at least one account"},
    {"EmptyAccountList",
     R"(kafka:
  brokers: [localhost:9092]
state_dir: state
accounts: []
)",
     "4:11: accounts: expected a list of at least one account"},
    {"MissingBrokers",
     R"(kafka:
  topic_template: "zulip.{type}"
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)",
     "2:3: kafka.brokers: missing; expected a list of host:port bootstrap servers"},
    {"YamlSyntaxError",
     R"(kafka:
  brokers: [localhost:9092
state_dir: state
)",
     "3:10: YAML syntax error: end of sequence flow not found"},
    {"EmptyFile", "", "the file is empty; expected a mapping with kafka and accounts"},
};

class ConfigBrokenTest : public ConfigTest, public ::testing::WithParamInterface<BrokenCase> {
 protected:
  void SetUp() override {
    env_.erase("CREDENTIALS_DIRECTORY");
    std::ofstream(dir_.Sub("bad.zuliprc")) << "[api]\nemail=bot@example.com\nsite=example.com\n";
    std::ofstream(dir_.Sub("typo.zuliprc"))
        << "[api]\nkey=zbSecretKeyZuliprc0003\nemial=bot@example.com\nsite=example.com\n";
    std::ofstream(dir_.Sub("maybe.zuliprc"))
        << "[api]\nkey=zbSecretKeyZuliprc0003\nemail=bot@example.com\nsite=example.com\n"
           "insecure=maybe\n";
  }
};

std::string Expected(const std::string& path, const std::string& dir, std::string text) {
  for (size_t at; (at = text.find("{dir}")) != std::string::npos;) text.replace(at, 5, dir);
  std::string out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!out.empty()) out += "\n";
    out += path + (std::isdigit(static_cast<unsigned char>(line[0])) ? ":" : ": ") + line;
  }
  return out;
}

TEST_P(ConfigBrokenTest, IsRefusedWithTheExactMessage) {
  const BrokenCase& c = GetParam();
  StatusOr<Config> config = Load(c.yaml);
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(config.status().IsInvalidArgument()) << config.status();
  EXPECT_EQ(config.status().message(), Expected(dir_.Sub("config.yaml"), dir_.path(), c.expected));
  for (const std::string& secret : kSecrets) {
    EXPECT_THAT(config.status().message(), Not(HasSubstr(secret)));
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ConfigBrokenTest, ::testing::ValuesIn(kBroken),
                         [](const ::testing::TestParamInfo<BrokenCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ConfigBrokenTableTest, HasAtLeastTwentyFiveCases) { EXPECT_GE(std::size(kBroken), 25u); }

TEST_F(ConfigTest, ReportsAConfigurationFileThatCannotBeRead) {
  StatusOr<Config> missing = LoadConfig(dir_.Sub("missing.yaml"), Env());
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsIOError());
  EXPECT_EQ(missing.status().message(), dir_.Sub("missing.yaml") + ": No such file or directory");
  StatusOr<Config> directory = LoadConfig(dir_.Sub("good"), Env());
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.status().message(), dir_.Sub("good") + ": Is a directory");
}

// ---- good configurations ----

TEST_F(ConfigTest, LoadsEveryGoodConfiguration) {
  for (const std::string& name : kGoodConfigs) {
    EXPECT_THAT(LoadGood(name), IsOk()) << name;
  }
}

TEST_F(ConfigTest, MinimalConfigurationGetsEveryDefault) {
  StatusOr<Config> config = LoadGood("minimal.yaml");
  ASSERT_THAT(config, IsOk());
  const Config& c = *config;
  EXPECT_EQ(c.kafka.brokers, std::vector<std::string>{"localhost:9092"});
  EXPECT_EQ(c.kafka.topic_template, "zulip.{type}");
  EXPECT_EQ(c.kafka.control_topic, "zulip.bridge.control");
  EXPECT_EQ(c.kafka.TopicFor("message", "analytics"), "zulip.message");
  EXPECT_EQ(c.kafka.KeyFor("message"), KeyChoice::kAccount);
  EXPECT_EQ(c.kafka.flush_timeout_secs, 30);
  EXPECT_TRUE(c.kafka.properties.empty());
  EXPECT_EQ(c.state_dir, dir_.Sub("good/state"));
  EXPECT_EQ(c.http.listen, "127.0.0.1:9187");
  EXPECT_EQ(c.http.host, "127.0.0.1");
  EXPECT_EQ(c.http.port, 9187);
  EXPECT_EQ(c.log.level, LogLevel::kInfo);
  EXPECT_EQ(c.log.format, LogFormat::kLogfmt);
  EXPECT_FALSE(c.metrics.per_account_type);
  EXPECT_EQ(c.retry.initial_backoff_ms, 1000);
  EXPECT_EQ(c.retry.max_backoff_ms, 120000);
  EXPECT_EQ(c.dead_letter.max_bytes, int64_t{1} << 30);
  ASSERT_EQ(c.accounts.size(), 1u);
  const AccountConfig& a = c.accounts[0];
  EXPECT_EQ(a.name, "analytics");
  EXPECT_EQ(a.site, "https://chat.example.com");
  EXPECT_EQ(a.ApiBaseUrl(), "https://chat.example.com/api/v1/");
  EXPECT_EQ(a.email, "analytics-bot@chat.example.com");
  EXPECT_EQ(a.api_key.Reveal(), kEnvApiKey);
  EXPECT_EQ(a.credential_source, CredentialSource::kApiKey);
  EXPECT_FALSE(a.event_types.has_value());
  EXPECT_EQ(a.fetch_event_types, (std::vector<std::string>{"message", "realm"}));
  EXPECT_TRUE(a.narrow.empty());
  EXPECT_FALSE(a.all_public_streams);
  EXPECT_FALSE(a.apply_markdown);
  EXPECT_FALSE(a.client_gravatar);
  EXPECT_FALSE(a.slim_presence);
  EXPECT_EQ(a.client_capabilities.size(), 10u);
  EXPECT_TRUE(a.client_capabilities.at("bulk_message_deletion"));
  EXPECT_FALSE(a.client_capabilities.at("user_list_incomplete"));
  EXPECT_EQ(a.queue_lifespan_secs, 604800);
  EXPECT_EQ(a.backfill_from.kind, BackfillFrom::Kind::kNone);
  EXPECT_FALSE(a.tls.insecure_skip_verify);
  EXPECT_TRUE(a.tls.ca_bundle.empty());
}

TEST_F(ConfigTest, CreatesTheStateDirPrivate) {
  ASSERT_THAT(LoadGood("minimal.yaml"), IsOk());
  struct stat st;
  ASSERT_EQ(::stat(dir_.Sub("good/state").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(std::filesystem::is_empty(dir_.Sub("good/state")));  // the probe is gone
}

TEST_F(ConfigTest, ReadsTheKeyFileWithoutItsNewline) {
  StatusOr<Config> config = LoadGood("api_key_file.yaml");
  ASSERT_THAT(config, IsOk());
  const AccountConfig& a = config->accounts[0];
  EXPECT_EQ(a.api_key.Reveal(), "zbSecretKeyFromFile0002");
  EXPECT_EQ(a.credential_source, CredentialSource::kApiKeyFile);
  EXPECT_EQ(a.credential_path, dir_.Sub("secrets/bot.key"));
  EXPECT_EQ(a.site, "https://chat.example.com");
  EXPECT_EQ(config->kafka.brokers, (std::vector<std::string>{"kafka-1:9092", "kafka-2:9092"}));
}

TEST_F(ConfigTest, ReadsEveryZuliprcVariant) {
  StatusOr<Config> config = LoadGood("zuliprc.yaml");
  ASSERT_THAT(config, IsOk());
  ASSERT_EQ(config->accounts.size(), 3u);
  const AccountConfig& plain = config->accounts[0];
  EXPECT_EQ(plain.api_key.Reveal(), "zbSecretKeyZuliprc0003");
  EXPECT_EQ(plain.email, "plain-bot@chat.example.com");
  EXPECT_EQ(plain.site, "https://chat.example.com");
  EXPECT_EQ(plain.credential_source, CredentialSource::kZuliprc);
  EXPECT_EQ(plain.credential_path, dir_.Sub("zuliprc/plain.zuliprc"));

  // Colons, spaces, upper-case names, comments, CRLF, another section, "/api/" suffix.
  const AccountConfig& colon = config->accounts[1];
  EXPECT_EQ(colon.api_key.Reveal(), "zbSecretKeyZuliprc0004");
  EXPECT_EQ(colon.email, "colon-bot@chat.example.com");
  EXPECT_EQ(colon.site, "https://chat.example.com");

  // TLS files relative to the zuliprc.
  const AccountConfig& tls = config->accounts[2];
  EXPECT_EQ(tls.tls.ca_bundle, dir_.Sub("tls/ca.pem"));
  EXPECT_EQ(tls.tls.client_cert, dir_.Sub("tls/client.pem"));
  EXPECT_EQ(tls.tls.client_cert_key, dir_.Sub("tls/client.key"));
  EXPECT_FALSE(tls.tls.insecure_skip_verify);
}

TEST_F(ConfigTest, ZuliprcInsecureNeedsTheExplicitKeyAndThenHoldsIt) {
  StatusOr<Config> config = LoadGood("localhost_insecure.yaml");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->accounts[0].site, "http://localhost:9991");
  EXPECT_TRUE(config->accounts[0].tls.insecure_skip_verify);
}

TEST_F(ConfigTest, ReadsTheSystemdCredential) {
  StatusOr<Config> config = LoadGood("systemd_credential.yaml");
  ASSERT_THAT(config, IsOk());
  const AccountConfig& a = config->accounts[0];
  EXPECT_EQ(a.api_key.Reveal(), "zbSecretKeyFromFile0002");
  EXPECT_EQ(a.credential_source, CredentialSource::kSystemdCredential);
  EXPECT_EQ(a.credential_path, dir_.Sub("secrets") + "/bot.key");
}

TEST_F(ConfigTest, ReadsEveryRegisterArgumentAndKafkaSetting) {
  StatusOr<Config> config = LoadGood("kafka_secrets.yaml");
  ASSERT_THAT(config, IsOk());
  const Config& c = *config;
  EXPECT_EQ(c.kafka.properties.at("sasl.password"), kKafkaPassword);  // ${ENV} substituted
  EXPECT_EQ(c.kafka.properties.at("linger.ms"), "50");
  EXPECT_EQ(c.kafka.TopicFor("reaction", "inline"), "zulip.inline.reaction");
  EXPECT_EQ(c.kafka.TopicFor("message", "inline"), "messages.inline");
  EXPECT_EQ(c.kafka.KeyFor("message"), KeyChoice::kConversation);
  EXPECT_EQ(c.kafka.KeyFor("reaction"), KeyChoice::kAccount);
  EXPECT_EQ(c.http.host, "::1");
  EXPECT_EQ(c.http.port, 0);
  EXPECT_EQ(c.log.level, LogLevel::kDebug);
  EXPECT_EQ(c.log.format, LogFormat::kJson);
  EXPECT_TRUE(c.metrics.per_account_type);
  EXPECT_EQ(c.retry.initial_backoff_ms, 250);
  EXPECT_EQ(c.dead_letter.max_bytes, 10485760);
  const AccountConfig& a = c.accounts[0];
  EXPECT_EQ(a.site, "http://localhost:9991");
  EXPECT_EQ(a.api_key.Reveal(), "zbInlineKey0010");
  EXPECT_EQ(a.event_types, (std::vector<std::string>{"message", "reaction", "restart"}));
  EXPECT_TRUE(a.fetch_event_types.empty());
  EXPECT_EQ(a.narrow, (std::vector<std::pair<std::string, std::string>>{{"channel", "general"},
                                                                        {"is", "dm"}}));
  EXPECT_TRUE(a.all_public_streams);
  EXPECT_TRUE(a.apply_markdown);
  EXPECT_TRUE(a.client_gravatar);
  EXPECT_TRUE(a.slim_presence);
  EXPECT_FALSE(a.client_capabilities.at("empty_topic_name"));     // overridden
  EXPECT_TRUE(a.client_capabilities.at("user_settings_object"));  // default kept
  EXPECT_EQ(a.queue_lifespan_secs, 86400);
  EXPECT_EQ(a.backfill_from.kind, BackfillFrom::Kind::kTime);
  EXPECT_EQ(a.backfill_from.unix_seconds, 1769857200);  // 2026-01-31T11:00:00Z
  const AccountConfig& b = c.accounts[1];
  EXPECT_EQ(b.api_key.Reveal(), kEnvApiKey);
  EXPECT_EQ(b.backfill_from.kind, BackfillFrom::Kind::kMessageId);
  EXPECT_EQ(b.backfill_from.message_id, 123456);
}

TEST_F(ConfigTest, ShippedExampleLoadsWithItsKeyInTheEnvironment) {
  std::ifstream in(ZB_SOURCE_DIR "/config/zulip-bridge.example.yaml");
  std::stringstream text;
  text << in.rdbuf();
  std::string yaml = text.str();
  const std::string kShippedStateDir = "/var/lib/zulip-bridge";
  size_t at = yaml.find("state_dir: " + kShippedStateDir);
  ASSERT_NE(at, std::string::npos);
  yaml.replace(at + 11, kShippedStateDir.size(), "state");
  env_["ZULIP_API_KEY"] = kEnvApiKey;
  StatusOr<Config> config = Load(yaml);
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->accounts[0].api_key.Reveal(), kEnvApiKey);
}

TEST_F(ConfigTest, EnvironmentSubstitutionKeepsLiteralDollars) {
  env_["ZB_PART"] = "middle";
  StatusOr<Config> config = Load(R"(kafka:
  brokers: [localhost:9092]
  properties:
    client.id: "a$b-$${literal}-${ZB_PART}-$"
state_dir: state
accounts:
  - {name: bot, site: chat.example.com, email: bot@example.com, api_key: k}
)");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->kafka.properties.at("client.id"), "a$b-${literal}-middle-$");
}

// ---- secrets ----

TEST_F(ConfigTest, RenderingNeverShowsASecret) {
  for (const std::string& name : kGoodConfigs) {
    StatusOr<Config> config = LoadGood(name);
    ASSERT_THAT(config, IsOk()) << name;
    std::string rendered = RenderConfig(*config);
    EXPECT_THAT(rendered, HasSubstr("api_key: <redacted>")) << name;
    for (const std::string& secret : kSecrets) {
      EXPECT_THAT(rendered, Not(HasSubstr(secret))) << name;
    }
  }
}

TEST_F(ConfigTest, RenderingRedactsSensitiveKafkaPropertiesOnly) {
  StatusOr<Config> config = LoadGood("kafka_secrets.yaml");
  ASSERT_THAT(config, IsOk());
  std::string rendered = RenderConfig(*config);
  EXPECT_THAT(rendered, HasSubstr("sasl.password: <redacted>"));
  EXPECT_THAT(rendered, HasSubstr("sasl.username: <redacted>"));
  EXPECT_THAT(rendered, HasSubstr("ssl.key.password: <redacted>"));
  EXPECT_THAT(rendered, HasSubstr("sasl.oauthbearer.client.secret: <redacted>"));
  EXPECT_THAT(rendered, HasSubstr("security.protocol: \"SASL_SSL\""));
  EXPECT_THAT(rendered, HasSubstr("linger.ms: \"50\""));
}

TEST(SecretTest, StreamsAsRedacted) {
  std::ostringstream out;
  out << Secret("zbInlineKey0010");
  EXPECT_EQ(out.str(), "<redacted>");
}

TEST(KafkaPropertyTest, KnowsWhichPropertiesAreSensitive) {
  for (const char* name :
       {"sasl.password", "sasl.username", "ssl.key.password", "ssl.key.pem", "ssl_key",
        "ssl.keystore.password", "sasl.oauthbearer.config", "sasl.oauthbearer.client.secret",
        "ssl.key.location", "ssl.ca.pem", "some.future.password", "my.Secret"}) {
    EXPECT_TRUE(IsSensitiveKafkaProperty(name)) << name;
  }
  for (const char* name : {"linger.ms", "acks", "security.protocol", "sasl.mechanism",
                           "ssl.ca.location", "client.id"}) {
    EXPECT_FALSE(IsSensitiveKafkaProperty(name)) << name;
  }
}

// ---- helpers ----

TEST(NormalizeSiteTest, FollowsZulipsPythonBindings) {
  EXPECT_EQ(NormalizeSite("chat.example.com"), "https://chat.example.com");
  EXPECT_EQ(NormalizeSite("localhost:9991"), "http://localhost:9991");
  EXPECT_EQ(NormalizeSite("http://zulip.internal/"), "http://zulip.internal");
  EXPECT_EQ(NormalizeSite("https://chat.example.com/api/"), "https://chat.example.com");
  EXPECT_EQ(NormalizeSite("https://example.com/zulip/api"), "https://example.com/zulip");
}

TEST(CheckTopicNameTest, AppliesKafkasRules) {
  EXPECT_THAT(CheckTopicName("zulip.message"), IsOk());
  EXPECT_THAT(CheckTopicName("A-b_c.9"), IsOk());
  EXPECT_THAT(CheckTopicName(std::string(249, 'x')), IsOk());
  EXPECT_FALSE(CheckTopicName(std::string(250, 'x')).ok());
  EXPECT_FALSE(CheckTopicName("").ok());
  EXPECT_FALSE(CheckTopicName(".").ok());
  EXPECT_FALSE(CheckTopicName("..").ok());
  EXPECT_FALSE(CheckTopicName("zulip message").ok());
  EXPECT_FALSE(CheckTopicName("zulip/message").ok());
}

TEST(KnownEventTypesTest, ListsTheFortyFourDocumentedTypes) {
  EXPECT_EQ(KnownEventTypes().size(), 44u);
}

}  // namespace
}  // namespace zb
