// GapRecovery on its own: the decisions about a lost queue and its backfill (anchor, read-back
// target, upper bound, history floor, the gap record, a batch's end), seen through what goes into
// the checkpoint, the gap record it hands back and the GET /messages its MessageBackfill asks. The
// produce step is the test's: it says for each message whether it was handed over, skipped or
// refused, and settles records when it likes.
#include "daemon/pipeline/gap_recovery.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/base/metrics.h"
#include "tests/fakes/fake_http_transport.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::zb::testing::FakeHttpTransport;
using ::zb::testing::FakeResponse;

constexpr int64_t kSettledPollMs = 1'735'689'600'000;  // 2025-01-01T00:00:00Z
constexpr int64_t kSettledPollSeconds = kSettledPollMs / 1000;
constexpr int64_t kRegisteredAt = kSettledPollSeconds - 3600;  // when the queues register

AccountConfig Alice() {
  AccountConfig config;
  config.name = "alice";
  config.site = "https://chat.example.com";
  config.email = "alice@example.com";
  return config;
}

RegisterResult Registered(std::string queue_id, std::optional<int64_t> max_message_id) {
  RegisterResult result;
  result.queue_id = std::move(queue_id);
  result.zulip_feature_level = 400;
  result.max_message_id = max_message_id;
  return result;
}

LostQueue Lost(std::string queue_id, int64_t settled_poll_unix_ms) {
  LostQueue lost;
  lost.queue_id = std::move(queue_id);
  lost.last_event_id = 7;
  lost.last_good_poll_unix_ms = settled_poll_unix_ms;
  lost.settled_poll_unix_ms = settled_poll_unix_ms;
  lost.detected_at_unix_ms = settled_poll_unix_ms + 60'000;
  lost.reason = "BAD_EVENT_QUEUE_ID";
  return lost;
}

// A GET /messages answer with these (id, sent at) messages.
std::string Page(const std::vector<std::pair<int64_t, int64_t>>& messages, bool found_oldest,
                 bool found_newest) {
  std::string body = R"({"result":"success","msg":"","messages":[)";
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) body += ',';
    body += R"({"id":)" + std::to_string(messages[i].first) + R"(,"timestamp":)" +
            std::to_string(messages[i].second) +
            R"(,"type":"stream","stream_id":1,"subject":"t","content":"c","flags":[]})";
  }
  body += R"(],"found_anchor":false,"found_oldest":)";
  body += found_oldest ? "true" : "false";
  body += R"(,"found_newest":)";
  body += found_newest ? "true" : "false";
  return body + R"(,"history_limited":false})";
}

class GapRecoveryTest : public ::testing::Test {
 protected:
  GapRecoveryTest()
      : client_(transport_,
                ZulipClientOptions{.site = config_.site, .email = config_.email, .api_key = "key"}),
        metrics_(registry_, config_.name, false),
        recovery_(config_, {client_, metrics_}) {}

  Checkpoint Written() const {
    Checkpoint checkpoint;
    recovery_.WriteTo(checkpoint);
    return checkpoint;
  }

  // A checkpoint with a backfill in progress after `anchor`.
  static Checkpoint Backfilling(int64_t anchor, int64_t rewind_to = 0) {
    Checkpoint checkpoint;
    checkpoint.backfill_active = true;
    checkpoint.backfill_anchor_message_id = anchor;
    checkpoint.backfill_rewind_to_unix_seconds = rewind_to;
    checkpoint.history_floor_message_id = 5;
    return checkpoint;
  }

  // Asks for the next batch; Answer() delivers what it gets.
  void AskBatch() {
    batch_.reset();
    recovery_.NextBatch(400, [this](const ZulipOutcome& outcome, BackfillBatch batch) {
      outcome_ = outcome;
      batch_ = std::move(batch);
    });
  }
  // Answers the GET /messages in flight.
  void Answer(FakeResponse response) {
    transport_.Reply(transport_.last().handle, std::move(response));
    transport_.Pump();
  }
  std::string LastParam(const std::string& name) const {
    return transport_.last().Param(name).value_or("<absent>");
  }

