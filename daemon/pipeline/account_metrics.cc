#include "daemon/pipeline/account_metrics.h"

#include <iterator>

#include "daemon/state/dead_letter_spool.h"
#include "daemon/zulip/zulip_client.h"

namespace zb {
namespace {

// zb_kafka_delivery_latency_seconds: a healthy local cluster acknowledges in milliseconds,
// linger.ms adds 5; the top buckets catch a broker outage (records wait and are produced again
// until the broker is back).
constexpr double kDeliveryLatencyBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,      2.5,   5,    10,    30,   60};

}  // namespace

AccountMetrics::AccountMetrics(MetricsRegistry& r, const std::string& account,
                               bool per_account_type)
    : labels{{"account", account}},
      received(r.GetCounter("zb_events_received_total",
                            "Events received from Zulip (heartbeats included)", labels)),
      published(r.GetCounter("zb_events_published_total", "Events Kafka acknowledged", labels)),
      heartbeats(r.GetCounter("zb_heartbeats_total", "Heartbeats received and settled", labels)),
      duplicates_skipped(r.GetCounter(
          "zb_duplicates_skipped_total",
          "Events received again after a retried poll and not produced twice", labels)),
      polls(r.GetCounter("zb_polls_total", "GET /events that returned 200", labels)),
      gaps(r.GetCounter("zb_gaps_total", "Gap records published (one per lost queue)", labels)),
      backfilled(r.GetCounter("zb_backfilled_messages_total",
                              "Messages read through GET /messages after a gap and acknowledged",
                              labels)),
      backfill_in_progress(r.GetGauge("zb_backfill_in_progress",
                                      "1 while the account backfills after a gap", labels)),
      queue_lost(
          r.GetCounter("zb_queues_lost_total", "Event queues Zulip no longer had (a gap)", labels)),
      reproduced(r.GetCounter("zb_records_reproduced_total",
                              "Records produced again after Kafka could not take them", labels)),
      lifespan_ignored(r.GetCounter("zb_queue_lifespan_ignored_total",
                                    "Registrations whose server ignored queue_lifespan_secs",
                                    labels)),
      watermark(r.GetGauge("zb_watermark", "Durable delivered watermark (last_event_id)", labels)),
      lag(r.GetGauge("zb_watermark_lag", "Events received but not yet settled (received - settled)",
                     labels)),
      last_poll(r.GetGauge("zb_last_successful_poll_timestamp_seconds",
                           "Unix time of the last GET /events that returned 200", labels)),
      last_heartbeat(r.GetGauge("zb_last_heartbeat_timestamp_seconds",
                                "Unix time of the last heartbeat", labels)),
      ratelimit_remaining(
          r.GetGauge("zb_ratelimit_remaining", "X-RateLimit-Remaining of the last answer", labels)),
      last_event(r.GetGauge("zb_last_event_timestamp_seconds",
                            "Unix time the last event (not a heartbeat) arrived", labels)),
      delivery_latency(r.GetHistogram(
          "zb_kafka_delivery_latency_seconds",
          "Time from receiving a record's event to Kafka's acknowledgement of the record "
          "(live, backfilled and control records; retries included)",
          {std::begin(kDeliveryLatencyBuckets), std::end(kDeliveryLatencyBuckets)})),
      registry(r),
      per_account_type(per_account_type) {
  // Every class exists from the start at zero, so that dashboards and alerts see the series
  // before the first failure.
  for (ZulipErrorKind kind : {ZulipErrorKind::kUnauthenticated, ZulipErrorKind::kConfiguration,
                              ZulipErrorKind::kQueueLost, ZulipErrorKind::kRateLimited,
                              ZulipErrorKind::kTransient, ZulipErrorKind::kBadRequest}) {
    Errors(ZulipErrorKindName(kind));
  }
  // The spool counts per account; the series exists from the start.
  DeadLetterSpool::RecordsCounter(r, account);
}

}  // namespace zb
