#include "daemon/pipeline/watermark.h"

#include <algorithm>
#include <random>
#include <vector>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::zb::testing::IsOk;

TEST(WatermarkTest, StartsAtTheGivenValue) {
  EXPECT_EQ(Watermark().settled(), -1);
  EXPECT_EQ(Watermark(41).settled(), 41);
  EXPECT_EQ(Watermark(41).last_received(), 41);
}

TEST(WatermarkTest, StaysPutUntilTheOldestOutstandingIdSettles) {
  Watermark w;
  for (int64_t id : {0, 1, 2}) ASSERT_THAT(w.Receive(id), IsOk());
  ASSERT_THAT(w.Settle(2), IsOk());
  ASSERT_THAT(w.Settle(1), IsOk());
  EXPECT_EQ(w.settled(), -1);
  EXPECT_EQ(w.outstanding(), 1u);
  ASSERT_THAT(w.Settle(0), IsOk());
  EXPECT_EQ(w.settled(), 2);
  EXPECT_TRUE(w.all_settled());
}

TEST(WatermarkTest, FollowsSkippedIdsAndNeverInventsOne) {
  // Zulip merges flag events, so ids skip; the watermark must be an id that was received.
  Watermark w;
  for (int64_t id : {3, 5, 9}) ASSERT_THAT(w.Receive(id), IsOk());
  ASSERT_THAT(w.Settle(3), IsOk());
  EXPECT_EQ(w.settled(), 3);
  ASSERT_THAT(w.Settle(9), IsOk());
  EXPECT_EQ(w.settled(), 3);
  ASSERT_THAT(w.Settle(5), IsOk());
  EXPECT_EQ(w.settled(), 9);
}

TEST(WatermarkTest, HeartbeatsSettleAtOnce) {
  Watermark w(10);
  ASSERT_THAT(w.ReceiveSettled(11), IsOk());
  EXPECT_EQ(w.settled(), 11);
  ASSERT_THAT(w.Receive(12), IsOk());
  ASSERT_THAT(w.ReceiveSettled(14), IsOk());  // a heartbeat behind an unacknowledged event
  EXPECT_EQ(w.settled(), 11);
  ASSERT_THAT(w.Settle(12), IsOk());
  EXPECT_EQ(w.settled(), 14);
}

TEST(WatermarkTest, RejectsNonIncreasingIds) {
  Watermark w(5);
  EXPECT_TRUE(w.Receive(5).IsInvalidArgument());
  EXPECT_TRUE(w.Receive(3).IsInvalidArgument());
  ASSERT_THAT(w.Receive(7), IsOk());
  EXPECT_TRUE(w.Receive(7).IsInvalidArgument());
  EXPECT_TRUE(w.ReceiveSettled(6).IsInvalidArgument());
  EXPECT_EQ(w.last_received(), 7);
  EXPECT_EQ(w.outstanding(), 1u);
}

TEST(WatermarkTest, RejectsSettlingAnIdNeverReceived) {
  Watermark w;
  ASSERT_THAT(w.Receive(0), IsOk());
  ASSERT_THAT(w.Receive(2), IsOk());
  EXPECT_TRUE(w.Settle(1).IsInvalidArgument());
  EXPECT_TRUE(w.Settle(3).IsInvalidArgument());
  ASSERT_THAT(w.Settle(0), IsOk());
  EXPECT_EQ(w.settled(), 0);
}

TEST(WatermarkTest, RepeatedSettleReportsAreHarmless) {
  Watermark w;
  for (int64_t id : {0, 1, 2}) ASSERT_THAT(w.Receive(id), IsOk());
  ASSERT_THAT(w.Settle(1), IsOk());
  ASSERT_THAT(w.Settle(1), IsOk());
  EXPECT_EQ(w.outstanding(), 2u);
  EXPECT_EQ(w.settled(), -1);
  ASSERT_THAT(w.Settle(0), IsOk());
  ASSERT_THAT(w.Settle(0), IsOk());  // now below the watermark
  EXPECT_EQ(w.settled(), 1);
  EXPECT_EQ(w.outstanding(), 1u);
}

TEST(WatermarkTest, MemoryFollowsOutstandingIdsNotTotal) {
  Watermark w;
  for (int64_t id = 0; id < 100000; id += 3) {
    ASSERT_THAT(w.Receive(id), IsOk());
    ASSERT_THAT(w.Settle(id), IsOk());
  }
  EXPECT_EQ(w.outstanding(), 0u);
  EXPECT_EQ(w.settled(), 99999);
}

TEST(WatermarkTest, RandomSettleOrderMatchesAReferenceModel) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 50; ++round) {
    Watermark w;
    std::vector<int64_t> ids;
    int64_t id = -1;
    for (int i = 0; i < 200; ++i) {
      id += 1 + static_cast<int64_t>(rng() % 3);
      ids.push_back(id);
      ASSERT_THAT(w.Receive(id), IsOk());
    }
    std::vector<int64_t> order = ids;
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<bool> done(ids.size(), false);
    for (int64_t settle : order) {
      ASSERT_THAT(w.Settle(settle), IsOk());
      done[std::lower_bound(ids.begin(), ids.end(), settle) - ids.begin()] = true;
      int64_t expected = -1;
      for (size_t i = 0; i < ids.size() && done[i]; ++i) expected = ids[i];
      ASSERT_EQ(w.settled(), expected);
    }
    EXPECT_EQ(w.settled(), ids.back());
  }
}

}  // namespace
}  // namespace zb
