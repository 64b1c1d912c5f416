// EventQueue on its own: ids, pruning and the virtual (merged) flag events of
// zerver/tornado/event_queue.py, without HTTP.
#include "tests/fake_zulip/event_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb::fake_zulip {
namespace {

using ::zb::testing::IsOk;

EventInput Event(const std::string& json) {
  StatusOr<EventInput> event = ParseEvent(json);
  EXPECT_THAT(event, IsOk());
  return event.ok() ? *event : EventInput{};
}

std::string Flags(const std::string& op, const std::string& flag, const std::string& messages,
                  bool all = false) {
  return R"({"type":"update_message_flags","op":")" + op + R"(","operation":")" + op +
         R"(","flag":")" + flag + R"(","messages":)" + messages + R"(,"all":)" +
         (all ? "true" : "false") + "}";
}

TEST(EventQueueTest, IdsStartAtZeroAndTheOldestPrunedIsMinusOne) {
  EventQueue queue;
  EXPECT_EQ(queue.newest_pruned_id(), -1);
  EXPECT_EQ(queue.Push(Event(R"({"type":"a"})")), 0);
  EXPECT_EQ(queue.Push(Event(R"({"type":"b"})")), 1);
  EXPECT_EQ(queue.Contents(), R"([{"type":"a","id":0},{"type":"b","id":1}])");
}

TEST(EventQueueTest, PruneDropsThroughTheIdAndRemembersTheNewestDropped) {
  EventQueue queue;
  for (int i = 0; i < 3; ++i) queue.Push(Event(R"({"type":"a"})"));
  queue.Prune(1);
  EXPECT_EQ(queue.newest_pruned_id(), 1);
  EXPECT_EQ(queue.Contents(), R"([{"type":"a","id":2}])");
}

TEST(EventQueueTest, FlagEventsMergeIntoTheNewestIdWithTheMessagesConcatenated) {
  EventQueue queue;
  queue.Push(Event(Flags("add", "read", "[1,2]")));
  queue.Push(Event(R"({"type":"a"})"));
  queue.Push(Event(Flags("add", "read", "[3]")));
  EXPECT_EQ(queue.Contents(),
            R"([{"type":"a","id":1},)"
            R"({"type":"update_message_flags","op":"add","operation":"add","flag":"read",)"
            R"("messages":[1,2,3],"all":false,"id":2}])");
  // The ground truth keeps both events as pushed.
  EXPECT_EQ(queue.ground_truth().size(), 3u);
}

TEST(EventQueueTest, DifferentFlagKeysMergeSeparatelyAndSlotInByNewestId) {
  EventQueue queue;
  queue.Push(Event(Flags("add", "starred", "[1]")));  // 0
  queue.Push(Event(Flags("add", "read", "[1]")));     // 1
  queue.Push(Event(R"({"type":"a"})"));               // 2
  queue.Push(Event(Flags("add", "starred", "[2]")));  // 3
  size_t count = 0;
  std::string contents = queue.Contents(&count);
  EXPECT_EQ(count, 3u);
  EXPECT_LT(contents.find(R"("id":1)"), contents.find(R"("id":2)"));
  EXPECT_LT(contents.find(R"("id":2)"), contents.find(R"("id":3)"));
  EXPECT_EQ(contents.find(R"("id":0)"), std::string::npos);
}

TEST(EventQueueTest, RemoveReadAndAllFlagEventsAreNotMerged) {
  EventQueue queue;
  queue.Push(Event(Flags("remove", "read", "[1]")));
  queue.Push(Event(Flags("remove", "read", "[2]")));
  queue.Push(Event(Flags("add", "read", "[]", /*all=*/true)));
  queue.Push(Event(Flags("add", "read", "[]", /*all=*/true)));
  size_t count = 0;
  queue.Contents(&count);
  EXPECT_EQ(count, 4u);
}

TEST(EventQueueTest, UnreadVirtualEventsAreNotPruned) {
  EventQueue queue;
  queue.Push(Event(Flags("add", "read", "[1]")));  // 0, virtual until read
  queue.Prune(0);
  EXPECT_EQ(queue.newest_pruned_id(), -1);
  EXPECT_FALSE(queue.Empty());
}

TEST(EventQueueTest, AnEventWithoutTypeIsRefused) {
  EXPECT_FALSE(ParseEvent(R"({"op":"x"})").ok());
  EXPECT_FALSE(ParseEvent(R"([1])").ok());
  EXPECT_FALSE(ParseEvent(R"({"type":"update_message_flags"})").ok());
}

}  // namespace
}  // namespace zb::fake_zulip