  // Hands the batch over, each message as `produce` says.
  bool ProduceBatch(const GapRecovery::Produce& produce) {
    EXPECT_TRUE(batch_.has_value());
    return recovery_.ProduceBatch(outcome_, *batch_, produce);
  }
  static BackfillProduce HandedOver(const BackfilledMessage&) {
    return BackfillProduce::kHandedOver;
  }

  const AccountConfig config_ = Alice();
  FakeHttpTransport transport_;
  ZulipClient client_;
  MetricsRegistry registry_;
  AccountMetrics metrics_;
  GapRecovery recovery_;
  ZulipOutcome outcome_;
  std::optional<BackfillBatch> batch_;
};

TEST_F(GapRecoveryTest, FirstQueueAnchorsAtItsNewestMessageAndStartsTheStreamThere) {
  EXPECT_EQ(recovery_.OnRegistered(Registered("q1", 100), -1, kRegisteredAt), std::nullopt);
  Checkpoint checkpoint = Written();
  EXPECT_FALSE(checkpoint.backfill_active);
  EXPECT_EQ(checkpoint.backfill_anchor_message_id, 100);
  EXPECT_EQ(checkpoint.history_floor_message_id, 100);
  EXPECT_EQ(checkpoint.backfill_until_message_id, -1);
  EXPECT_EQ(checkpoint.backfill_rewind_to_unix_seconds, 0);
}

TEST_F(GapRecoveryTest, BackfillFromAMessageIdIsNotRaisedByTheFirstQueue) {
  AccountConfig config = Alice();
  config.backfill_from.kind = BackfillFrom::Kind::kMessageId;
  config.backfill_from.message_id = 500;
  GapRecovery recovery(config, {client_, metrics_});
  recovery.OnFirstStart();
  EXPECT_EQ(recovery.OnRegistered(Registered("q1", 900), -1, kRegisteredAt), std::nullopt);
  Checkpoint checkpoint;
  recovery.WriteTo(checkpoint);
  EXPECT_TRUE(checkpoint.backfill_active);
  EXPECT_EQ(checkpoint.backfill_anchor_message_id, 499);
  EXPECT_EQ(checkpoint.history_floor_message_id, 499);
  EXPECT_EQ(checkpoint.backfill_until_message_id, 900);
}

