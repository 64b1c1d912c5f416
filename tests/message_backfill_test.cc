#include "daemon/zulip/message_backfill.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/base/clock.h"
#include "daemon/base/event_loop.h"
#include "daemon/zulip/curl_transport.h"
#include "tests/fake_zulip_fixture.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::ElementsAreArray;
using zb::testing::IsOk;

constexpr char kBot[] = "backfill-bot@example.com";
constexpr char kKey[] = "backfillKey6789abcdefghijklmnopq";

std::vector<int64_t> Ids(const fake_zulip::SendMessageResult& sent) {
  std::vector<int64_t> ids;
  for (int64_t id = sent.first_id; id <= sent.last_id; ++id) ids.push_back(id);
  return ids;
}

// The fake Zulip's organisation with messages the bot can and cannot see, and a client for it.
class MessageBackfillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(zulip_.Start(kBot, kKey), IsOk());  // the bot is in Denmark, Scotland, Verona
    ASSERT_THAT(zulip_->AddChannel("lonely", false, {}).status(), IsOk());
    ASSERT_THAT(zulip_->AddChannel("secret", true, {kBot, "iago@zulip.com"}).status(), IsOk());
    ASSERT_THAT(zulip_->AddChannel("hidden", true, {"iago@zulip.com"}).status(), IsOk());

    auto send = [&](fake_zulip::SendMessageRequest request) {
      request.count = 3;
      StatusOr<fake_zulip::SendMessageResult> sent = zulip_->SendMessages(request);
      EXPECT_THAT(sent.status(), IsOk());
      return sent.ok() ? Ids(*sent) : std::vector<int64_t>{};
    };
    // Interleaved so that the narrows' pages overlap in id ranges.
    for (int round = 0; round < 2; ++round) {
      Append(own_, send({"iago@zulip.com", "Denmark", "t", {}, "subscribed"}));
      Append(public_only_, send({"iago@zulip.com", "lonely", "t", {}, "public, unsubscribed"}));
      Append(own_, send({"iago@zulip.com", "secret", "t", {}, "private, subscribed"}));
      Append(invisible_, send({"iago@zulip.com", "hidden", "t", {}, "private, not subscribed"}));
      Append(own_, send({"iago@zulip.com", "", "", {kBot}, "a direct message to the bot"}));
      Append(invisible_, send({"iago@zulip.com", "", "", {"hamlet@zulip.com"}, "not the bot's"}));
      std::vector<int64_t> bots = send({kBot, "Verona", "t", {}, "the bot's own"});
      Append(own_, bots);
      Append(bots_own_, bots);
    }

    StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create(RealClock::Instance());
    ASSERT_THAT(loop.status(), IsOk());
    loop_ = std::move(*loop);
    StatusOr<std::unique_ptr<CurlTransport>> transport = CurlTransport::Create(*loop_);
    ASSERT_THAT(transport.status(), IsOk());
    transport_ = std::move(*transport);
    client_ = std::make_unique<ZulipClient>(*transport_, zulip_.ClientOptions());
  }

  static void Append(std::vector<int64_t>& to, const std::vector<int64_t>& ids) {
    to.insert(to.end(), ids.begin(), ids.end());
  }

  MessageBackfillOptions Options(bool all_public_streams,
                                 std::vector<std::pair<std::string, std::string>> narrow = {}) {
    AccountConfig account;
    account.email = kBot;
    account.all_public_streams = all_public_streams;
    account.narrow = std::move(narrow);
    MessageBackfillOptions options;
    options.narrows = PlanBackfill(account, 400).narrows;
    options.page_size = 4;  // many pages per narrow
    options.batch_size = 5;
    return options;
  }

  // Runs NextBatch() until a batch says complete, all on one turn of the loop (a stopped loop
  // cannot run again). `on_batch` sees each batch as it comes (and may Restart()); failed
  // outcomes are counted and the batch asked again. Returns the ids in the order handed out.
  std::vector<int64_t> Drain(
      MessageBackfill& backfill,
      const std::function<void(size_t turn, const BackfillBatch&)>& on_batch = nullptr) {
    std::vector<int64_t> ids;
    size_t turn = 0;
    std::function<void()> next = [&] {
      backfill.NextBatch([&](const ZulipOutcome& outcome, BackfillBatch batch) {
        EXPECT_LE(batch.messages.size(), 5u);
        for (const BackfilledMessage& m : batch.messages) ids.push_back(*m.header.message_id);
        if (!outcome.ok()) {
          ++failures_;
          std::cerr << "backfill page failed: " << outcome.status.message() << "\n";
        }
        if (on_batch) on_batch(turn, batch);
        if ((batch.complete && outcome.ok()) || ++turn > 200) {
          loop_->Stop();
          return;
        }
        loop_->Post(next);
      });
    };
    loop_->Post(next);
    EXPECT_THAT(loop_->Run(), IsOk());
    return ids;
  }

  std::vector<int64_t> Sorted(std::vector<int64_t> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  zb::testing::InProcessZulip zulip_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<CurlTransport> transport_;
  std::unique_ptr<ZulipClient> client_;
  std::vector<int64_t> own_, public_only_, invisible_;
  std::vector<int64_t> bots_own_;  // in own_ too: sent by the bot
  int failures_ = 0;
};

