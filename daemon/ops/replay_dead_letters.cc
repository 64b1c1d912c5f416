#include "daemon/ops/replay_dead_letters.h"

#include <atomic>
#include <charconv>
#include <memory>
#include <utility>
#include <vector>

#include "daemon/base/log.h"
#include "daemon/base/metrics.h"
#include "daemon/base/mutex.h"
#include "daemon/kafka/kafka_publisher.h"
#include "daemon/state/dead_letter_spool.h"

namespace zb {
namespace {

constexpr auto kReportMargin = std::chrono::seconds(30);
constexpr int64_t kDefaultMessageTimeoutMs = 300000;

// Delivery reports by token, handed over from the publisher's poll thread.
class Reports {
 public:
  void Add(std::vector<DeliveryReport> batch) {
    MutexLock lock(&mu_);
    for (DeliveryReport& report : batch) by_token_[report.token] = std::move(report);
    changed_.SignalAll();
  }
  // Waits until `count` reports are in or `deadline` passes; true when they are all in.
  bool WaitFor(size_t count, std::chrono::steady_clock::time_point deadline) {
    MutexLock lock(&mu_);
    while (by_token_.size() < count) {
      if (!changed_.WaitUntil(&mu_, deadline)) return by_token_.size() >= count;
    }
    return true;
  }
  // Waits a little for any report (room in librdkafka's queue).
  void WaitForAny(std::chrono::milliseconds at_most) {
    const auto deadline = std::chrono::steady_clock::now() + at_most;
    MutexLock lock(&mu_);
    const size_t now = by_token_.size();
    while (by_token_.size() == now) {
      if (!changed_.WaitUntil(&mu_, deadline)) return;
    }
  }
  std::optional<DeliveryReport> Get(uint64_t token) {
    MutexLock lock(&mu_);
    auto it = by_token_.find(token);
    if (it == by_token_.end()) return std::nullopt;
    return it->second;
  }
  void Clear() {
    MutexLock lock(&mu_);
    by_token_.clear();
  }

 private:
  Mutex mu_;
  CondVar changed_;
  std::map<uint64_t, DeliveryReport> by_token_ ZB_GUARDED_BY(mu_);
};

std::chrono::milliseconds DefaultReportTimeout(const KafkaPublisherOptions& options) {
  int64_t timeout_ms = kDefaultMessageTimeoutMs;
  auto effective = KafkaPublisher::EffectiveProperties(options);
  for (const char* name : {"message.timeout.ms", "delivery.timeout.ms"}) {
    auto it = effective.find(name);
    if (it == effective.end()) continue;
    // librdkafka validates the value when the publisher is built; a bad one keeps the default.
    int64_t value = 0;
    const std::string& text = it->second;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error == std::errc() && end == text.data() + text.size() && value > 0) timeout_ms = value;
  }
  return std::chrono::milliseconds(timeout_ms) + kReportMargin;
}

void StillFailing(DeadLetter letter, std::string error, ReplaySummary& summary,
                  std::vector<DeadLetter>& keep) {
  ++summary.still_failing;
  ++summary.reasons[error];
  LogWarn("dead-lettered record still refused; kept in the spool", {{"account", letter.account},
                                                                    {"event_id", letter.event_id},
                                                                    {"topic", letter.topic},
                                                                    {"error", error}});
  letter.error = std::move(error);
  keep.push_back(std::move(letter));
}

// Produces `records` and sorts them by their reports: delivered ones are counted, the others
// go to `keep` with their new error.
void SendBatch(KafkaPublisher& publisher, Reports& reports, std::vector<DeadLetter> records,
               std::chrono::milliseconds report_timeout, ReplaySummary& summary,
               std::vector<DeadLetter>& keep) {
  reports.Clear();
  std::vector<bool> produced(records.size(), false);
  size_t expected = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const DeadLetter& letter = records[i];
    KafkaRecord record;
    record.topic = letter.topic;
    if (letter.key) record.key = *letter.key;
    record.value = letter.value;
    record.headers = letter.headers;
    record.timestamp_ms = letter.timestamp_ms;
    record.token = i;
    Status status = publisher.Produce(record);
    while (status.IsUnavailable()) {  // librdkafka's queue is full: let deliveries make room
      reports.WaitForAny(std::chrono::milliseconds(100));
      status = publisher.Produce(record);
    }
    if (status.ok()) {
      produced[i] = true;
      ++expected;
    } else {
      StillFailing(std::move(records[i]), status.message(), summary, keep);
    }
  }
  // Whatever has no report by the deadline is kept (below).
  (void)reports.WaitFor(expected, std::chrono::steady_clock::now() + report_timeout);
  for (size_t i = 0; i < records.size(); ++i) {
    if (!produced[i]) continue;
    std::optional<DeliveryReport> report = reports.Get(i);
    if (!report) {
      // Kept: it may still land, and then a later replay sends it once more (a duplicate, as
      // at-least-once allows), never a loss.
      StillFailing(std::move(records[i]),
                   "no delivery report within " + std::to_string(report_timeout.count()) + " ms",
                   summary, keep);
    } else if (report->outcome == DeliveryReport::Outcome::kDelivered) {
      ++summary.replayed;
    } else {
      StillFailing(std::move(records[i]), report->error, summary, keep);
    }
  }
}

}  // namespace

