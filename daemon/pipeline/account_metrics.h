// AccountMetrics: the series one account keeps in the metrics registry (README "Metrics"): its
// counters and gauges, looked up once when the account is built, and the per-type series of each
// event type, looked up once per type rather than once per event. Every error class exists from
// the start at zero, so that dashboards and alerts see the series before the first failure.
//
// Threads: the account's (the event loop's); the registry itself is thread-safe.
#ifndef ZB_DAEMON_PIPELINE_ACCOUNT_METRICS_H_
#define ZB_DAEMON_PIPELINE_ACCOUNT_METRICS_H_

#include <map>
#include <string>
#include <string_view>

#include "daemon/base/metrics.h"

namespace zb {

// The per-type series of one event type, looked up once per type rather than per event.
struct AccountTypeSeries {
  Counter* received = nullptr;
  Counter* published = nullptr;
  // With metrics.per_account_type only.
  Counter* account_received = nullptr;
  Counter* account_published = nullptr;
};

class AccountMetrics {
 public:
  AccountMetrics(MetricsRegistry& registry, const std::string& account, bool per_account_type);

  Counter& Registrations(const std::string& reason) {
    Labels l = labels;
    l.emplace_back("reason", reason);
    return registry.GetCounter("zb_registrations_total", "Event queues registered, by reason", l);
  }
  Counter& Errors(std::string_view kind) {
    Labels l = labels;
    l.emplace_back("kind", std::string(kind));
    return registry.GetCounter("zb_zulip_errors_total", "Failed Zulip calls, by class", l);
  }
  const AccountTypeSeries& ForType(std::string_view type) {
    auto it = by_type.find(type);
    if (it != by_type.end()) return it->second;
    std::string t(type);
    AccountTypeSeries series;
    series.received = &registry.GetCounter("zb_type_events_received_total",
                                           "Events received, by type", {{"type", t}});
    series.published = &registry.GetCounter("zb_type_events_published_total",
                                            "Events Kafka acknowledged, by type", {{"type", t}});
    if (per_account_type) {
      Labels l = labels;
      l.emplace_back("type", t);
      series.account_received = &registry.GetCounter(
          "zb_account_type_events_received_total",
          "Events received, by account and type (metrics.per_account_type)", l);
      series.account_published = &registry.GetCounter(
          "zb_account_type_events_published_total",
          "Events Kafka acknowledged, by account and type (metrics.per_account_type)", l);
    }
    return by_type.emplace(std::move(t), series).first->second;
  }
  // Counts a received event of `type`; returns its series for the delivery to count.
  const AccountTypeSeries* CountReceived(std::string_view type) {
    const AccountTypeSeries& series = ForType(type);
    series.received->Inc();
    if (series.account_received) series.account_received->Inc();
    return &series;
  }
  Gauge& MissingTopic(const std::string& topic) {
    Labels l = labels;
    l.emplace_back("topic", topic);
    return registry.GetGauge("zb_kafka_missing_topic",
                             "1 while the account is held because this topic does not exist "
                             "(auto-creation off)",
                             l);
  }
  Counter& MissingTopicRefusals(const std::string& topic) {
    Labels l = labels;
    l.emplace_back("topic", topic);
    return registry.GetCounter(
        "zb_kafka_missing_topic_total",
        "Times Kafka refused a record because its topic does not exist (retries included)", l);
  }

  Labels labels;
  Counter& received;
  Counter& published;
  Counter& heartbeats;
  Counter& duplicates_skipped;
  Counter& polls;
  Counter& gaps;
  Counter& backfilled;
  Gauge& backfill_in_progress;
  Counter& queue_lost;
  Counter& reproduced;
  Counter& lifespan_ignored;
  Gauge& watermark;
  Gauge& lag;
  Gauge& last_poll;
  Gauge& last_heartbeat;
  Gauge& ratelimit_remaining;
  Gauge& last_event;
  Histogram& delivery_latency;
  MetricsRegistry& registry;
  const bool per_account_type;
  // Event types seen so far (a few dozen at most). Node-based: InFlight keeps pointers.
  std::map<std::string, AccountTypeSeries, std::less<>> by_type;
};

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_ACCOUNT_METRICS_H_