TEST_F(MessageBackfillTest, PlainAccountGetsItsOwnHistoryInIdOrderOnce) {
  MessageBackfill backfill(*client_, Options(false), -1);
  std::vector<int64_t> ids = Drain(backfill);
  EXPECT_THAT(ids, ElementsAreArray(Sorted(own_)));
  EXPECT_EQ(backfill.delivered(), own_.size());
}

TEST_F(MessageBackfillTest, AllPublicStreamsAccountAlsoGetsUnsubscribedPublicChannelsMerged) {
  MessageBackfill backfill(*client_, Options(true), -1);
  std::vector<int64_t> expected = own_;
  expected.insert(expected.end(), public_only_.begin(), public_only_.end());
  // Sorted and unique: Denmark is in both narrows and must come out once.
  EXPECT_THAT(Drain(backfill), ElementsAreArray(Sorted(expected)));
}

// Zulip gives a queue with a narrow every public-channel message the narrow matches, the bot
// subscribed or not (FACTS §3): the backfill reads them back too.
TEST_F(MessageBackfillTest, NarrowedAccountAlsoGetsThePublicChannelMessagesItsNarrowMatches) {
  MessageBackfill backfill(*client_, Options(false, {{"sender", "iago@zulip.com"}}), -1);
  std::vector<int64_t> expected;
  for (int64_t id : own_) {
    if (std::find(bots_own_.begin(), bots_own_.end(), id) == bots_own_.end()) {
      expected.push_back(id);
    }
  }
  expected.insert(expected.end(), public_only_.begin(), public_only_.end());
  EXPECT_THAT(Drain(backfill), ElementsAreArray(Sorted(expected)));
}

// The queue judged is:unread on the message as sent (unsubscribed public-channel messages come
// with no flags, so unread); GET /messages would judge it as now, and in the own history only.
// Every message but the bot's own (read when sent) is what the queue delivered.
TEST_F(MessageBackfillTest, UnreadNarrowIsJudgedAsWhenSentNotAsNow) {
  MessageBackfill backfill(*client_, Options(false, {{"is", "unread"}}), -1);
  std::vector<int64_t> expected;
  for (int64_t id : own_) {
    if (std::find(bots_own_.begin(), bots_own_.end(), id) == bots_own_.end()) {
      expected.push_back(id);
    }
  }
  expected.insert(expected.end(), public_only_.begin(), public_only_.end());
  EXPECT_THAT(Drain(backfill), ElementsAreArray(Sorted(expected)));
}

// No message is starred when it is sent, so a queue narrowed to is:starred delivered none,
// however many are starred by the time the backfill runs.
TEST_F(MessageBackfillTest, StarredNarrowReadsBackNothing) {
  MessageBackfill backfill(*client_, Options(true, {{"is", "starred"}}), -1);
  EXPECT_TRUE(Drain(backfill).empty());
}

