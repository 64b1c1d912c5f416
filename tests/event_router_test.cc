#include "daemon/pipeline/event_router.h"

#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::zb::testing::IsOk;

EventRouterOptions Options() {
  EventRouterOptions options;
  options.site = "https://chat.example.com";
  options.bridge_version = "0.1.0";
  return options;
}

EventHeader ChannelMessage(int64_t id, int64_t message_id) {
  EventHeader event;
  event.id = id;
  event.type = "message";
  event.message_id = message_id;
  event.stream_id = 7;
  event.topic = "lunch: where?";
  return event;
}

EventHeader DirectMessage(int64_t id, int64_t message_id, std::vector<int64_t> users) {
  EventHeader event;
  event.id = id;
  event.type = "message";
  event.message_id = message_id;
  event.dm_user_ids = std::move(users);
  return event;
}

EventHeader Event(int64_t id, std::string type) {
  EventHeader event;
  event.id = id;
  event.type = std::move(type);
  return event;
}

TEST(EventRouterTest, LiveMessageGetsEveryHeaderInOrder) {
  EventRouter router(Options());
  RoutedRecord out;
  EventHeader event = ChannelMessage(12, 4711);
  ASSERT_THAT(router.Route({"alice", event, "1517975029:0", 290}, out), IsOk());
  EXPECT_EQ(out.topic, "zulip.message");
  EXPECT_EQ(out.key, "alice");
  EXPECT_THAT(out.headers,
              ElementsAre(Pair("zulip-site", "https://chat.example.com"),
                          Pair("zulip-account", "alice"), Pair("zulip-event-type", "message"),
                          Pair("zulip-queue-id", "1517975029:0"), Pair("zulip-event-id", "12"),
                          Pair("zulip-feature-level", "290"), Pair("bridge-version", "0.1.0"),
                          Pair("zulip-dedup-key", "msg:https://chat.example.com:4711")));
}

TEST(EventRouterTest, BackfilledMessageIsMarkedAndKeepsTheMessageDedupKey) {
  EventRouter router(Options());
  RoutedRecord out;
  EventHeader event = ChannelMessage(-1, 4711);
  ASSERT_THAT(router.Route({"alice", event, "1517975029:0", 290}, out), IsOk());
  EXPECT_THAT(
      out.headers,
      ElementsAre(Pair("zulip-site", "https://chat.example.com"), Pair("zulip-account", "alice"),
                  Pair("zulip-event-type", "message"), Pair("zulip-backfill", "true"),
                  Pair("zulip-feature-level", "290"), Pair("bridge-version", "0.1.0"),
                  Pair("zulip-dedup-key", "msg:https://chat.example.com:4711")));
}

TEST(EventRouterTest, OtherEventsAreDedupedByQueueAndEventId) {
  EventRouter router(Options());
  RoutedRecord out;
  EventHeader event = Event(33, "update_message_flags");
  ASSERT_THAT(router.Route({"bob", event, "q:5", 1}, out), IsOk());
  EXPECT_EQ(out.topic, "zulip.update_message_flags");
  EXPECT_THAT(out.headers.back(), Pair("zulip-dedup-key", "https://chat.example.com:q:5:33"));
}

TEST(EventRouterTest, RefusesHeartbeatsWhichAreSettledNotPublished) {
  EventRouter router(Options());
  RoutedRecord out;
  EventHeader event = Event(3, "heartbeat");
  Status status = router.Route({"alice", event, "q", 1}, out);
  EXPECT_TRUE(status.IsInvalidArgument()) << status;
}

TEST(EventRouterTest, RefusesBackfilledEventThatIsNotAMessage) {
  EventRouter router(Options());
  RoutedRecord out;
  EventHeader event = Event(-1, "reaction");
  EXPECT_TRUE(router.Route({"alice", event, "q", 1}, out).IsInvalidArgument());
}