TEST_F(GapRecoveryTest, LossPlansABackfillFromTheLastPublishedMessageAndReadsBack) {
  (void)recovery_.OnRegistered(Registered("q1", 100), -1, kRegisteredAt);
  recovery_.NoteQueueLost(Lost("q1", kSettledPollMs));
  std::optional<GapRecord> gap = recovery_.OnRegistered(Registered("q2", 150), 120, kRegisteredAt);
  ASSERT_TRUE(gap.has_value());
  EXPECT_EQ(gap->account, "alice");
  EXPECT_EQ(gap->site, "https://chat.example.com");
  EXPECT_EQ(gap->lost_queue_id, "q1");
  EXPECT_EQ(gap->new_queue_id, "q2");
  EXPECT_EQ(gap->last_event_id, 7);
  EXPECT_EQ(gap->last_message_id, 120);
  EXPECT_EQ(gap->last_good_poll_unix_ms, kSettledPollMs);
  EXPECT_EQ(gap->detected_at_unix_ms, kSettledPollMs + 60'000);
  EXPECT_EQ(gap->reason, "BAD_EVENT_QUEUE_ID");
  EXPECT_TRUE(gap->backfill);
  EXPECT_EQ(gap->limits, PlanBackfill(config_, 400).limits);

  Checkpoint checkpoint = Written();
  EXPECT_TRUE(checkpoint.backfill_active);
  EXPECT_EQ(checkpoint.backfill_anchor_message_id, 120);
  EXPECT_EQ(checkpoint.backfill_until_message_id, 150);
  EXPECT_EQ(checkpoint.backfill_rewind_to_unix_seconds,
            kSettledPollSeconds - kBackfillRewindSeconds);
  EXPECT_EQ(checkpoint.history_floor_message_id, 100);  // the stream still starts there
}

TEST_F(GapRecoveryTest, QuietAccountsGapReadsFromItsFirstQueuesNewestMessage) {
  (void)recovery_.OnRegistered(Registered("q1", 100), -1, kRegisteredAt);
  recovery_.NoteQueueLost(Lost("q1", kSettledPollMs));
  std::optional<GapRecord> gap = recovery_.OnRegistered(Registered("q2", 150), -1, kRegisteredAt);
  ASSERT_TRUE(gap.has_value());
  EXPECT_EQ(gap->last_message_id, 100);
  EXPECT_EQ(Written().backfill_anchor_message_id, 100);
}

TEST_F(GapRecoveryTest, PendingBackfillKeepsItsAnchorAndTheEarlierReadBackTarget) {
  (void)recovery_.OnRegistered(Registered("q1", 100), -1, kRegisteredAt);
  recovery_.NoteQueueLost(Lost("q1", kSettledPollMs));
  (void)recovery_.OnRegistered(Registered("q2", 150), 120, kRegisteredAt);
  // q2 is lost (or replaced) before its backfill ran: its settled poll is its registration,
  // later than q1's, and more was published meanwhile by nobody; the backfill q1 needs is kept.
  recovery_.NoteQueueLost(Lost("q2", kSettledPollMs + 3'600'000));
  std::optional<GapRecord> gap = recovery_.OnRegistered(Registered("q3", 160), 130, kRegisteredAt);
  ASSERT_TRUE(gap.has_value());
  EXPECT_EQ(gap->lost_queue_id, "q2");
  EXPECT_EQ(gap->last_message_id, 120);
  Checkpoint checkpoint = Written();
  EXPECT_TRUE(checkpoint.backfill_active);
  EXPECT_EQ(checkpoint.backfill_anchor_message_id, 120);
  EXPECT_EQ(checkpoint.backfill_rewind_to_unix_seconds,
            kSettledPollSeconds - kBackfillRewindSeconds);
  EXPECT_EQ(checkpoint.backfill_until_message_id, 160);  // the queue polled next is q3

  // An earlier target than the pending one wins.
  recovery_.NoteQueueLost(Lost("q3", kSettledPollMs - 3'600'000));
  (void)recovery_.OnRegistered(Registered("q4", 170), 130, kRegisteredAt);
  EXPECT_EQ(Written().backfill_rewind_to_unix_seconds,
            kSettledPollSeconds - 3600 - kBackfillRewindSeconds);
}

TEST_F(GapRecoveryTest, PendingBackfillFromACheckpointKeepsItsReadBackTarget) {
  recovery_.Restore(Backfilling(120, kSettledPollSeconds - kBackfillRewindSeconds));
  // A queue of an older version's checkpoint: no settled poll, so no target of its own.
  recovery_.NoteQueueLost(Lost("q2", 0));
  (void)recovery_.OnRegistered(Registered("q3", 160), 130, kRegisteredAt);
  EXPECT_EQ(Written().backfill_rewind_to_unix_seconds,
            kSettledPollSeconds - kBackfillRewindSeconds);
  EXPECT_EQ(Written().backfill_anchor_message_id, 120);
}

TEST_F(GapRecoveryTest, UnknownSettledPollReadsNothingBack) {
  (void)recovery_.OnRegistered(Registered("q1", 100), -1, kRegisteredAt);
  recovery_.NoteQueueLost(Lost("q1", 0));
  ASSERT_TRUE(recovery_.OnRegistered(Registered("q2", 150), 120, kRegisteredAt).has_value());
  EXPECT_EQ(Written().backfill_rewind_to_unix_seconds, 0);
  EXPECT_EQ(Written().backfill_anchor_message_id, 120);
}

TEST_F(GapRecoveryTest, SecondLossBeforeTheNewQueueKeepsTheFirstQueuesFacts) {
  (void)recovery_.OnRegistered(Registered("q1", 100), -1, kRegisteredAt);
  recovery_.NoteQueueLost(Lost("q1", kSettledPollMs));
  // The registration for q1's replacement failed and was retried: a loss noted again.
  recovery_.NoteQueueLost(Lost("q1-again", kSettledPollMs + 3'600'000));
  std::optional<GapRecord> gap = recovery_.OnRegistered(Registered("q2", 150), 120, kRegisteredAt);
  ASSERT_TRUE(gap.has_value());
  EXPECT_EQ(gap->lost_queue_id, "q1");
  EXPECT_EQ(Written().backfill_rewind_to_unix_seconds,
            kSettledPollSeconds - kBackfillRewindSeconds);
  // One gap record per loss: the next registration has none to give.
  EXPECT_EQ(recovery_.OnRegistered(Registered("q3", 160), 120, kRegisteredAt), std::nullopt);
}

TEST_F(GapRecoveryTest, LiveMessageBelowTheFloorLowersIt) {
  (void)recovery_.OnRegistered(Registered("q1", 100), -1, kRegisteredAt);
  recovery_.MarkStaged();
  recovery_.NoteLiveMessage(101);
  EXPECT_FALSE(recovery_.floor_changed_since_staged());
  recovery_.NoteLiveMessage(90);  // committed after the registration, sent before it
  EXPECT_TRUE(recovery_.floor_changed_since_staged());
  EXPECT_EQ(Written().history_floor_message_id, 89);
  recovery_.MarkStaged();
  EXPECT_FALSE(recovery_.floor_changed_since_staged());
  recovery_.NoteLiveMessage(95);
  EXPECT_FALSE(recovery_.floor_changed_since_staged());
  EXPECT_EQ(Written().history_floor_message_id, 89);
}

TEST_F(GapRecoveryTest, CheckpointComesBackAsItWasWritten) {
  Checkpoint written;
  written.backfill_active = true;
  written.backfill_anchor_message_id = 120;
  written.backfill_until_message_id = 150;
  written.backfill_rewind_to_unix_seconds = kSettledPollSeconds;
  written.history_floor_message_id = 100;
  recovery_.Restore(written);
  EXPECT_FALSE(recovery_.floor_changed_since_staged());  // the floor on disk is this one
  EXPECT_TRUE(recovery_.active());
  EXPECT_EQ(recovery_.anchor(), 120);
  Checkpoint checkpoint;
  checkpoint.queue_id = "q1";  // not GapRecovery's: left alone
  recovery_.WriteTo(checkpoint);
  written.queue_id = "q1";
  EXPECT_EQ(checkpoint, written);
}

TEST_F(GapRecoveryTest, QuietAccountWithoutAnyNewestMessageReadsBackFromTheNewest) {
  (void)recovery_.OnRegistered(Registered("q1", std::nullopt), -1, kRegisteredAt);
  recovery_.NoteQueueLost(Lost("q1", kSettledPollMs));
  (void)recovery_.OnRegistered(Registered("q2", std::nullopt), -1, kRegisteredAt);
  AskBatch();
  EXPECT_EQ(LastParam("anchor"), "newest");
  EXPECT_EQ(LastParam("num_after"), "0");
}

TEST_F(GapRecoveryTest, PendingBackfillFromTheOldestIsNotReadFromTheNewest) {
  Checkpoint checkpoint = Backfilling(-1);
  checkpoint.history_floor_message_id = -1;
  recovery_.Restore(checkpoint);
  recovery_.NoteQueueLost(Lost("q2", kSettledPollMs));
  (void)recovery_.OnRegistered(Registered("q3", std::nullopt), -1, kRegisteredAt);
  AskBatch();
  EXPECT_EQ(LastParam("anchor"), "oldest");
}

TEST_F(GapRecoveryTest, ReadBackAnchorIsTheBatchsAnchor) {
  recovery_.Restore(Backfilling(50, kSettledPollSeconds - kBackfillRewindSeconds));
  AskBatch();
  ASSERT_EQ(LastParam("anchor"), "50");
  ASSERT_NE(LastParam("num_before"), "0");
  // 45 was sent within the margin, 40 before it: read forward after 40.
  Answer(FakeResponse::Json(
      200, Page({{40, kSettledPollSeconds - 3600}, {45, kSettledPollSeconds}}, false, false)));
  ASSERT_EQ(LastParam("anchor"), "40");
  Answer(FakeResponse::Json(
      200, Page({{45, kSettledPollSeconds}, {51, kSettledPollSeconds}}, false, true)));
  ASSERT_TRUE(batch_.has_value());
  EXPECT_FALSE(ProduceBatch(HandedOver));
  // Durable with this batch, and nothing is left to read back.
  EXPECT_EQ(Written().backfill_anchor_message_id, 40);
  EXPECT_EQ(Written().backfill_rewind_to_unix_seconds, 0);
  EXPECT_FALSE(recovery_.OnRecordSettled());
  EXPECT_TRUE(recovery_.OnRecordSettled());
  EXPECT_FALSE(recovery_.active());
  EXPECT_EQ(Written().backfill_anchor_message_id, 51);
}

TEST_F(GapRecoveryTest, BatchEndsOnlyWhenEachOfItsRecordsIsSettled) {
  recovery_.Restore(Backfilling(10));
  AskBatch();
  EXPECT_EQ(LastParam("anchor"), "10");
  Answer(FakeResponse::Json(200, Page({{11, 1}, {12, 1}, {13, 1}}, false, true)));
  ASSERT_TRUE(batch_.has_value());
  EXPECT_EQ(metrics_.backfill_in_progress.value(), 1);
  EXPECT_FALSE(ProduceBatch(HandedOver));
  EXPECT_FALSE(recovery_.OnRecordSettled());
  EXPECT_FALSE(recovery_.OnRecordSettled());
  EXPECT_TRUE(recovery_.active());
  EXPECT_EQ(Written().backfill_anchor_message_id, 10);
  EXPECT_TRUE(recovery_.OnRecordSettled());
  // Complete: the new queue is polled next.
  EXPECT_FALSE(recovery_.active());
  EXPECT_FALSE(recovery_.reading());
  EXPECT_EQ(recovery_.TakeRetry(), std::nullopt);
  EXPECT_EQ(Written().backfill_anchor_message_id, 13);
  EXPECT_EQ(Written().backfill_until_message_id, -1);
  EXPECT_EQ(metrics_.backfill_in_progress.value(), 0);
}

TEST_F(GapRecoveryTest, RecordSettledInsideTheProduceLoopDoesNotEndTheBatch) {
  recovery_.Restore(Backfilling(10));
  AskBatch();
  Answer(FakeResponse::Json(200, Page({{11, 1}, {12, 1}}, false, true)));
  // Both dead-lettered at once: each settles before `produce` returns.
  int ended_inside = 0;
  EXPECT_TRUE(ProduceBatch([&](const BackfilledMessage&) {
    ended_inside += recovery_.OnRecordSettled() ? 1 : 0;
    return BackfillProduce::kHandedOver;
  }));
  EXPECT_EQ(ended_inside, 0);
  EXPECT_EQ(Written().backfill_anchor_message_id, 12);
  EXPECT_FALSE(recovery_.active());
}

TEST_F(GapRecoveryTest, RefusedRecordEndsTheBatchAfterTheLastTakenAndWaits) {
  recovery_.Restore(Backfilling(10));
  AskBatch();
  Answer(FakeResponse::Json(200, Page({{11, 1}, {12, 1}, {13, 1}}, false, true)));
  std::vector<int64_t> offered;
  EXPECT_FALSE(ProduceBatch([&](const BackfilledMessage& message) {
    offered.push_back(*message.header.message_id);
    return offered.size() == 1 ? BackfillProduce::kHandedOver : BackfillProduce::kRefused;
  }));
  EXPECT_EQ(offered, (std::vector<int64_t>{11, 12}));
  EXPECT_TRUE(recovery_.OnRecordSettled());
  EXPECT_TRUE(recovery_.active());  // complete as read, but 12 and 13 are not in Kafka
  EXPECT_EQ(Written().backfill_anchor_message_id, 11);
  std::optional<ZulipOutcome> retry = recovery_.TakeRetry();
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->kind, ZulipErrorKind::kTransient);
  EXPECT_THAT(retry->status.message(), HasSubstr("Kafka did not take a message"));
  EXPECT_EQ(recovery_.TakeRetry(), std::nullopt);
  AskBatch();
  EXPECT_EQ(LastParam("anchor"), "11");
}

