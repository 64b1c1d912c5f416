#include "daemon/pipeline/account_policy.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace zb {
namespace {

constexpr ParkReason kAll[] = {ParkReason::kUnauthenticated, ParkReason::kConfigurationRefused,
                               ParkReason::kBackfillRefused, ParkReason::kZulipTooOld};

TEST(ParkReasonTest, EveryReasonHasItsOwnName) {
  EXPECT_EQ(ParkReasonName(ParkReason::kUnauthenticated), "unauthenticated");
  EXPECT_EQ(ParkReasonName(ParkReason::kConfigurationRefused), "configuration");
  EXPECT_EQ(ParkReasonName(ParkReason::kBackfillRefused), "backfill_refused");
  EXPECT_EQ(ParkReasonName(ParkReason::kZulipTooOld), "zulip_too_old");
  std::set<std::string_view> names;
  for (ParkReason reason : kAll) {
    EXPECT_NE(ParkReasonName(reason), "unknown");
    names.insert(ParkReasonName(reason));
  }
  EXPECT_EQ(names.size(), std::size(kAll));
}

TEST(ParkReasonTest, TheOperatorReadsTheServersWordsAsTheyCame) {
  EXPECT_EQ(ParkedReasonText(ParkReason::kUnauthenticated, "POST /register: 401: Invalid API key"),
            "POST /register: 401: Invalid API key");
  EXPECT_EQ(ParkedReasonText(ParkReason::kConfigurationRefused, "POST /register: 400: bad narrow"),
            "POST /register: 400: bad narrow");
  EXPECT_EQ(ParkedReasonText(ParkReason::kZulipTooOld, "Zulip server feature level 100"),
            "Zulip server feature level 100");
}

TEST(ParkReasonTest, ARefusedBackfillSaysSoBeforeTheServersWords) {
  EXPECT_EQ(ParkedReasonText(ParkReason::kBackfillRefused, "GET /messages: 400: unknown channel"),
            "backfill refused by Zulip: GET /messages: 400: unknown channel");
}

TEST(RetryActionTest, NamesAreTheCallLabelsOfTheLog) {
  EXPECT_EQ(RetryActionName(RetryAction::kRegister), "register");
  EXPECT_EQ(RetryActionName(RetryAction::kPoll), "poll");
  EXPECT_EQ(RetryActionName(RetryAction::kBackfill), "backfill");
  EXPECT_EQ(RetryActionName(RetryAction::kCommitQueue), "commit_queue");
  EXPECT_EQ(RetryActionName(RetryAction::kCommit), "commit");
}

constexpr RetryAction kZulipCalls[] = {RetryAction::kRegister, RetryAction::kPoll,
                                       RetryAction::kBackfill};

TEST(ParkReasonForTest, A401OrARefusedConfigurationParksWhateverTheCall) {
  for (RetryAction call : kZulipCalls) {
    SCOPED_TRACE(RetryActionName(call));
    EXPECT_EQ(ParkReasonFor(ZulipErrorKind::kUnauthenticated, call), ParkReason::kUnauthenticated);
    EXPECT_EQ(ParkReasonFor(ZulipErrorKind::kConfiguration, call),
              ParkReason::kConfigurationRefused);
  }
}

TEST(ParkReasonForTest, ABadRequestParksOnlyABackfill) {
  EXPECT_EQ(ParkReasonFor(ZulipErrorKind::kBadRequest, RetryAction::kBackfill),
            ParkReason::kBackfillRefused);
  EXPECT_EQ(ParkReasonFor(ZulipErrorKind::kBadRequest, RetryAction::kRegister), std::nullopt);
  EXPECT_EQ(ParkReasonFor(ZulipErrorKind::kBadRequest, RetryAction::kPoll), std::nullopt);
}

TEST(ParkReasonForTest, TransientFailuresRateLimitsAndLostQueuesNeverPark) {
  for (RetryAction call : kZulipCalls) {
    SCOPED_TRACE(RetryActionName(call));
    for (ZulipErrorKind kind : {ZulipErrorKind::kNone, ZulipErrorKind::kTransient,
                                ZulipErrorKind::kRateLimited, ZulipErrorKind::kQueueLost}) {
      EXPECT_EQ(ParkReasonFor(kind, call), std::nullopt) << ZulipErrorKindName(kind);
    }
  }
}

}  // namespace
}  // namespace zb
