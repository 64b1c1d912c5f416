// Gaps end to end (issue 8): the bridge as a subprocess, the fake Zulip's organisation, the real
// broker. A queue is lost (dropped while the bridge is stopped, a Zulip crash while it runs, a
// lifespan that ran out); messages are sent meanwhile to public and private channels and as
// direct messages; afterwards every message the account could see is in Kafka, live or
// backfilled, none by both paths, none it could not see, and the control topic has one gap
// record that names the lost and the new queue. Each test fails when that breaks: a missing
// message, a message published twice across paths, a wrong or missing gap record, a backfill
// that a kill -9 in its middle cuts short.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/integration/bridge_harness.h"
#include "tests/test_support.h"

namespace zb::testing {
namespace {

constexpr char kBot[] = "gap-bot@example.com";
constexpr char kKey[] = "gapKey56789abcdefghijklmnopqrstu";
constexpr char kIago[] = "iago@zulip.com";  // a member of the fake's organisation

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// What Kafka holds for one message id.
struct Seen {
  int live = 0;
  int backfilled = 0;
  std::set<std::string> live_queues;  // the queues whose live records carry the message
};

class GapTest : public BridgeTest {
 protected:
  // The fake with the bot, and channels the bot is in (secret), is not in but may see
  // (lonely, public) and may not see (hidden, private).
  void SetUpWorld(const std::string& extra_account_yaml = "",
                  std::vector<std::string> fake_args = {}) {
    zulip_ = std::make_unique<FakeZulip>(dir_.path(), std::vector<FakeZulip::User>{{kBot, kKey}},
                                         std::move(fake_args));
    ASSERT_EQ(zulip_->Control("/_fake/channels", R"({"name":"lonely"})").status, 200);
    ASSERT_EQ(zulip_
                  ->Control("/_fake/channels", R"({"name":"secret","invite_only":true,)"
                                               R"("subscribers":["gap-bot@example.com",)"
                                               R"("iago@zulip.com"]})")
                  .status,
              200);
    ASSERT_EQ(zulip_
                  ->Control("/_fake/channels", R"({"name":"hidden","invite_only":true,)"
                                               R"("subscribers":["iago@zulip.com"]})")
                  .status,
              200);
    prefix_ = UniqueTopic("zbgap");
    WriteFile(dir_.Sub("bot.key"), std::string(kKey) + "\n");
    WriteFile(config_path(),
              "kafka:\n  brokers: [" + brokers_ + "]\n  topic_template: \"" + prefix_ +
                  ".{type}\"\n  control_topic: " + prefix_ +
                  ".control\n  flush_timeout_secs: 20\nstate_dir: " + dir_.Sub("state") +
                  "\nhttp:\n  listen: 127.0.0.1:0\nlog:\n  level: debug\naccounts:\n" +
                  AccountYaml("gap", zulip_->site(), kBot, dir_.Sub("bot.key"),
                              "    all_public_streams: true\n" + extra_account_yaml));
  }

  std::string WaitForQueue(const std::string& not_this = "") {
    std::string queue = zulip_->WaitForOneQueue(kBot, not_this);
    EXPECT_FALSE(queue.empty()) << "no new queue for the bot";
    return queue;
  }

  // Sends `count` messages; their ids.
  std::vector<int64_t> Send(const std::string& json_without_count, int count) {
    HttpAnswer answer = zulip_->Control(
        "/_fake/messages", json_without_count.substr(0, json_without_count.size() - 1) +
                               ",\"count\":" + std::to_string(count) + "}");
    EXPECT_EQ(answer.status, 200) << answer.body;
    rapidjson::Document doc;
    doc.Parse(answer.body.c_str());
    std::vector<int64_t> ids;
    if (!doc.IsObject() || !doc.HasMember("first_id")) return ids;
    for (int64_t id = doc["first_id"].GetInt64(); id <= doc["last_id"].GetInt64(); ++id) {
      ids.push_back(id);
    }
    return ids;
  }