TEST_F(GapRecoveryTest, SkippedMessagesMoveTheAnchor) {
  recovery_.Restore(Backfilling(10));
  AskBatch();
  Answer(FakeResponse::Json(200, Page({{11, 1}, {12, 1}}, false, true)));
  EXPECT_TRUE(ProduceBatch([](const BackfilledMessage&) { return BackfillProduce::kSkipped; }));
  EXPECT_EQ(Written().backfill_anchor_message_id, 12);
}

TEST_F(GapRecoveryTest, FailedPageIsWaitedOutWithoutMovingTheAnchor) {
  recovery_.Restore(Backfilling(10));
  AskBatch();
  Answer(FakeResponse::Json(503, R"({"result":"error","msg":"busy","code":"BAD_REQUEST"})"));
  ASSERT_TRUE(batch_.has_value());
  EXPECT_TRUE(ProduceBatch(HandedOver));
  EXPECT_TRUE(recovery_.active());
  EXPECT_EQ(Written().backfill_anchor_message_id, 10);
  std::optional<ZulipOutcome> retry = recovery_.TakeRetry();
  ASSERT_TRUE(retry.has_value());
  EXPECT_FALSE(retry->ok());
}

// --- Review 2 (#15): the history floor's time and several narrows ---

// Answers the GET /messages in flight as Zulip does over two histories (sorted by id, each
// message (id, sent at)): the public channels for a narrow with channels:public, the account's
// own history otherwise. Until `recovery` handed back a batch (or nothing is asked).
class TwoNarrowZulip {
 public:
  TwoNarrowZulip(FakeHttpTransport& transport, std::vector<std::pair<int64_t, int64_t>> own,
                 std::vector<std::pair<int64_t, int64_t>> public_channels)
      : transport_(transport), own_(std::move(own)), public_(std::move(public_channels)) {}

