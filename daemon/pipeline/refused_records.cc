#include "daemon/pipeline/refused_records.h"

#include <chrono>
#include <iterator>
#include <utility>

#include "daemon/base/log.h"
#include "daemon/base/time_format.h"
#include "daemon/pipeline/record_headers.h"

namespace zb {
namespace {

// How long a record Kafka could not take waits before it is produced again.
constexpr auto kReproduceDelay = std::chrono::seconds(1);
// How long a record the dead-letter spool refused (full, I/O error) waits before the next try.
constexpr auto kSpoolRetryDelay = std::chrono::seconds(10);
// A missing topic is reported at most this often per account.
constexpr auto kMissingTopicLogInterval = std::chrono::minutes(1);

std::string HeaderValue(const std::vector<KafkaHeader>& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return "";
}

}  // namespace

RefusedRecords::RefusedRecords(Env env) : env_(std::move(env)) {}

RefusedRecords::~RefusedRecords() {
  // An account that goes away (a reload removed it) must not leave timers to fire on freed
  // memory; until then they run even after a Stop(), so that held records still settle.
  env_.loop.CancelTimer(reproduce_timer_);
  env_.loop.CancelTimer(spool_timer_);
}

void RefusedRecords::OnFailed(const DeliveryReport& report, int64_t event_id) {
  switch (report.outcome) {
    case DeliveryReport::Outcome::kDelivered:
      OnDelivered(report.token);
      return;
    case DeliveryReport::Outcome::kPermanent: {
      ForgetMissingTopicToken(report.token);
      event_ids_.erase(report.token);
      StatusOr<OwnedKafkaRecord> record = env_.publisher.Release(report.token);
      if (!record.ok()) {
        // The publisher holds every failed record until it is released: a bug if it does not.
        LogAccount(LogLevel::kError, env_.account, "refused record not held by the producer",
                   {{"event_id", event_id}, {"error", record.status().message()}});
        return;
      }
      SpoolOrHold({report.token, MakeDeadLetter(event_id, std::move(*record), report.error)});
      return;
    }
    case DeliveryReport::Outcome::kMissingTopic:
      // Held, not spooled: the operator creates the topic and the account goes on.
      NoteMissingTopic(report.topic, event_id, report.error);
      if (missing_topic_tokens_.emplace(report.token, report.topic).second) {
        ++missing_topics_[report.topic];
      }
      break;
    case DeliveryReport::Outcome::kRetryable:
      env_.note_error(report.error);
      LogAccount(LogLevel::kWarn, env_.account, "Kafka did not take an event; producing it again",
                 {{"event_id", event_id}, {"error", report.error}});
      break;
  }
  // Not written. The publisher holds the record; produce it again after a pause.
  to_reproduce_.push_back(report.token);
  event_ids_[report.token] = event_id;
  if (reproduce_timer_ == 0) {
    reproduce_timer_ = env_.loop.AddTimer(kReproduceDelay, [this] { ReproduceHeld(); });
  }
}

void RefusedRecords::OnDelivered(uint64_t token) {
  ForgetMissingTopicToken(token);
  event_ids_.erase(token);
}

void RefusedRecords::ReproduceHeld() {
  reproduce_timer_ = 0;
  size_t done = 0;
  for (; done < to_reproduce_.size(); ++done) {
    const uint64_t token = to_reproduce_[done];
    const int64_t event_id = event_ids_.count(token) ? event_ids_[token] : -1;
    Status status = env_.publisher.Reproduce(token);
    if (status.IsNotFound()) {  // settled meanwhile
      event_ids_.erase(token);
      continue;
    }
    if (status.IsInvalidArgument()) {
      // Refused for good this time (the producer's limits changed): dead-letter it.
      ForgetMissingTopicToken(token);
      event_ids_.erase(token);
      StatusOr<OwnedKafkaRecord> record = env_.publisher.Release(token);
      if (record.ok()) {
        SpoolOrHold({token, MakeDeadLetter(event_id, std::move(*record), status.message())});
      }
      continue;
    }
    if (!status.ok()) {
      // Still no room, or the topic still missing: keep the rest. A missing topic is reported
      // again (at most once a minute) for as long as it holds the account.
      auto missing = missing_topic_tokens_.find(token);
      if (missing != missing_topic_tokens_.end()) {
        NoteMissingTopic(missing->second, event_id, status.message());
      }
      break;
    }
    event_ids_.erase(token);
    env_.metrics.reproduced.Inc();
  }
  to_reproduce_.erase(to_reproduce_.begin(),
                      to_reproduce_.begin() + static_cast<std::ptrdiff_t>(done));
  if (!to_reproduce_.empty()) {
    reproduce_timer_ = env_.loop.AddTimer(kReproduceDelay, [this] { ReproduceHeld(); });
  }
}

zb::DeadLetter RefusedRecords::MakeDeadLetter(int64_t event_id, OwnedKafkaRecord record,
                                              std::string error) const {
  zb::DeadLetter letter;
  letter.account = env_.account;
  letter.event_id = event_id;
  letter.type = HeaderValue(record.headers, kEventTypeHeader);
  letter.topic = std::move(record.topic);
  letter.key = std::move(record.key);
  letter.headers = std::move(record.headers);
  letter.timestamp_ms = record.timestamp_ms;
  letter.error = std::move(error);
  letter.spooled_at = FormatUtcMillis(
      std::chrono::duration_cast<std::chrono::milliseconds>(env_.clock.WallNow().time_since_epoch())
          .count());
  letter.value = std::move(record.value);
  return letter;
}

void RefusedRecords::DeadLetter(uint64_t token, int64_t event_id, OwnedKafkaRecord record,
                                std::string error) {
  SpoolOrHold({token, MakeDeadLetter(event_id, std::move(record), std::move(error))});
}

Status RefusedRecords::SpoolNow(int64_t event_id, OwnedKafkaRecord record, std::string error) {
  return env_.dead_letters.Append(MakeDeadLetter(event_id, std::move(record), std::move(error)));
}

void RefusedRecords::SpoolOrHold(Letter pending) {
  Status spooled = env_.dead_letters.Append(pending.letter);
  if (spooled.ok()) {
    env_.settle(pending.token);
    return;
  }
  env_.note_error(spooled.message());
  LogAccount(LogLevel::kError, env_.account,
             "Kafka will never take an event and the dead-letter spool did not take it; "
             "holding the account",
             {{"event_id", pending.letter.event_id},
              {"topic", pending.letter.topic},
              {"kafka_error", pending.letter.error},
              {"error", spooled.message()}});
  to_spool_.push_back(std::move(pending));
  if (spool_timer_ == 0) {
    spool_timer_ = env_.loop.AddTimer(kSpoolRetryDelay, [this] { RetrySpool(); });
  }
}

void RefusedRecords::RetrySpool() {
  spool_timer_ = 0;
  std::vector<Letter> pending;
  pending.swap(to_spool_);
  for (size_t i = 0; i < pending.size(); ++i) {
    Status spooled = env_.dead_letters.Append(pending[i].letter);
    if (spooled.ok()) {
      env_.settle(pending[i].token);
      continue;
    }
    env_.note_error(spooled.message());
    LogAccount(LogLevel::kError, env_.account,
               "dead-letter spool still refuses; holding the account",
               {{"records", pending.size() - i}, {"error", spooled.message()}});
    to_spool_.insert(to_spool_.end(),
                     std::make_move_iterator(pending.begin() + static_cast<std::ptrdiff_t>(i)),
                     std::make_move_iterator(pending.end()));
    break;
  }
  if (!to_spool_.empty() && spool_timer_ == 0) {
    spool_timer_ = env_.loop.AddTimer(kSpoolRetryDelay, [this] { RetrySpool(); });
  }
}

void RefusedRecords::NoteMissingTopic(const std::string& topic, int64_t event_id,
                                      const std::string& error) {
  env_.metrics.MissingTopicRefusals(topic).Inc();
  if (missing_topics_.emplace(topic, 0).second) env_.metrics.MissingTopic(topic).Set(1);
  env_.note_error("Kafka topic " + topic + " does not exist: " + error);
  Clock::TimePoint now = env_.clock.Now();
  if (missing_topic_logged_at_ && now - *missing_topic_logged_at_ < kMissingTopicLogInterval) {
    return;
  }
  missing_topic_logged_at_ = now;
  LogAccount(LogLevel::kError, env_.account,
             "Kafka topic does not exist and the broker does not create it; holding the "
             "account (the Zulip queue buffers) until the topic is created",
             {{"topic", topic}, {"event_id", event_id}, {"error", error}});
}

void RefusedRecords::TopicTookARecord(std::string_view topic) {
  if (missing_topics_.empty()) return;
  // A topic refused at once earlier takes records again.
  auto it = missing_topics_.find(topic);
  if (it != missing_topics_.end() && it->second == 0) MissingTopicCleared(std::string(topic));
}

void RefusedRecords::ForgetMissingTopicToken(uint64_t token) {
  if (missing_topic_tokens_.empty()) return;
  auto it = missing_topic_tokens_.find(token);
  if (it == missing_topic_tokens_.end()) return;
  std::string topic = std::move(it->second);
  missing_topic_tokens_.erase(it);
  auto held = missing_topics_.find(topic);
  if (held != missing_topics_.end() && held->second > 0 && --held->second == 0) {
    MissingTopicCleared(topic);
  }
}

void RefusedRecords::MissingTopicCleared(const std::string& topic) {
  missing_topics_.erase(topic);
  env_.metrics.MissingTopic(topic).Set(0);
  LogAccount(LogLevel::kInfo, env_.account, "Kafka topic exists now; the account goes on",
             {{"topic", topic}});
}

}  // namespace zb