  // One round of messages: `per_kind` to each destination. Adds what the bot may see to
  // visible_, the rest to invisible_.
  void SendRound(int per_kind) {
    auto add = [](std::set<int64_t>& to, const std::vector<int64_t>& ids) {
      to.insert(ids.begin(), ids.end());
    };
    std::string iago = std::string("{\"sender_email\":\"") + kIago + "\",";
    add(visible_, Send(iago + R"("channel":"Denmark","topic":"subscribed"})", per_kind));
    add(visible_, Send(iago + R"("channel":"lonely","topic":"public"})", per_kind));
    add(visible_, Send(iago + R"("channel":"secret","topic":"private"})", per_kind));
    add(visible_, Send(iago + R"("to":["gap-bot@example.com"]})", per_kind));
    add(invisible_, Send(iago + R"("channel":"hidden","topic":"not ours"})", per_kind));
    add(invisible_, Send(iago + R"("to":["hamlet@zulip.com"]})", per_kind));
  }

  // Message id -> how Kafka holds it, once every id in `want` is there (or the deadline).
  std::map<int64_t, Seen> ReadMessages(const std::set<int64_t>& want) {
    std::map<int64_t, Seen> seen;
    auto fill = [&](const std::vector<ReadRecord>& records) {
      seen.clear();
      for (const ReadRecord& r : records) {
        rapidjson::Document doc;
        doc.Parse(r.value.c_str());
        if (!doc.IsObject() || !doc.HasMember("message")) continue;
        int64_t id = doc["message"]["id"].GetInt64();
        auto backfill = r.headers.find("zulip-backfill");
        if (backfill != r.headers.end() && backfill->second == "true") {
          ++seen[id].backfilled;
        } else {
          ++seen[id].live;
          auto queue = r.headers.find("zulip-queue-id");
          if (queue != r.headers.end()) seen[id].live_queues.insert(queue->second);
        }
      }
      for (int64_t id : want) {
        if (!seen.count(id)) return false;
      }
      return true;
    };
    std::vector<ReadRecord> records =
        ReadTopics(brokers_, {prefix_ + ".message"}, fill, std::chrono::seconds(90));
    fill(records);
    return seen;
  }

  std::vector<rapidjson::Document> GapRecords(size_t at_least) {
    std::vector<ReadRecord> records = ReadTopics(
        brokers_, {prefix_ + ".control"},
        [&](const std::vector<ReadRecord>& so_far) { return so_far.size() >= at_least; },
        std::chrono::seconds(30));
    std::vector<rapidjson::Document> gaps;
    for (const ReadRecord& r : records) {
      rapidjson::Document doc;
      doc.Parse(r.value.c_str());
      if (doc.IsObject() && doc.HasMember("type") &&
          std::string(doc["type"].GetString()) == "gap") {
        gaps.push_back(std::move(doc));
      }
    }
    return gaps;
  }

  // The property: every visible message once or more, never by both the backfill and the new
  // queue, nothing invisible. `lost_queue`, when set, names a queue whose live records the
  // backfill may repeat: after a restart (or a reload, which builds the account anew) the
  // bridge no longer knows which of the messages it reads back from the margin before the loss
  // Kafka has (issue #15: it never skips one it cannot prove published). Without it, not even
  // those: in one run, what Kafka acknowledged is not published again.
  void ExpectEveryVisibleMessageOnceAcrossPaths(const std::map<int64_t, Seen>& seen,
                                                const std::string& lost_queue = "") {
    size_t missing = 0, both = 0, leaked = 0, backfilled = 0, read_back = 0;
    for (int64_t id : visible_) {
      auto it = seen.find(id);
      if (it == seen.end()) {
        if (++missing <= 10) std::cout << "missing message " << id << "\n";
        continue;
      }
      if (it->second.live > 0 && it->second.backfilled > 0) {
        if (!lost_queue.empty() && it->second.live_queues == std::set<std::string>{lost_queue}) {
          ++read_back;
        } else {
          ++both;
        }
      }
      if (it->second.backfilled > 0) ++backfilled;
    }
    for (int64_t id : invisible_) leaked += seen.count(id);
    EXPECT_EQ(missing, 0u) << "of " << visible_.size() << " visible messages";
    EXPECT_EQ(both, 0u) << "messages published live and by the backfill";
    EXPECT_EQ(leaked, 0u) << "messages the bot could not see";
    std::cout << "visible " << visible_.size() << ", backfilled " << backfilled
              << ", read back again " << read_back << "\n";
  }