  // Serves until nothing is in flight; records each request's narrow and anchor.
  void ServeAll() {
    for (int guard = 0; guard < 100 && transport_.pending() > 0; ++guard) {
      const auto& call = transport_.last();
      const std::string narrow = call.Param("narrow").value_or("[]");
      const bool is_public = narrow.find("public") != std::string::npos;
      const auto& history = is_public ? public_ : own_;
      const std::string anchor_text = call.Param("anchor").value_or("");
      const int64_t anchor = anchor_text == "oldest"   ? 0
                             : anchor_text == "newest" ? INT64_MAX
                                                       : std::stoll(anchor_text);
      const bool include = call.Param("include_anchor").value_or("true") != "false";
      const int before = std::stoi(call.Param("num_before").value_or("0"));
      const int after = std::stoi(call.Param("num_after").value_or("0"));
      asked.push_back({is_public, anchor_text, before, after});
      size_t first = 0;
      while (first < history.size() && history[first].first < anchor) ++first;
      std::vector<std::pair<int64_t, int64_t>> out;
      size_t i = first;
      for (int n = 0; n < before && i > 0; ++n) out.insert(out.begin(), history[--i]);
      const bool found_oldest = i == 0;
      size_t j = first;
      if (j < history.size() && history[j].first == anchor) {
        if (include) out.push_back(history[j]);
        ++j;
      }
      for (int n = 0; n < after && j < history.size(); ++n) out.push_back(history[j++]);
      const bool found_newest = j == history.size();
      transport_.Reply(call.handle, FakeResponse::Json(200, Page(out, found_oldest, found_newest)));
      transport_.Pump();
    }
  }

