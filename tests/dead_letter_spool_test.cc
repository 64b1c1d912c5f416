// DeadLetterSpool: versioned JSON lines in a temp directory, on a FaultyFs, with a real flock.
// Each test fails if its property breaks: a record that does not come back byte for byte, a
// failed sync that leaves a line behind (or reports OK), the cap not holding, an append lost or
// doubled while a replay renames the spool, a leftover replaying file not taken first.
#include "daemon/state/dead_letter_spool.h"

#include <rapidjson/document.h>

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/ops/replay_dead_letters.h"
#include "tests/fakes/faulty_fs.h"
#include "tests/fakes/mock_kafka_cluster.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::zb::testing::FaultyFs;
using ::zb::testing::IsOk;
using ::zb::testing::TempDir;

DeadLetter Letter(int64_t event_id, std::string value = "{\"type\":\"message\",\"id\":1}") {
  DeadLetter letter;
  letter.account = "alice";
  letter.event_id = event_id;
  letter.type = "message";
  letter.topic = "zulip.message";
  letter.key = "alice";
  letter.headers = {{"zulip-account", "alice"}, {"zulip-event-id", std::to_string(event_id)}};
  letter.timestamp_ms = 1764300000000 + event_id;
  letter.error = "MSG_SIZE_TOO_LARGE: Broker: Message size too large";
  letter.spooled_at = FormatUtcMillis(1764311400123);
  letter.value = std::move(value);
  return letter;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class DeadLetterSpoolTest : public ::testing::Test {
 protected:
  std::unique_ptr<DeadLetterSpool> OpenSpool(int64_t max_bytes = int64_t{1} << 30) {
    auto spool = DeadLetterSpool::Open(dir_.path(), fs_, metrics_, {max_bytes});
    EXPECT_THAT(spool, IsOk());
    return spool.ok() ? std::move(*spool) : nullptr;
  }
  std::string SpoolPath() const { return dir_.Sub(DeadLetterSpool::kFileName); }
  std::string ReplayingPath() const { return dir_.Sub(DeadLetterSpool::kReplayingFileName); }

  // Every record now in the spool files, read the way a replay reads them.
  std::vector<DeadLetter> Drain(DeadLetterSpool& spool) {
    std::vector<DeadLetter> all;
    for (int round = 0; round < 2; ++round) {
      auto batch = spool.TakeForReplay();
      EXPECT_THAT(batch, IsOk());
      if (!batch.ok()) break;
      EXPECT_TRUE(batch->unreadable_lines.empty());
      all.insert(all.end(), batch->records.begin(), batch->records.end());
      EXPECT_THAT(spool.FinishReplay({}, {}), IsOk());
      if (!batch->leftover) break;
    }
    return all;
  }

  double Gauge(const std::string& name) { return metrics_.GetGauge(name, "").value(); }
  uint64_t Count(const std::string& name, const Labels& labels = {}) {
    return metrics_.GetCounter(name, "", labels).value();
  }

  TempDir dir_;
  PosixFs posix_;
  FaultyFs fs_{posix_};
  MetricsRegistry metrics_;
};

TEST_F(DeadLetterSpoolTest, AppendedRecordComesBackExactly) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  DeadLetter letter = Letter(7, R"({"type":"message", "content":"caf\u00e9 \"q\"",  "x":1.50})");
  ASSERT_THAT(spool->Append(letter), IsOk());
  EXPECT_THAT(Drain(*spool), ElementsAre(letter));
}

TEST_F(DeadLetterSpoolTest, LineIsVersionedJsonWithEveryDocumentedField) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(7)), IsOk());
  std::string text = ReadAll(SpoolPath());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "one record, one line";
  EXPECT_EQ(text.rfind("{\"v\":1,", 0), 0u) << text;
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  ASSERT_TRUE(doc.IsObject()) << text;
  for (const char* field : {"v", "account", "event_id", "type", "topic", "key", "headers",
                            "timestamp_ms", "error", "spooled_at", "value"}) {
    EXPECT_TRUE(doc.HasMember(field)) << field;
  }
  EXPECT_EQ(doc["event_id"].GetInt64(), 7);
  EXPECT_STREQ(doc["spooled_at"].GetString(), "2025-11-28T06:30:00.123Z");
  EXPECT_STREQ(doc["value"].GetString(), "{\"type\":\"message\",\"id\":1}");
  EXPECT_STREQ(doc["headers"][0]["name"].GetString(), "zulip-account");
}