TEST_F(MessageBackfillTest, StartsAfterTheAnchorAndShapesEachAsALiveMessageEvent) {
  std::vector<int64_t> own = Sorted(own_);
  int64_t anchor = own[4];
  MessageBackfill backfill(*client_, Options(false), anchor);
  std::vector<std::string> values;
  std::vector<int64_t> ids = Drain(backfill, [&](size_t, const BackfillBatch& batch) {
    for (const BackfilledMessage& m : batch.messages) {
      values.push_back(m.value);
      EXPECT_EQ(m.header.id, -1);
      EXPECT_EQ(m.header.type, "message");
    }
  });
  EXPECT_THAT(ids, ElementsAreArray(std::vector<int64_t>(own.begin() + 5, own.end())));
  ASSERT_FALSE(values.empty());
  for (const std::string& value : values) {
    rapidjson::Document doc;
    doc.Parse(value.c_str());
    ASSERT_TRUE(doc.IsObject()) << value;
    EXPECT_STREQ(doc["type"].GetString(), "message");
    EXPECT_TRUE(doc["flags"].IsArray()) << value;
    EXPECT_FALSE(doc["message"].HasMember("flags")) << value;
    EXPECT_FALSE(doc.HasMember("id")) << "a backfilled message has no event id: " << value;
  }
}

TEST_F(MessageBackfillTest, RestartFromADurableAnchorRepeatsNothingBeforeItAndSkipsNothing) {
  MessageBackfill backfill(*client_, Options(true), -1);
  int64_t restarted_at = -1;
  std::vector<int64_t> ids = Drain(backfill, [&](size_t turn, const BackfillBatch& batch) {
    // After the second batch, go back to the middle of it, as after a crash whose last durable
    // anchor was there.
    if (turn == 1) {
      restarted_at = *batch.messages[1].header.message_id;
      backfill.Restart(restarted_at);
    }
  });
  std::vector<int64_t> expected = own_;
  expected.insert(expected.end(), public_only_.begin(), public_only_.end());
  expected = Sorted(expected);
  ASSERT_GE(ids.size(), 10u);
  // Batches 1-2, then everything after the anchor again.
  std::vector<int64_t> want(expected.begin(), expected.begin() + 10);
  auto from = std::upper_bound(expected.begin(), expected.end(), restarted_at);
  want.insert(want.end(), from, expected.end());
  EXPECT_THAT(ids, ElementsAreArray(want));
}

TEST_F(MessageBackfillTest, MessagesSentOnceTheBackfillBeganAreLeftToTheNewQueue) {
  // With several narrows the backfill first reads each one's newest message; messages sent
  // after that (here: after its first batch, into both narrows) are the new queue's, in every
  // narrow, so that its copies up to bound() are all the backfill's.
  std::vector<int64_t> before = own_;
  before.insert(before.end(), public_only_.begin(), public_only_.end());
  before = Sorted(before);
  MessageBackfill backfill(*client_, Options(true), -1);
  std::vector<int64_t> ids = Drain(backfill, [&](size_t turn, const BackfillBatch&) {
    if (turn != 0) return;
    for (const char* channel : {"Denmark", "lonely"}) {
      fake_zulip::SendMessageRequest late{"iago@zulip.com", channel, "t", {}, "late"};
      late.count = 2;
      ASSERT_THAT(zulip_->SendMessages(late).status(), IsOk());
    }
  });
  EXPECT_THAT(ids, ElementsAreArray(before));
  EXPECT_EQ(backfill.bound(), before.back());
}

TEST_F(MessageBackfillTest, AFailedPageIsAskedAgainAndNothingIsLost) {
  fake_zulip::FaultRule fault;
  fault.kind = fake_zulip::FaultRule::Kind::k502;
  fault.count = 3;
  fault.probability = 1;
  fault.path_prefix = "/api/v1/messages";
  zulip_->AddFault(fault);
  MessageBackfill backfill(*client_, Options(true), -1);
  std::vector<int64_t> expected = own_;
  expected.insert(expected.end(), public_only_.begin(), public_only_.end());
  EXPECT_THAT(Drain(backfill), ElementsAreArray(Sorted(expected)));
  EXPECT_GT(failures_, 0);
}

std::vector<std::string> NarrowJsons(const BackfillPlan& plan) {
  std::vector<std::string> out;
  for (const BackfillNarrow& narrow : plan.narrows) out.push_back(narrow.narrow_json);
  return out;
}