  struct Asked {
    bool is_public;
    std::string anchor;
    int num_before, num_after;
  };
  std::vector<Asked> asked;

 private:
  FakeHttpTransport& transport_;
  std::vector<std::pair<int64_t, int64_t>> own_, public_;
};

// What one NextBatch handed back.
struct BatchRead {
  std::optional<BackfillBatch> batch;
  ZulipOutcome outcome;
};

// Asks `recovery` for its next batch (server at feature level 400) and serves every GET
// /messages it makes from `zulip`.
BatchRead ReadBatch(GapRecovery& recovery, TwoNarrowZulip& zulip) {
  BatchRead read;
  recovery.NextBatch(400, [&](const ZulipOutcome& o, BackfillBatch b) {
    read.outcome = o;
    read.batch = std::move(b);
  });
  zulip.ServeAll();
  return read;
}

// An all_public_streams account whose own history has no message (or only recent ones) below
// the anchor: its own narrow's read-back reaches the oldest message. With a history floor that
// has a time, TakeRewindPage then anchors that narrow at -1 ("oldest"), and the backfill's anchor
// (the lowest of the narrows') becomes -1. Kafka refusing the first message of the first batch
// (queue full, a dead producer) restarts every narrow from there: the public channels' whole
// history is read from the oldest message and published, far below the floor and the read-back
// target. Before the floor had a time, that narrow anchored at the floor.
TEST_F(GapRecoveryTest, ReviewRefusedFirstBatchDoesNotReadThePublicChannelsFromTheOldest) {
  AccountConfig config = Alice();
  config.all_public_streams = true;
  GapRecovery recovery(config, {client_, metrics_});
  (void)recovery.OnRegistered(Registered("q1", 100), -1, kRegisteredAt);
  recovery.NoteQueueLost(Lost("q1", kSettledPollMs));
  ASSERT_TRUE(recovery.OnRegistered(Registered("q2", 200), 150, kSettledPollSeconds).has_value());
  const int64_t long_ago = kRegisteredAt - 86400;  // older than the floor's time too
  TwoNarrowZulip zulip(transport_, /*own=*/{},
                       /*public=*/
                       {{5, long_ago},
                        {50, long_ago},
                        {140, long_ago},
                        {145, kSettledPollSeconds},
                        {160, kSettledPollSeconds}});
  BatchRead read = ReadBatch(recovery, zulip);
  ASSERT_TRUE(read.batch.has_value());
  ASSERT_FALSE(read.batch->messages.empty());
  EXPECT_EQ(*read.batch->messages.front().header.message_id, 145);
  // Kafka's queue is full: the first message is refused.
  EXPECT_TRUE(recovery.ProduceBatch(read.outcome, *read.batch, [](const BackfilledMessage&) {
    return BackfillProduce::kRefused;
  }));
  Checkpoint checkpoint;
  recovery.WriteTo(checkpoint);
  // Every message up to the anchor is in Kafka: the public narrow's read-back stopped at 140.
  EXPECT_GE(checkpoint.backfill_anchor_message_id, 100)
      << "the durable anchor fell to the oldest message";
  (void)recovery.TakeRetry();
  zulip.asked.clear();
  read = ReadBatch(recovery, zulip);
  ASSERT_TRUE(read.batch.has_value());
  for (const auto& asked : zulip.asked) {
    EXPECT_FALSE(asked.is_public && asked.anchor == "oldest")
        << "the public channels are read from their oldest message";
  }
  for (const BackfilledMessage& m : read.batch->messages) {
    EXPECT_GT(*m.header.message_id, 100) << "history before the first queue is published";
  }
}

