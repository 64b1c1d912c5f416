// The kafka: section. See kafka_section.h.
#include "daemon/config/kafka_section.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <string>

#include "daemon/config/credentials.h"
#include "daemon/config/event_types.h"
#include "daemon/config/topic_template.h"

namespace zb::config_internal {
namespace {

const Keys kKeyChoices = {"account", "conversation"};

// One read of one kafka mapping; the methods are the loader's, moved here whole.
class KafkaReader {
 public:
  KafkaReader(const LoadContext& ctx, const std::vector<AccountConfig>& accounts, KafkaConfig& k)
      : diag_(ctx.diag), env_(ctx.env), accounts_(accounts), k_(k) {}

  void LoadKafka(const Entry& entry) {
    KafkaConfig& k = k_;
    Fields f = ReadMap(diag_, entry,
                       {"brokers", "topic_template", "topics", "control_topic", "key",
                        "flush_timeout_secs", "properties"});
    if (const Entry* e = Find(f, "brokers")) {
      LoadBrokers(*e);
    } else if (entry.value.IsMap()) {
      diag_.Add(entry.Mark(), "kafka.brokers",
                "missing; expected a list of host:port bootstrap servers");
    }
    if (const Entry* e = Find(f, "topic_template")) {
      if (ReadNonEmptyString(diag_, *e, &k.topic_template)) {
        CheckTemplate(*e, k.topic_template, KnownEventTypes());
      }
    }
    if (const Entry* e = Find(f, "topics")) {
      std::vector<std::string> order;
      Fields topics = ReadMap(diag_, *e, {}, &order);
      for (const std::string& type : order) {
        const Entry& t = topics.at(type);
        if (!CheckEventType(t, type, /*published_only=*/true)) continue;
        std::string tmpl;
        if (!ReadNonEmptyString(diag_, t, &tmpl)) continue;
        std::vector<std::string_view> one = {type};
        if (CheckTemplate(t, tmpl, one)) k.topics[type] = tmpl;
      }
    }
    if (const Entry* e = Find(f, "control_topic")) {
      if (ReadNonEmptyString(diag_, *e, &k.control_topic)) {
        Status s = CheckTopicName(k.control_topic);
        if (!s.ok()) diag_.Add(e->Mark(), e->path, s.message());
      }
    }
    if (const Entry* e = Find(f, "key")) LoadKeys(*e);
    if (const Entry* e = Find(f, "flush_timeout_secs")) {
      ReadInt(diag_, *e, 1, 3600, &k.flush_timeout_secs);
    }
    if (const Entry* e = Find(f, "properties")) LoadProperties(*e);
  }

  void LoadBrokers(const Entry& e) {
    std::vector<std::string> brokers;
    if (e.value.IsScalar()) {
      std::stringstream ss(e.value.Scalar());
      std::string item;
      while (std::getline(ss, item, ',')) brokers.push_back(item);
    } else if (!ReadStringList(diag_, e, &brokers)) {
      return;
    }
    if (brokers.empty()) {
      diag_.Add(e.Mark(), e.path, "empty; expected at least one host:port bootstrap server");
      return;
    }
    for (const std::string& b : brokers) {
      if (b.empty() || std::any_of(b.begin(), b.end(), [](char c) {
            return std::isspace(static_cast<unsigned char>(c));
          })) {
        diag_.Add(e.Mark(), e.path,
                  "invalid broker " + Quote(b) + "; expected host:port without spaces");
        return;
      }
    }
    k_.brokers = std::move(brokers);
  }

  // Refuses names that are not event types Zulip documents (typos would silently match
  // nothing). With `published_only`, also refuses heartbeat, which is never published.
  bool CheckEventType(const Entry& e, std::string_view type, bool published_only) {
    if (!IsKnownEventType(type)) {
      diag_.Add(e.key_mark, e.path, "unknown event type; " + Suggest(type, KnownEventTypes()));
      return false;
    }
    if (published_only && type == "heartbeat") {
      diag_.Add(e.key_mark, e.path, "heartbeats are never published; remove this entry");
      return false;
    }
    return true;
  }