TEST_F(DeadLetterSpoolTest, AnyBytesComeBackExactlyAndTheLineStaysValidJson) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte += static_cast<char>(b);
  DeadLetter binary = Letter(1, every_byte);
  binary.key = std::string("\xff\x00k", 3);
  binary.headers.emplace_back("raw", std::string("\x80\x00", 2));
  DeadLetter with_nul = Letter(2, std::string("{\"a\":\"\0\"}", 9));
  DeadLetter no_key = Letter(3);
  no_key.key.reset();
  no_key.headers.clear();
  ASSERT_THAT(spool->Append(binary), IsOk());
  ASSERT_THAT(spool->Append(with_nul), IsOk());
  ASSERT_THAT(spool->Append(no_key), IsOk());

  std::istringstream lines(ReadAll(SpoolPath()));
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.c_str(), line.size());
    EXPECT_FALSE(doc.HasParseError()) << "not valid UTF-8 JSON: " << line;
    ++count;
  }
  EXPECT_EQ(count, 3);
  EXPECT_THAT(Drain(*spool), ElementsAre(binary, with_nul, no_key));
}

TEST_F(DeadLetterSpoolTest, FailedSyncReportsAnErrorAndLeavesNoLineBehind) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  const std::string before = ReadAll(SpoolPath());

  fs_.FailNth(FaultyFs::Op::kSyncFile, 1);
  Status failed = spool->Append(Letter(2));
  EXPECT_TRUE(failed.IsIOError()) << failed;
  EXPECT_THAT(failed.message(), HasSubstr(SpoolPath()));
  EXPECT_EQ(ReadAll(SpoolPath()), before) << "an unsynced line stayed in the spool";

  // The caller retries: exactly one line for the record.
  ASSERT_THAT(spool->Append(Letter(2)), IsOk());
  std::vector<DeadLetter> all = Drain(*spool);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].event_id, 2);
}

TEST_F(DeadLetterSpoolTest, NewSpoolFileIsNotDurableUntilItsDirectoryIsSynced) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  fs_.FailNth(FaultyFs::Op::kSyncDir, 1);
  Status failed = spool->Append(Letter(1));
  EXPECT_TRUE(failed.IsIOError()) << failed;
  int dir_syncs = fs_.calls(FaultyFs::Op::kSyncDir);
  // The file now exists (empty), but its entry was never made durable: the retry syncs it.
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  EXPECT_EQ(fs_.calls(FaultyFs::Op::kSyncDir), dir_syncs + 1);
  ASSERT_THAT(spool->Append(Letter(2)), IsOk());
  EXPECT_EQ(fs_.calls(FaultyFs::Op::kSyncDir), dir_syncs + 1) << "one dir sync per new file";
  EXPECT_EQ(Drain(*spool).size(), 2u);
}

TEST_F(DeadLetterSpoolTest, EveryAppendIsSyncedBeforeItReturns) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  int syncs = fs_.calls(FaultyFs::Op::kSyncFile);
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  ASSERT_THAT(spool->Append(Letter(2)), IsOk());
  EXPECT_EQ(fs_.calls(FaultyFs::Op::kSyncFile), syncs + 2);
}

TEST_F(DeadLetterSpoolTest, RecordThatWouldPassTheCapIsRefusedCountedAndNotWritten) {
  const int64_t one = static_cast<int64_t>(DeadLetterSpool::Serialize(Letter(1)).size());
  auto spool = OpenSpool(2 * one + one / 2);
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  ASSERT_THAT(spool->Append(Letter(2)), IsOk());
  const std::string before = ReadAll(SpoolPath());
  Status refused = spool->Append(Letter(3));
  EXPECT_TRUE(refused.IsUnavailable()) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("dead-letter spool full"));
  EXPECT_THAT(refused.message(), HasSubstr("dead_letter.max_bytes"));
  EXPECT_EQ(ReadAll(SpoolPath()), before);
  EXPECT_EQ(Count("zb_dead_letter_refused_total"), 1u);
  EXPECT_EQ(Count("zb_dead_letter_records_total", {{"account", "alice"}}), 2u);
  EXPECT_EQ(Gauge("zb_dead_letter_bytes"), static_cast<double>(2 * one));

  // A replay that takes them out makes room.
  EXPECT_EQ(Drain(*spool).size(), 2u);
  EXPECT_THAT(spool->Append(Letter(3)), IsOk());
}

TEST_F(DeadLetterSpoolTest, ReplayingFileCountsTowardsTheCap) {
  const int64_t one = static_cast<int64_t>(DeadLetterSpool::Serialize(Letter(1)).size());
  auto spool = OpenSpool(one + one / 2);
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  auto batch = spool->TakeForReplay();  // the replay is now sending it
  ASSERT_THAT(batch, IsOk());
  EXPECT_TRUE(spool->Append(Letter(2)).IsUnavailable());
  ASSERT_THAT(spool->FinishReplay({}, {}), IsOk());
  EXPECT_THAT(spool->Append(Letter(2)), IsOk());
}

