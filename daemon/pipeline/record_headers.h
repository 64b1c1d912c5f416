// Record headers: the one place where the headers of every kind of Kafka record the bridge
// writes are built (DESIGN.md "Kafka records"): live events and backfilled messages (the router
// asks BuildEventHeaders) and control records such as gap records (BuildControlHeaders).
// Dead letters keep the headers of the record they were made from, and replaying them produces
// those again, so they build none.
//
// Every record starts with where it comes from (zulip-site, zulip-account) and carries the
// bridge's own facts (bridge-version) after what is particular to its kind; a header that
// every record should carry is added to one of those two groups in record_headers.cc, and
// every kind of record has it.
//
// Cost: the builders run once per event. They write into a vector the caller reuses, and
// reuse the strings already in it, so that once it has held a record's headers no further
// record allocates.
//
// Threads: pure functions, safe from any thread (the vector is the caller's).
#ifndef ZB_DAEMON_PIPELINE_RECORD_HEADERS_H_
#define ZB_DAEMON_PIPELINE_RECORD_HEADERS_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "daemon/kafka/publisher.h"
#include "daemon/zulip/event.h"

namespace zb {

// Header names, for whoever reads a header back (the dead-letter spool's event type).
inline constexpr std::string_view kSiteHeader = "zulip-site";
inline constexpr std::string_view kAccountHeader = "zulip-account";
inline constexpr std::string_view kEventTypeHeader = "zulip-event-type";
inline constexpr std::string_view kQueueIdHeader = "zulip-queue-id";
inline constexpr std::string_view kEventIdHeader = "zulip-event-id";
inline constexpr std::string_view kBackfillHeader = "zulip-backfill";
inline constexpr std::string_view kFeatureLevelHeader = "zulip-feature-level";
inline constexpr std::string_view kDedupKeyHeader = "zulip-dedup-key";
inline constexpr std::string_view kRecordTypeHeader = "bridge-record-type";
inline constexpr std::string_view kBridgeVersionHeader = "bridge-version";

// What every record says about where it comes from. Borrowed for the call.
struct RecordSource {
  std::string_view site;  // as configured and normalised (EventRouterOptions::site)
  std::string_view account;
  std::string_view bridge_version;
};

// An event's headers, into `out` (its strings reused), in this order: zulip-site,
// zulip-account, zulip-event-type, then for a live event (event.id >= 0) zulip-queue-id and
// zulip-event-id, or for a backfilled one zulip-backfill: true; then zulip-feature-level,
// bridge-version, zulip-dedup-key. The dedup key is "msg:<site>:<message id>" for a message
// event with a message id (live and backfilled alike), otherwise
// "<site>:<queue id>:<event id>".
void BuildEventHeaders(const RecordSource& source, const EventHeader& event,
                       std::string_view queue_id, int64_t feature_level,
                       std::vector<KafkaHeader>& out);

// A control record's headers, into `out`: zulip-site, zulip-account,
// bridge-record-type: `record_type` ("gap"), bridge-version.
void BuildControlHeaders(const RecordSource& source, std::string_view record_type,
                         std::vector<KafkaHeader>& out);

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_RECORD_HEADERS_H_