// The same read-back with nothing to publish: the backfill ends with its anchor at -1, durable.
// A quiet account (it never published a message) that loses its next queue then reads every
// narrow from the oldest message: the organisation's public history, all of it sent long
// before the first registration, is published ("never the whole history", decisions.md).
TEST_F(GapRecoveryTest, ReviewEmptyReadBackDoesNotLeaveTheAnchorAtTheOldestMessage) {
  AccountConfig config = Alice();
  config.all_public_streams = true;
  GapRecovery recovery(config, {client_, metrics_});
  (void)recovery.OnRegistered(Registered("q1", 100), -1, kRegisteredAt);
  recovery.NoteQueueLost(Lost("q1", kSettledPollMs));
  ASSERT_TRUE(recovery.OnRegistered(Registered("q2", 100), -1, kSettledPollSeconds).has_value());
  const int64_t long_ago = kRegisteredAt - 86400;
  TwoNarrowZulip zulip(transport_, /*own=*/{}, /*public=*/{{5, long_ago}, {90, long_ago}});
  BatchRead read;
  auto ask = [&] { read = ReadBatch(recovery, zulip); };
  ask();
  ASSERT_TRUE(read.batch.has_value());
  EXPECT_TRUE(read.batch->messages.empty());
  EXPECT_TRUE(recovery.ProduceBatch(read.outcome, *read.batch, HandedOver));
  EXPECT_FALSE(recovery.active());
  Checkpoint checkpoint;
  recovery.WriteTo(checkpoint);
  EXPECT_GE(checkpoint.backfill_anchor_message_id, 90)
      << "the quiet account's anchor fell to the oldest message";

  // The next loss, an hour later.
  recovery.NoteQueueLost(Lost("q2", kSettledPollMs + 3'600'000));
  ASSERT_TRUE(
      recovery.OnRegistered(Registered("q3", 100), -1, kSettledPollSeconds + 3600).has_value());
  ask();
  ASSERT_TRUE(read.batch.has_value());
  for (const BackfilledMessage& m : read.batch->messages) {
    EXPECT_GT(*m.header.message_id, 100)
        << "message " << *m.header.message_id
        << ", sent a day before the first queue, is published after the second gap";
  }
}