  std::string prefix_;
  std::unique_ptr<FakeZulip> zulip_;
  std::set<int64_t> visible_, invisible_;
};

enum class LossSignal { kDroppedWhileStopped, kZulipCrashWhileRunning, kLifespanRanOut };

class GapSignalTest : public GapTest, public ::testing::WithParamInterface<LossSignal> {};

TEST_P(GapSignalTest, EveryVisibleMessageIsInKafkaOnceAndTheGapRecordNamesBothQueues) {
  // Zulip's clock starts 1000 s in the past, so that the history sent before the first start is
  // older than the read-back margin before it; then it catches up with the bridge's.
  constexpr int kPastSeconds = 1000;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch());
  SetUpWorld("", {"--start-time", std::to_string(now.count() - kPastSeconds)});
  // Before the first start: history the bridge must not read back (no backfill_from).
  std::set<int64_t> before_first_start;
  {
    SendRound(2);
    before_first_start = visible_;
    visible_.clear();
    invisible_.clear();
  }
  ASSERT_EQ(
      zulip_->Control("/_fake/time/advance", "{\"seconds\":" + std::to_string(kPastSeconds) + "}")
          .status,
      200);
  StartBridge();
  std::string first_queue = WaitForQueue();
  SendRound(3);
  ReadMessages(visible_);  // the live ones are in Kafka before the queue is lost

  switch (GetParam()) {
    case LossSignal::kDroppedWhileStopped:
      StopBridge();
      ASSERT_EQ(zulip_->Control("/_fake/queues/drop_all").status, 200);
      SendRound(4);
      StartBridge();
      break;
    case LossSignal::kZulipCrashWhileRunning:
      // The parked poll is cut and the queue gone; messages sent before the bridge registers
      // again reach no queue of its.
      ASSERT_EQ(zulip_->Control("/_fake/crash").status, 200);
      SendRound(4);
      break;
    case LossSignal::kLifespanRanOut:
      StopBridge();
      SendRound(4);
      // Zulip's garbage collection of a queue nobody polled for its whole lifespan.
      ASSERT_EQ(zulip_->Control("/_fake/queues/drop_idle", R"({"seconds":0})").status, 200);
      StartBridge();
      break;
  }
  std::string second_queue = WaitForQueue(first_queue);
  SendRound(2);  // live on the new queue, some possibly during the backfill