TEST(PlanBackfillTest, UnionIsOwnHistoryPlusPublicChannelsWithTheRegisterNarrowApplied) {
  AccountConfig plain;
  EXPECT_THAT(NarrowJsons(PlanBackfill(plain, 400)), ElementsAreArray({"[]"}));
  AccountConfig everything;
  everything.all_public_streams = true;
  everything.narrow = {{"topic", "deploys \"prod\""}};
  EXPECT_THAT(NarrowJsons(PlanBackfill(everything, 400)),
              ElementsAreArray({R"([{"operator":"topic","operand":"deploys \"prod\""}])",
                                R"([{"operator":"topic","operand":"deploys \"prod\""},)"
                                R"({"operator":"channels","operand":"public"}])"}));
  // Before feature level 250 (and when it is not known yet) the operator's old name.
  EXPECT_THAT(NarrowJsons(PlanBackfill(everything, 0))[1],
              ::testing::HasSubstr(R"("operator":"streams")"));
  EXPECT_THAT(NarrowJsons(PlanBackfill(everything, 249))[1],
              ::testing::HasSubstr(R"("operator":"streams")"));
  AccountConfig one_channel;
  one_channel.all_public_streams = true;
  one_channel.narrow = {{"channel", "Denmark"}};
  EXPECT_THAT(NarrowJsons(PlanBackfill(one_channel, 400)),
              ElementsAreArray({R"([{"operator":"channel","operand":"Denmark"}])"}));
}

TEST(PlanBackfillTest, AnyNarrowAlsoReadsThePublicChannelsUnlessItCannotMatchThem) {
  AccountConfig sender;
  sender.narrow = {{"sender", "x@example.com"}};
  EXPECT_THAT(NarrowJsons(PlanBackfill(sender, 400)),
              ElementsAreArray({R"([{"operator":"sender","operand":"x@example.com"}])",
                                R"([{"operator":"sender","operand":"x@example.com"},)"
                                R"({"operator":"channels","operand":"public"}])"}));
  AccountConfig direct;
  direct.narrow = {{"is", "dm"}};
  EXPECT_THAT(NarrowJsons(PlanBackfill(direct, 400)),
              ElementsAreArray({R"([{"operator":"is","operand":"dm"}])"}));
  // The queue does not check is:read: it matched everything, public channels included.
  AccountConfig read;
  read.narrow = {{"is", "read"}};
  EXPECT_THAT(NarrowJsons(PlanBackfill(read, 400)),
              ElementsAreArray({"[]", R"([{"operator":"channels","operand":"public"}])"}));
}

TEST(PlanBackfillTest, FlagTermsAreJudgedHereAsWhenSentAndTheirLimitsNamed) {
  AccountConfig unread;
  unread.email = "bot@example.com";
  unread.narrow = {{"is", "unread"}, {"topic", "t"}};
  BackfillPlan plan = PlanBackfill(unread, 400);
  ASSERT_EQ(plan.narrows.size(), 2u);
  EXPECT_EQ(plan.narrows[0].narrow_json, R"([{"operator":"topic","operand":"t"}])");
  EXPECT_EQ(plan.narrows[0].not_sent_by, "bot@example.com");
  EXPECT_EQ(plan.narrows[1].not_sent_by, "bot@example.com");
  EXPECT_THAT(plan.limits, ::testing::Contains(::testing::HasSubstr("is:unread")));
  EXPECT_THAT(plan.limits, ::testing::Contains(::testing::HasSubstr("topic:t")));

  // is:alerted is the queue's "mentioned" flag, not GET /messages' alert words.
  AccountConfig alerted;
  alerted.narrow = {{"is", "alerted"}};
  plan = PlanBackfill(alerted, 400);
  ASSERT_EQ(plan.narrows.size(), 2u);
  EXPECT_EQ(plan.narrows[0].narrow_json, R"([{"operator":"is","operand":"mentioned"}])");
  EXPECT_TRUE(plan.narrows[0].mentioned);
  EXPECT_THAT(plan.limits, ::testing::Contains(::testing::HasSubstr("is:alerted")));

  AccountConfig resolved;
  resolved.narrow = {{"is", "resolved"}};
  plan = PlanBackfill(resolved, 400);
  ASSERT_EQ(plan.narrows.size(), 2u);
  EXPECT_EQ(plan.narrows[1].narrow_json, R"([{"operator":"channels","operand":"public"}])");
  EXPECT_TRUE(plan.narrows[1].resolved);

  AccountConfig starred;
  starred.all_public_streams = true;
  starred.narrow = {{"is", "starred"}};
  plan = PlanBackfill(starred, 400);
  ASSERT_EQ(plan.narrows.size(), 1u);
  EXPECT_TRUE(plan.narrows[0].never);
}

}  // namespace
}  // namespace zb