// Found by the simulation's "no history published" check: the backfill's anchor is the lowest of
// its narrows'. Here the own narrow reads back below the floor (80, sent after its time) and
// stops at 60; the public channels stop at 70, history sent a day before the first queue. A
// refused first batch reads every narrow again from 60, and the public channels' 70 must still
// not be published.
TEST_F(GapRecoveryTest, ABatchReadAgainFromALowerNarrowsAnchorPublishesNoHistory) {
  AccountConfig config = Alice();
  config.all_public_streams = true;
  GapRecovery recovery(config, {client_, metrics_});
  (void)recovery.OnRegistered(Registered("q1", 100), -1, kRegisteredAt);
  // q1 is lost a minute after it was registered: the read-back reaches back before it.
  recovery.NoteQueueLost(Lost("q1", (kRegisteredAt + 60) * 1000));
  ASSERT_TRUE(recovery.OnRegistered(Registered("q2", 200), 150, kRegisteredAt + 70).has_value());
  const int64_t long_ago = kRegisteredAt - 86400;
  TwoNarrowZulip zulip(transport_, /*own=*/{{60, long_ago}, {80, kRegisteredAt - 10}},
                       /*public=*/{{70, long_ago}, {145, kRegisteredAt + 30}});
  BatchRead read;
  auto ask = [&] { read = ReadBatch(recovery, zulip); };
  ask();
  ASSERT_TRUE(read.batch.has_value());
  ASSERT_FALSE(read.batch->messages.empty());
  EXPECT_EQ(*read.batch->messages.front().header.message_id, 80);
  // Kafka's queue is full: the first message is refused, and the batch is read again.
  EXPECT_TRUE(recovery.ProduceBatch(read.outcome, *read.batch, [](const BackfilledMessage&) {
    return BackfillProduce::kRefused;
  }));
  (void)recovery.TakeRetry();
  ask();
  ASSERT_TRUE(read.batch.has_value());
  std::vector<int64_t> ids;
  for (const BackfilledMessage& m : read.batch->messages) ids.push_back(*m.header.message_id);
  EXPECT_EQ(ids, (std::vector<int64_t>{80, 145})) << "70 is history the floor leaves out";
}

}  // namespace
}  // namespace zb