  std::map<int64_t, Seen> seen = ReadMessages(visible_);
  // Only a loss found while running keeps what the account knows Kafka has.
  ExpectEveryVisibleMessageOnceAcrossPaths(
      seen, GetParam() == LossSignal::kZulipCrashWhileRunning ? "" : first_queue);
  for (int64_t id : before_first_start) {
    EXPECT_EQ(seen.count(id), 0u) << "message " << id << " predates the first start";
  }
  std::vector<rapidjson::Document> gaps = GapRecords(1);
  ASSERT_EQ(gaps.size(), 1u);
  const rapidjson::Document& gap = gaps[0];
  EXPECT_EQ(gap["version"].GetInt(), 1);
  EXPECT_STREQ(gap["account"].GetString(), "gap");
  EXPECT_EQ(gap["lost_queue_id"].GetString(), first_queue);
  EXPECT_EQ(gap["new_queue_id"].GetString(), second_queue);
  EXPECT_GT(gap["last_message_id"].GetInt64(), 0);
  EXPECT_TRUE(gap["detected_at"].IsString());
  EXPECT_NE(std::string(gap["reason"].GetString()), "");
}

INSTANTIATE_TEST_SUITE_P(LossSignals, GapSignalTest,
                         ::testing::Values(LossSignal::kDroppedWhileStopped,
                                           LossSignal::kZulipCrashWhileRunning,
                                           LossSignal::kLifespanRanOut),
                         [](const ::testing::TestParamInfo<LossSignal>& info) {
                           switch (info.param) {
                             case LossSignal::kDroppedWhileStopped:
                               return "QueueDroppedWhileStopped";
                             case LossSignal::kZulipCrashWhileRunning:
                               return "ZulipCrashWhileRunning";
                             case LossSignal::kLifespanRanOut:
                               return "LifespanRanOut";
                           }
                           return "Unknown";
                         });

TEST_F(GapTest, AKillDuringTheBackfillResumesItAndLosesNothing) {
  SetUpWorld();
  StartBridge();
  std::string first_queue = WaitForQueue();
  SendRound(1);
  ReadMessages(visible_);
  StopBridge();
  ASSERT_EQ(zulip_->Control("/_fake/queues/drop_all").status, 200);
  SendRound(400);  // 1,600 visible: two pages or more per narrow
  // Each page of the backfill takes a second, so the kill lands in its middle.
  ASSERT_EQ(zulip_
                ->Control("/_fake/faults", R"({"kind":"slow","delay_secs":1,)"
                                           R"("path":"/api/v1/messages"})")
                .status,
            200);
  StartBridge();
  // Once part of the backfill is in Kafka, kill -9.
  ReadTopics(
      brokers_, {prefix_ + ".message"},
      [](const std::vector<ReadRecord>& records) {
        for (const ReadRecord& r : records) {
          if (r.headers.count("zulip-backfill")) return true;
        }
        return false;
      },
      std::chrono::seconds(60));
  bridge_->Signal(SIGKILL);
  bridge_->Wait(std::chrono::seconds(10));
  ASSERT_EQ(zulip_->Control("/_fake/faults/clear").status, 200);
  StartBridge();
  std::string second_queue = WaitForQueue(first_queue);
  SendRound(1);
  ExpectEveryVisibleMessageOnceAcrossPaths(ReadMessages(visible_), first_queue);
  EXPECT_EQ(zulip_->QueuesOf(kBot), std::vector<std::string>{second_queue})
      << "the restart registered again instead of resuming the backfill";
}

TEST_F(GapTest, BackfillFromAMessageIdReadsHistoryOnTheFirstStart) {
  SetUpWorld();
  SendRound(2);
  std::set<int64_t> history = visible_;
  int64_t from = *std::next(history.begin(), 3);
  WriteFile(config_path(),
            ReadFileOrEmpty(config_path()) + "    backfill_from: " + std::to_string(from) + "\n");
  StartBridge();
  WaitForQueue();
  std::set<int64_t> want;
  for (int64_t id : history) {
    if (id >= from) want.insert(id);
  }
  std::map<int64_t, Seen> seen = ReadMessages(want);
  for (int64_t id : history) {
    EXPECT_EQ(seen.count(id), id >= from ? 1u : 0u) << "message " << id << ", from " << from;
  }
}

// Register arguments changed (here apply_markdown) make the old queue wrong for the new
// configuration, whether the change comes by reload or between runs: a new queue, a gap record
// saying why, every message still in Kafka once, and the old queue deleted at Zulip.
enum class ChangeApplied { kByReload, kByRestart };

class ConfigChangeTest : public GapTest, public ::testing::WithParamInterface<ChangeApplied> {};

TEST_P(ConfigChangeTest, ChangedRegisterArgumentsReplaceTheQueueWithAGapRecordLosingNoMessage) {
  SetUpWorld();
  StartBridge();
  std::string first_queue = WaitForQueue();
  SendRound(3);
  ReadMessages(visible_);
  WriteFile(config_path(), ReadFileOrEmpty(config_path()) + "    apply_markdown: true\n");
  if (GetParam() == ChangeApplied::kByReload) {
    SendRound(2);  // in the old queue, polled or not when the reload stops it
    bridge_->Signal(SIGHUP);
  } else {
    StopBridge();
    SendRound(2);  // in the old queue only, which the new configuration must not poll
    StartBridge();
  }
  // One queue, not the first: the new one is registered and the old one deleted.
  std::string second_queue = WaitForQueue(first_queue);
  SendRound(2);
  ExpectEveryVisibleMessageOnceAcrossPaths(ReadMessages(visible_), first_queue);
  std::vector<rapidjson::Document> gaps = GapRecords(1);
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_STREQ(gaps[0]["reason"].GetString(), "configuration changed");
  EXPECT_EQ(gaps[0]["lost_queue_id"].GetString(), first_queue);
  EXPECT_EQ(gaps[0]["new_queue_id"].GetString(), second_queue);
  EXPECT_EQ(zulip_->QueuesOf(kBot), std::vector<std::string>{second_queue});
}

INSTANTIATE_TEST_SUITE_P(Ways, ConfigChangeTest,
                         ::testing::Values(ChangeApplied::kByReload, ChangeApplied::kByRestart),
                         [](const ::testing::TestParamInfo<ChangeApplied>& info) {
                           return info.param == ChangeApplied::kByReload ? "ByReload" : "ByRestart";
                         });

}  // namespace
}  // namespace zb::testing
