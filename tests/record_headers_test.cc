#include "daemon/pipeline/record_headers.h"

#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/pipeline/event_router.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::zb::testing::IsOk;

constexpr RecordSource kSource{"https://chat.example.com", "alice", "0.1.0"};

EventHeader Message(int64_t id, int64_t message_id) {
  EventHeader event;
  event.id = id;
  event.type = "message";
  event.message_id = message_id;
  event.stream_id = 7;
  event.topic = "lunch";
  return event;
}

EventHeader Event(int64_t id, std::string type) {
  EventHeader event;
  event.id = id;
  event.type = std::move(type);
  return event;
}

TEST(RecordHeadersTest, LiveEventHasItsQueueAndEventIdAndTheMessageDedupKey) {
  std::vector<KafkaHeader> out;
  BuildEventHeaders(kSource, Message(12, 4711), "1517975029:0", 290, out);
  EXPECT_THAT(out, ElementsAre(Pair("zulip-site", "https://chat.example.com"),
                               Pair("zulip-account", "alice"), Pair("zulip-event-type", "message"),
                               Pair("zulip-queue-id", "1517975029:0"), Pair("zulip-event-id", "12"),
                               Pair("zulip-feature-level", "290"), Pair("bridge-version", "0.1.0"),
                               Pair("zulip-dedup-key", "msg:https://chat.example.com:4711")));
}

TEST(RecordHeadersTest, BackfilledMessageIsMarkedInsteadOfQueueAndEventId) {
  std::vector<KafkaHeader> out;
  BuildEventHeaders(kSource, Message(-1, 4711), "", 290, out);
  EXPECT_THAT(out, ElementsAre(Pair("zulip-site", "https://chat.example.com"),
                               Pair("zulip-account", "alice"), Pair("zulip-event-type", "message"),
                               Pair("zulip-backfill", "true"), Pair("zulip-feature-level", "290"),
                               Pair("bridge-version", "0.1.0"),
                               Pair("zulip-dedup-key", "msg:https://chat.example.com:4711")));
}

TEST(RecordHeadersTest, OtherEventsAreDedupedBySiteQueueAndEventId) {
  std::vector<KafkaHeader> out;
  BuildEventHeaders(kSource, Event(13, "reaction"), "q1", 290, out);
  ASSERT_EQ(out.size(), 8u);
  EXPECT_THAT(out.back(), Pair("zulip-dedup-key", "https://chat.example.com:q1:13"));
}

TEST(RecordHeadersTest, ControlRecordNamesItsTypeBetweenSourceAndBridgeHeaders) {
  std::vector<KafkaHeader> out;
  BuildControlHeaders(kSource, "gap", out);
  EXPECT_THAT(out, ElementsAre(Pair("zulip-site", "https://chat.example.com"),
                               Pair("zulip-account", "alice"), Pair("bridge-record-type", "gap"),
                               Pair("bridge-version", "0.1.0")));
}

// Every kind of record carries the headers that say where it comes from and which bridge wrote
// it, with the same values.
TEST(RecordHeadersTest, EveryKindOfRecordCarriesTheCommonHeaders) {
  std::vector<std::vector<KafkaHeader>> kinds(4);
  BuildEventHeaders(kSource, Message(12, 4711), "q1", 290, kinds[0]);
  BuildEventHeaders(kSource, Message(-1, 4711), "", 290, kinds[1]);
  BuildEventHeaders(kSource, Event(13, "reaction"), "q1", 290, kinds[2]);
  BuildControlHeaders(kSource, "gap", kinds[3]);
  for (const std::vector<KafkaHeader>& headers : kinds) {
    EXPECT_THAT(headers, ::testing::IsSupersetOf({Pair("zulip-site", "https://chat.example.com"),
                                                  Pair("zulip-account", "alice"),
                                                  Pair("bridge-version", "0.1.0")}));
  }
}

// Per event: once the vector has held a record's headers, the next ones of the same shape
// reuse its storage; a shorter record leaves only its own headers.
TEST(RecordHeadersTest, ReusesTheCallersVectorAndStrings) {
  std::vector<KafkaHeader> out;
  BuildEventHeaders(kSource, Event(1000013, "reaction"), "1517975029:0", 290, out);
  const KafkaHeader* storage = out.data();
  const char* dedup = out.back().second.data();
  BuildEventHeaders(kSource, Event(1000014, "reaction"), "1517975029:0", 290, out);
  EXPECT_EQ(out.data(), storage);
  EXPECT_EQ(out.back().second.data(), dedup);
  EXPECT_THAT(out.back(), Pair("zulip-dedup-key", "https://chat.example.com:1517975029:0:1000014"));
  BuildEventHeaders(kSource, Message(-1, 4711), "", 290, out);  // one header fewer
  EXPECT_EQ(out.size(), 7u);
  EXPECT_EQ(out.data(), storage);
}

// The router's headers for an event are these (DESIGN.md "Kafka records"), byte for byte.
TEST(RecordHeadersTest, MatchesWhatTheRouterPutsOnAnEvent) {
  EventRouterOptions options;
  options.site = std::string(kSource.site);
  options.bridge_version = std::string(kSource.bridge_version);
  EventRouter router(options);
  EventHeader dm = Message(21, 99);
  dm.stream_id.reset();
  dm.dm_user_ids = {3, 42};
  for (const EventHeader& event :
       {Message(12, 4711), Message(-1, 4711), Event(13, "reaction"), dm, Event(0, "presence")}) {
    SCOPED_TRACE(event.type + " " + std::to_string(event.id));
    const std::string queue_id = event.id < 0 ? "" : "1517975029:0";
    RoutedRecord routed;
    ASSERT_THAT(router.Route({kSource.account, event, queue_id, 290}, routed), IsOk());
    std::vector<KafkaHeader> built;
    BuildEventHeaders(kSource, event, queue_id, 290, built);
    EXPECT_EQ(built, routed.headers);
  }
}

}  // namespace
}  // namespace zb