TEST(EventRouterTest, TemplateExpandsTypeAndAccountAndOverridesWin) {
  EventRouterOptions options = Options();
  options.topic_template = "zulip.{account}.{type}";
  options.topic_overrides["reaction"] = "reactions-{account}";
  options.topic_overrides["typing"] = "all.typing";
  EventRouter router(options);
  EXPECT_EQ(router.TopicFor("message", "alice"), "zulip.alice.message");
  EXPECT_EQ(router.TopicFor("message", "bob"), "zulip.bob.message");
  EXPECT_EQ(router.TopicFor("reaction", "bob"), "reactions-bob");
  EXPECT_EQ(router.TopicFor("typing", "bob"), "all.typing");
  // The cache hands back the same answer on a second look.
  EXPECT_EQ(router.TopicFor("message", "alice"), "zulip.alice.message");
}

TEST(EventRouterTest, UnknownPlaceholdersAreKeptAsWritten) {
  EventRouterOptions options = Options();
  options.topic_template = "z.{site}.{type}";
  EventRouter router(options);
  EXPECT_EQ(router.TopicFor("stream", "a"), "z.{site}.stream");
}

TEST(EventRouterTest, ConversationKeyForChannelMessageIsStreamIdAndTopic) {
  EventRouterOptions options = Options();
  options.key_modes["message"] = KeyMode::kConversation;
  EventRouter router(options);
  RoutedRecord out;
  EventHeader event = ChannelMessage(1, 2);
  ASSERT_THAT(router.Route({"alice", event, "q", 1}, out), IsOk());
  EXPECT_EQ(out.key, "stream:7:lunch: where?");
}

TEST(EventRouterTest, ConversationKeyForDirectMessageIsSortedUserIds) {
  EventRouterOptions options = Options();
  options.key_modes["message"] = KeyMode::kConversation;
  EventRouter router(options);
  RoutedRecord out;
  EventHeader event = DirectMessage(1, 2, {3, 10, 200});
  ASSERT_THAT(router.Route({"alice", event, "q", 1}, out), IsOk());
  EXPECT_EQ(out.key, "dm:3,10,200");
}

TEST(EventRouterTest, ConversationModeFallsBackToAccountForOtherTypes) {
  EventRouterOptions options = Options();
  options.default_key_mode = KeyMode::kConversation;
  EventRouter router(options);
  RoutedRecord out;
  EventHeader event = Event(4, "subscription");
  ASSERT_THAT(router.Route({"alice", event, "q", 1}, out), IsOk());
  EXPECT_EQ(out.key, "alice");
}

TEST(EventRouterTest, KeyModeNoneLeavesTheRecordUnkeyed) {
  EventRouterOptions options = Options();
  options.key_modes["typing"] = KeyMode::kNone;
  EventRouter router(options);
  RoutedRecord out;
  EventHeader typing = Event(4, "typing");
  ASSERT_THAT(router.Route({"alice", typing, "q", 1}, out), IsOk());
  EXPECT_EQ(out.key, std::nullopt);
  // Another type still gets the default account key from the same reused output.
  EventHeader presence = Event(5, "presence");
  ASSERT_THAT(router.Route({"alice", presence, "q", 1}, out), IsOk());
  EXPECT_EQ(out.key, "alice");
}

TEST(EventRouterTest, ReusedOutputHoldsOnlyTheLatestEventsHeaders) {
  EventRouter router(Options());
  RoutedRecord out;
  EventHeader live = ChannelMessage(9, 100);
  ASSERT_THAT(router.Route({"alice", live, "q", 1}, out), IsOk());
  EventHeader backfilled = ChannelMessage(-1, 101);
  ASSERT_THAT(router.Route({"alice", backfilled, "q", 1}, out), IsOk());
  EXPECT_EQ(out.headers.size(), 7u);
  EXPECT_THAT(out.headers[3], Pair("zulip-backfill", "true"));
  EXPECT_EQ(out.headers.back().second, "msg:https://chat.example.com:101");
}

TEST(EventRouterTest, ControlTopicDefaultsToTheDesignedName) {
  EventRouter router(Options());
  EXPECT_EQ(router.control_topic(), "zulip.bridge.control");
}

}  // namespace
}  // namespace zb