StatusOr<ReplaySummary> ReplayDeadLetters(const Config& config, Fs& fs,
                                          const ReplayOptions& options) {
  MetricsRegistry metrics;  // the spool wants one; a one-shot command has no /metrics
  StatusOr<std::unique_ptr<DeadLetterSpool>> spool =
      DeadLetterSpool::Open(config.state_dir, fs, metrics, {config.dead_letter.max_bytes});
  ZB_RETURN_IF_ERROR(spool.status().WithContext("dead-letter spool"));

  auto reports = std::make_shared<Reports>();
  // Set once the publisher exists, before anything is produced.
  auto publisher_for_reports = std::make_shared<std::atomic<KafkaPublisher*>>(nullptr);
  KafkaPublisherOptions kafka;
  for (const std::string& broker : config.kafka.brokers) {
    if (!kafka.brokers.empty()) kafka.brokers += ',';
    kafka.brokers += broker;
  }
  for (const auto& [name, value] : config.kafka.properties) kafka.properties[name] = value;
  kafka.on_delivery = [reports, publisher_for_reports](std::vector<DeliveryReport> batch) {
    // A record that was not delivered is given up at once: the replay keeps its own copy (it
    // stays in the spool), and held by the publisher it would count against the producer's
    // limits, so a batch larger than them would wait for room forever with the broker down.
    if (KafkaPublisher* publisher = publisher_for_reports->load()) {
      for (const DeliveryReport& report : batch) {
        if (report.outcome != DeliveryReport::Outcome::kDelivered) {
          (void)publisher->Release(report.token);
        }
      }
    }
    reports->Add(std::move(batch));
  };
  kafka.on_error = [](const KafkaErrorReport& error) {
    LogWarn("Kafka", {{"error", error.error}, {"fatal", error.fatal}});
  };
  const std::chrono::milliseconds report_timeout =
      options.report_timeout ? *options.report_timeout : DefaultReportTimeout(kafka);
  StatusOr<std::unique_ptr<KafkaPublisher>> publisher = KafkaPublisher::Create(std::move(kafka));
  ZB_RETURN_IF_ERROR(publisher.status().WithContext("kafka"));
  publisher_for_reports->store(publisher->get());

  ReplaySummary summary;
  summary.spool_path = (*spool)->path();
  // At most two rounds: a replaying file a crashed replay left, then the spool.
  for (int round = 0; round < 2; ++round) {
    StatusOr<DeadLetterBatch> batch = (*spool)->TakeForReplay();
    ZB_RETURN_IF_ERROR(batch.status());
    if (batch->leftover) {
      LogInfo("replaying the records a previous replay did not finish",
              {{"records", batch->records.size()}, {"path", (*spool)->replaying_path()}});
    }
    std::vector<DeadLetter> keep;
    SendBatch(**publisher, *reports, std::move(batch->records), report_timeout, summary, keep);
    summary.unreadable += batch->unreadable_lines.size();
    ZB_RETURN_IF_ERROR((*spool)->FinishReplay(keep, batch->unreadable_lines));
    if (!batch->leftover) break;
  }
  return summary;
}

std::string FormatReplaySummary(const ReplaySummary& summary) {
  std::string out = "replayed " + std::to_string(summary.replayed) + ", still failing " +
                    std::to_string(summary.still_failing);
  if (summary.unreadable > 0) {
    out += ", unreadable lines kept " + std::to_string(summary.unreadable);
  }
  out += "\n";
  for (const auto& [reason, count] : summary.reasons) {
    out += "  " + std::to_string(count) + " x " + reason + "\n";
  }
  if (!summary.all_delivered()) out += "kept in " + summary.spool_path + "\n";
  return out;
}

int RunReplayDeadLetters(const Config& config, std::FILE* out) {
  PosixFs fs;
  StatusOr<ReplaySummary> summary = ReplayDeadLetters(config, fs);
  if (!summary.ok()) {
    std::fprintf(stderr, "zulip-bridge: replay-dead-letters: %s\n",
                 summary.status().message().c_str());
    return 1;
  }
  std::fputs(FormatReplaySummary(*summary).c_str(), out);
  return summary->all_delivered() ? 0 : 1;
}

}  // namespace zb