TEST_F(DeadLetterSpoolTest, FinishReplayKeepsTheStillFailingWithTheirNewError) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  ASSERT_THAT(spool->Append(Letter(2)), IsOk());
  auto batch = spool->TakeForReplay();
  ASSERT_THAT(batch, IsOk());
  ASSERT_EQ(batch->records.size(), 2u);
  EXPECT_FALSE(batch->leftover);
  DeadLetter still = batch->records[1];
  still.error = "TOPIC_AUTHORIZATION_FAILED: Broker: Topic authorization failed";
  ASSERT_THAT(spool->FinishReplay({still}, {}), IsOk());
  EXPECT_FALSE(std::ifstream(ReplayingPath()).good()) << "replaying file left behind";
  EXPECT_THAT(Drain(*spool), ElementsAre(still));
}

TEST_F(DeadLetterSpoolTest, LeftoverReplayingFileIsTakenFirstAndTheSpoolNext) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  ASSERT_THAT(spool->TakeForReplay(), IsOk());  // and the replay crashes: no FinishReplay
  ASSERT_THAT(spool->Append(Letter(2)), IsOk());

  auto reopened = OpenSpool();
  ASSERT_TRUE(reopened);
  auto first = reopened->TakeForReplay();
  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(first->leftover);
  ASSERT_EQ(first->records.size(), 1u);
  EXPECT_EQ(first->records[0].event_id, 1);
  ASSERT_THAT(reopened->FinishReplay({}, {}), IsOk());
  auto second = reopened->TakeForReplay();
  ASSERT_THAT(second, IsOk());
  EXPECT_FALSE(second->leftover);
  ASSERT_EQ(second->records.size(), 1u);
  EXPECT_EQ(second->records[0].event_id, 2);
}

TEST_F(DeadLetterSpoolTest, FailedRenameLeavesTheSpoolWhereItWas) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  fs_.FailNth(FaultyFs::Op::kRename, 1);
  EXPECT_FALSE(spool->TakeForReplay().ok());
  EXPECT_THAT(Drain(*spool), ElementsAre(Letter(1)));
}

TEST_F(DeadLetterSpoolTest, UnreadableAndNewerVersionLinesAreKeptNotDropped) {
  {
    std::ofstream out(SpoolPath(), std::ios::binary);
    out << DeadLetterSpool::Serialize(Letter(1)) << "{\"v\":2,\"future\":true}\n"
        << "not json at all\n";
  }
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  auto batch = spool->TakeForReplay();
  ASSERT_THAT(batch, IsOk());
  EXPECT_EQ(batch->records.size(), 1u);
  EXPECT_THAT(batch->unreadable_lines, ElementsAre("{\"v\":2,\"future\":true}", "not json at all"));
  ASSERT_THAT(spool->FinishReplay({}, batch->unreadable_lines), IsOk());
  EXPECT_EQ(ReadAll(SpoolPath()), "{\"v\":2,\"future\":true}\nnot json at all\n");
}

TEST_F(DeadLetterSpoolTest, TornLastLineIsCutOffBeforeTheNextAppend) {
  const std::string whole = DeadLetterSpool::Serialize(Letter(1));
  {
    std::ofstream out(SpoolPath(), std::ios::binary);
    out << whole << whole.substr(0, whole.size() / 2);  // a crash in the middle of an append
  }
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(2)), IsOk());
  EXPECT_EQ(ReadAll(SpoolPath()), whole + DeadLetterSpool::Serialize(Letter(2)));
}

TEST_F(DeadLetterSpoolTest, AppendsWhileAnotherProcessReplaysAreNeitherLostNorDoubled) {
  // Two spools on one directory: separate lock descriptors, as the daemon and a replay in
  // another process have.
  auto daemon = OpenSpool();
  auto replay = OpenSpool();
  ASSERT_TRUE(daemon && replay);
  constexpr int kRecords = 400;
  std::atomic<bool> appending{true};
  std::thread appender([&] {
    for (int i = 0; i < kRecords; ++i) EXPECT_THAT(daemon->Append(Letter(i)), IsOk());
    appending = false;
  });
  std::multiset<int64_t> seen;
  auto take = [&] {
    auto batch = replay->TakeForReplay();
    ASSERT_THAT(batch, IsOk());
    EXPECT_TRUE(batch->unreadable_lines.empty());
    for (const DeadLetter& letter : batch->records) {
      EXPECT_EQ(letter, Letter(letter.event_id)) << "a torn or mixed record";
      seen.insert(letter.event_id);
    }
    ASSERT_THAT(replay->FinishReplay({}, {}), IsOk());
  };
  int rounds = 0;
  while (appending) {
    take();
    ++rounds;
  }
  appender.join();
  take();
  ASSERT_EQ(seen.size(), static_cast<size_t>(kRecords)) << "after " << rounds << " replays";
  for (int i = 0; i < kRecords; ++i) EXPECT_EQ(seen.count(i), 1u) << "record " << i;
}