  // Expands `tmpl` with each of `types` and each account name; reports the first bad result.
  bool CheckTemplate(const Entry& e, const std::string& tmpl,
                     const std::vector<std::string_view>& types) {
    if (Status s = CheckTopicTemplatePlaceholders(tmpl); !s.ok()) {
      diag_.Add(e.Mark(), e.path, s.message());
      return false;
    }
    std::vector<std::string> accounts;
    for (const AccountConfig& a : accounts_) accounts.push_back(a.name);
    if (accounts.empty()) accounts.push_back("account");
    for (std::string_view type : types) {
      if (type == "heartbeat") continue;
      for (const std::string& account : accounts) {
        std::string topic = ExpandTopic(tmpl, type, account);
        Status s = CheckTopicName(topic);
        if (!s.ok()) {
          diag_.Add(e.Mark(), e.path,
                    "yields " + Quote(topic) + " for type " + std::string(type) + " and account " +
                        account + ", " + s.message());
          return false;
        }
      }
    }
    return true;
  }

  void LoadKeys(const Entry& entry) {
    std::vector<std::string> order;
    Fields keys = ReadMap(diag_, entry, {}, &order);
    for (const std::string& type : order) {
      const Entry& e = keys.at(type);
      if (type != "default" && !CheckEventType(e, type, /*published_only=*/true)) continue;
      size_t choice = 0;
      if (!ReadChoice(diag_, e, kKeyChoices, &choice)) continue;
      KeyChoice key = choice == 0 ? KeyChoice::kAccount : KeyChoice::kConversation;
      if (key == KeyChoice::kConversation && type != "message") {
        diag_.Add(e.Mark(), e.path,
                  "conversation keys exist only for message events; expected account");
        continue;
      }
      if (type == "default") {
        k_.default_key = key;
      } else {
        k_.keys[type] = key;
      }
    }
  }

  void LoadProperties(const Entry& entry) {
    std::vector<std::string> order;
    Fields props = ReadMap(diag_, entry, {}, &order);
    for (const std::string& name : order) {
      const Entry& e = props.at(name);
      if (!e.value.IsScalar()) {
        diag_.Add(e.Mark(), e.path, "expected a scalar value (librdkafka takes strings)");
        continue;
      }
      std::string value, error;
      if (!SubstituteEnv(e.value.Scalar(), env_, &value, &error)) {
        diag_.Add(e.Mark(), e.path, error);
        continue;
      }
      std::string lower = ToLower(value);
      if (name == "bootstrap.servers" || name == "metadata.broker.list") {
        diag_.Add(e.key_mark, e.path, "set the brokers in kafka.brokers instead");
        continue;
      }
      if ((name == "acks" || name == "request.required.acks") && lower != "all" && lower != "-1") {
        diag_.Add(e.Mark(), e.path,
                  std::string(name).append("=").append(value).append(
                      " would let a broker failure lose acknowledged events, breaking "
                      "at-least-once delivery; expected all (or remove it)"));
        continue;
      }
      if (name == "enable.idempotence" && lower != "true") {
        diag_.Add(e.Mark(), e.path,
                  "enable.idempotence=" + value +
                      " would allow duplicates and reordering within a partition on retry; "
                      "expected true (or remove it)");
        continue;
      }
      k_.properties[name] = value;
    }
  }

 private:
  Diagnostics& diag_;
  const EnvLookup& env_;
  const std::vector<AccountConfig>& accounts_;
  KafkaConfig& k_;
};

}  // namespace

void ReadKafkaSection(const LoadContext& ctx, const Entry& entry,
                      const std::vector<AccountConfig>& accounts, KafkaConfig* out) {
  KafkaReader(ctx, accounts, *out).LoadKafka(entry);
}

std::string_view KeyChoiceName(KeyChoice key) {
  return kKeyChoices[key == KeyChoice::kAccount ? 0 : 1];
}

}  // namespace zb::config_internal