// ReplayDeadLetters against librdkafka's mock cluster: what is delivered leaves the spool, what
// the broker still refuses stays with its new error, and a crashed replay's file goes first.
class ReplayDeadLettersTest : public DeadLetterSpoolTest {
 protected:
  Config MakeConfig() {
    Config config;
    config.state_dir = dir_.path();
    config.kafka.brokers = {cluster_.bootstraps()};
    config.kafka.properties = {{"linger.ms", "0"}, {"log_level", "2"}};
    return config;
  }
  StatusOr<ReplaySummary> Replay() {
    ReplayOptions options;
    options.report_timeout = std::chrono::seconds(30);
    return ReplayDeadLetters(MakeConfig(), fs_, options);
  }

  testing::MockKafkaCluster cluster_;
};

TEST_F(ReplayDeadLettersTest, DeliveredRecordsLeaveTheSpool) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  for (int i = 0; i < 3; ++i) ASSERT_THAT(spool->Append(Letter(i)), IsOk());
  StatusOr<ReplaySummary> summary = Replay();
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->replayed, 3u);
  EXPECT_EQ(summary->still_failing, 0u);
  EXPECT_TRUE(summary->all_delivered());
  EXPECT_EQ(FormatReplaySummary(*summary), "replayed 3, still failing 0\n");
  EXPECT_TRUE(Drain(*spool).empty());
}

TEST_F(ReplayDeadLettersTest, RecordTheBrokerStillRefusesStaysWithItsNewError) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  cluster_.FailNextProduce(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  StatusOr<ReplaySummary> summary = Replay();
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->replayed, 0u);
  EXPECT_EQ(summary->still_failing, 1u);
  EXPECT_FALSE(summary->all_delivered());
  EXPECT_THAT(FormatReplaySummary(*summary),
              HasSubstr("replayed 0, still failing 1\n  1 x TOPIC_AUTHORIZATION_FAILED"));
  std::vector<DeadLetter> kept = Drain(*spool);
  ASSERT_EQ(kept.size(), 1u);
  DeadLetter expected = Letter(1);
  expected.error = kept[0].error;
  EXPECT_EQ(kept[0], expected) << "the kept record changed beyond its error";
  EXPECT_THAT(kept[0].error, HasSubstr("TOPIC_AUTHORIZATION_FAILED"));
}

// Issue #15: records that time out stay held by the publisher and count against its limits. A
// replay with more records than the limit, against a broker that is down, must give its timed
// out records up (it keeps its own copy) rather than wait for room forever. Before the fix this
// test never returned.
TEST_F(ReplayDeadLettersTest, MoreRecordsThanTheProducerHoldsWithTheBrokerDownAreKept) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  for (int i = 0; i < 8; ++i) ASSERT_THAT(spool->Append(Letter(i)), IsOk());
  cluster_.SetBrokerDown();
  Config config = MakeConfig();
  config.kafka.properties["queue.buffering.max.messages"] = "3";
  config.kafka.properties["message.timeout.ms"] = "200";
  ReplayOptions options;
  options.report_timeout = std::chrono::seconds(5);
  StatusOr<ReplaySummary> summary = ReplayDeadLetters(config, fs_, options);
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->replayed, 0u);
  EXPECT_EQ(summary->still_failing, 8u);
  EXPECT_EQ(Drain(*spool).size(), 8u);
}

TEST_F(ReplayDeadLettersTest, LeftoverOfACrashedReplayIsReplayedAndSoIsTheSpool) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  ASSERT_THAT(spool->Append(Letter(1)), IsOk());
  ASSERT_THAT(spool->TakeForReplay(), IsOk());  // a replay that crashed after the rename
  ASSERT_THAT(spool->Append(Letter(2)), IsOk());
  StatusOr<ReplaySummary> summary = Replay();
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->replayed, 2u);
  EXPECT_FALSE(std::ifstream(ReplayingPath()).good());
  EXPECT_TRUE(Drain(*spool).empty());
}

TEST_F(ReplayDeadLettersTest, UnreadableLinesAreKeptAndCounted) {
  {
    std::ofstream out(SpoolPath(), std::ios::binary);
    out << DeadLetterSpool::Serialize(Letter(1)) << "garbage\n";
  }
  StatusOr<ReplaySummary> summary = Replay();
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->replayed, 1u);
  EXPECT_EQ(summary->unreadable, 1u);
  EXPECT_FALSE(summary->all_delivered());
  EXPECT_EQ(ReadAll(SpoolPath()), "garbage\n");
}

TEST(FormatUtcMillisTest, WritesRfc3339WithMilliseconds) {
  EXPECT_EQ(FormatUtcMillis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatUtcMillis(1764311400123), "2025-11-28T06:30:00.123Z");
}

}  // namespace
}  // namespace zb
