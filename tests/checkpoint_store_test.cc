#include "daemon/state/checkpoint_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "tests/fakes/faulty_fs.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::zb::testing::FaultyFs;
using ::zb::testing::IsOk;
using ::zb::testing::TempDir;

Checkpoint Make(int64_t watermark, const std::string& queue_id = "1517975029:0") {
  Checkpoint c;
  c.site = "https://chat.example.com";
  c.queue_id = queue_id;
  c.watermark = watermark;
  c.last_published_message_id = 1000 + watermark;
  c.backfill_active = watermark % 2 == 1;
  c.backfill_anchor_message_id = 500 + watermark;
  c.registered_at_unix_ms = 1700000000000;
  return c;
}

std::unique_ptr<CheckpointStore> OpenOrDie(const std::string& dir, Fs& fs) {
  StatusOr<std::unique_ptr<CheckpointStore>> store = CheckpointStore::Open(dir, fs);
  EXPECT_THAT(store, IsOk());
  return store.ok() ? std::move(*store) : nullptr;
}

// The watermark each account has on disk, read by a fresh store over the real file system.
std::map<std::string, int64_t> OnDisk(const std::string& dir) {
  PosixFs fs;
  std::map<std::string, int64_t> out;
  auto store = OpenOrDie(dir, fs);
  if (!store) return out;
  for (const Checkpoint& c : store->LoadAll()) out[c.account] = c.watermark;
  return out;
}

std::vector<std::string> Names(const std::string& dir) {
  PosixFs fs;
  StatusOr<std::vector<std::string>> names = fs.ListDir(dir);
  EXPECT_THAT(names, IsOk());
  std::vector<std::string> out = names.ok() ? *names : std::vector<std::string>{};
  std::sort(out.begin(), out.end());
  return out;
}

void WriteRaw(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

TEST(CheckpointStoreTest, CommittedCheckpointsSurviveReopening) {
  TempDir tmp;
  PosixFs fs;
  auto store = OpenOrDie(tmp.Sub("state"), fs);
  ASSERT_NE(store, nullptr);
  store->Stage("alpha", Make(7));
  store->Stage("beta", Make(8, "other:1"));
  ASSERT_THAT(store->Commit(), IsOk());
  EXPECT_FALSE(store->has_staged());

  auto reopened = OpenOrDie(tmp.Sub("state"), fs);
  ASSERT_NE(reopened, nullptr);
  StatusOr<Checkpoint> alpha = reopened->Load("alpha");
  ASSERT_THAT(alpha, IsOk());
  Checkpoint expected = Make(7);
  expected.account = "alpha";
  EXPECT_EQ(*alpha, expected);
  ASSERT_EQ(reopened->LoadAll().size(), 2u);
  EXPECT_EQ(reopened->LoadAll()[1].queue_id, "other:1");
}

TEST(CheckpointStoreTest, StagedCheckpointIsNeitherLoadedNorOnDiskUntilCommit) {
  TempDir tmp;
  PosixFs fs;
  auto store = OpenOrDie(tmp.path(), fs);
  store->Stage("alpha", Make(1));
  EXPECT_TRUE(store->Load("alpha").status().IsNotFound());
  EXPECT_TRUE(OnDisk(tmp.path()).empty());
  ASSERT_THAT(store->Commit(), IsOk());
  store->Stage("alpha", Make(2));
  EXPECT_EQ(store->Load("alpha")->watermark, 1);
  EXPECT_EQ(OnDisk(tmp.path())["alpha"], 1);
  EXPECT_EQ(store->StagedAccounts(), std::vector<std::string>{"alpha"});
}

TEST(CheckpointStoreTest, LaterStageReplacesAnEarlierOne) {
  TempDir tmp;
  PosixFs fs;
  auto store = OpenOrDie(tmp.path(), fs);
  store->Stage("alpha", Make(1));
  store->Stage("alpha", Make(5));
  ASSERT_THAT(store->Commit(), IsOk());
  EXPECT_EQ(OnDisk(tmp.path())["alpha"], 5);
}

TEST(CheckpointStoreTest, FilesAreReadableOnlyByTheOwner) {
  TempDir tmp;
  PosixFs fs;
  auto store = OpenOrDie(tmp.path(), fs);
  // A file left with looser permissions is tightened when it is replaced.
  WriteRaw(store->PathFor("alpha") + ".tmp", "x");
  ::chmod((store->PathFor("alpha") + ".tmp").c_str(), 0644);
  store->Stage("alpha", Make(1));
  ASSERT_THAT(store->Commit(), IsOk());
  struct stat st;
  ASSERT_EQ(::stat(store->PathFor("alpha").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(CheckpointStoreTest, CommitAtTheSyncfsThresholdSyncsTwice) {
  TempDir tmp;
  PosixFs posix;
  FaultyFs fs(posix);
  CheckpointStore::Options options;
  options.syncfs_min_accounts = 1000;
  StatusOr<std::unique_ptr<CheckpointStore>> opened =
      CheckpointStore::Open(tmp.path(), fs, options);
  ASSERT_THAT(opened, IsOk());
  std::unique_ptr<CheckpointStore> store = std::move(*opened);
  const int dir_syncs_at_open = fs.calls(FaultyFs::Op::kSyncDir);
  for (int i = 0; i < 1000; ++i) store->Stage("account-" + std::to_string(i), Make(i));
  ASSERT_THAT(store->Commit(), IsOk());
  EXPECT_EQ(fs.calls(FaultyFs::Op::kWrite), 1000);
  EXPECT_EQ(fs.calls(FaultyFs::Op::kRename), 1000);
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncFs), 1);
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncDir) - dir_syncs_at_open, 1);
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncFile), 0);
  EXPECT_EQ(OnDisk(tmp.path()).size(), 1000u);
}

TEST(CheckpointStoreTest, SmallCommitSyncsItsOwnFilesNotTheWholeFileSystem) {
  TempDir tmp;
  PosixFs posix;
  FaultyFs fs(posix);
  auto store = OpenOrDie(tmp.path(), fs);
  const int dir_syncs_at_open = fs.calls(FaultyFs::Op::kSyncDir);
  store->Stage("alpha", Make(1));
  store->Stage("beta", Make(1));
  ASSERT_THAT(store->Commit(), IsOk());
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncFile), 2);
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncFs), 0);
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncDir) - dir_syncs_at_open, 1);
}

// Issue #15 (11c): syncfs(2) flushes every program's dirty data on the file system, on the event
// loop. A commit of the accounts that advanced in one loop turn of a busy daemon (a hundred,
// say) must sync only its own files.
TEST(CheckpointStoreTest, CommitOfAHundredAccountsSyncsItsOwnFilesNotTheWholeFileSystem) {
  TempDir tmp;
  PosixFs posix;
  FaultyFs fs(posix);
  auto store = OpenOrDie(tmp.path(), fs);
  const int dir_syncs_at_open = fs.calls(FaultyFs::Op::kSyncDir);
  for (int i = 0; i < 100; ++i) store->Stage("account-" + std::to_string(i), Make(i));
  ASSERT_THAT(store->Commit(), IsOk());
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncFs), 0);
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncFile), 100);
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncDir) - dir_syncs_at_open, 1);
  EXPECT_EQ(OnDisk(tmp.path()).size(), 100u);
}

TEST(CheckpointStoreTest, NothingToCommitTouchesNothing) {
  TempDir tmp;
  PosixFs posix;
  FaultyFs fs(posix);
  auto store = OpenOrDie(tmp.path(), fs);
  const int syncs_at_open = fs.calls(FaultyFs::Op::kSyncFs) + fs.calls(FaultyFs::Op::kSyncDir);
  ASSERT_THAT(store->Commit(), IsOk());
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncFs) + fs.calls(FaultyFs::Op::kSyncDir), syncs_at_open);
}

// Found by the simulation (#15, seed 197; 341 with the final model): a final commit whose directory
// sync failed left the new checkpoint renamed in place but not durable; the next run read it and
// sent its watermark to Zulip, so a power loss then would have put the disk behind what Zulip was
// told. What Open reads is made durable before anyone acts on it, or Open fails.
TEST(CheckpointStoreTest, OpenMakesWhatItReadsDurableBeforeItIsActedOn) {
  TempDir tmp;
  PosixFs posix;
  {
    auto store = OpenOrDie(tmp.path(), posix);
    store->Stage("alpha", Make(1));
    store->Stage("beta", Make(2));
    ASSERT_THAT(store->Commit(), IsOk());
  }
  FaultyFs fs(posix);
  auto store = OpenOrDie(tmp.path(), fs);
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncFile), 2) << "each checkpoint read";
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncDir), 1);

  FaultyFs failing(posix);
  failing.FailNth(FaultyFs::Op::kSyncDir, 1);
  auto refused = CheckpointStore::Open(tmp.path(), failing);
  ASSERT_FALSE(refused.ok()) << "a checkpoint that may not be durable was handed out";
  EXPECT_TRUE(refused.status().IsIOError()) << refused.status().message();
}

// Commits watermark 1 for three accounts, then tries to commit 2 with `op`'s `nth` call
// failing, and checks that the disk and the store still say 1 and that 2 is still pending.
void ExpectFailedCommitLeavesOldCheckpoints(FaultyFs::Op op, int nth) {
  TempDir tmp;
  PosixFs posix;
  FaultyFs fs(posix);
  fs.set_tear_failed_writes(true);
  CheckpointStore::Options options;
  // Three accounts: syncfs for the syncfs case, one fsync per file otherwise.
  options.syncfs_min_accounts = op == FaultyFs::Op::kSyncFs ? 1 : 100;
  StatusOr<std::unique_ptr<CheckpointStore>> opened =
      CheckpointStore::Open(tmp.path(), fs, options);
  ASSERT_THAT(opened, IsOk());
  std::unique_ptr<CheckpointStore> store = std::move(*opened);
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> accounts = {"alpha", "beta", "gamma"};
  for (const auto& a : accounts) store->Stage(a, Make(1));
  ASSERT_THAT(store->Commit(), IsOk());
  const std::vector<std::string> names_before = Names(tmp.path());

  for (const auto& a : accounts) store->Stage(a, Make(2));
  fs.FailNth(op, nth, /*sticky=*/false);
  Status failed = store->Commit();
  ASSERT_TRUE(failed.IsIOError()) << failed;
  EXPECT_THAT(failed.message(), HasSubstr(tmp.path()));
  EXPECT_THAT(failed.message(), HasSubstr("Input/output error"));
  EXPECT_EQ(fs.failures(), 1);

  // (Names first: opening a store, as OnDisk does, would clean up temp files.)
  EXPECT_EQ(Names(tmp.path()), names_before) << "no temp file is left behind";
  std::map<std::string, int64_t> expected = {{"alpha", 1}, {"beta", 1}, {"gamma", 1}};
  EXPECT_EQ(OnDisk(tmp.path()), expected);
  for (const auto& a : accounts) EXPECT_EQ(store->Load(a)->watermark, 1);
  EXPECT_EQ(store->StagedAccounts(), accounts);

  // The next commit, with the disk healthy again, makes the pending checkpoints durable.
  ASSERT_THAT(store->Commit(), IsOk());
  expected = {{"alpha", 2}, {"beta", 2}, {"gamma", 2}};
  EXPECT_EQ(OnDisk(tmp.path()), expected);
  EXPECT_FALSE(store->has_staged());
}

TEST(CheckpointStoreTest, CommitLeavesOldStateWhenAWriteFails) {
  ExpectFailedCommitLeavesOldCheckpoints(FaultyFs::Op::kWrite, 2);
}

TEST(CheckpointStoreTest, CommitLeavesOldStateWhenSyncfsFails) {
  ExpectFailedCommitLeavesOldCheckpoints(FaultyFs::Op::kSyncFs, 1);
}

TEST(CheckpointStoreTest, CommitLeavesOldStateWhenAFileSyncFails) {
  ExpectFailedCommitLeavesOldCheckpoints(FaultyFs::Op::kSyncFile, 2);
}

TEST(CheckpointStoreTest, CommitLeavesOldStateWhenARenameFails) {
  ExpectFailedCommitLeavesOldCheckpoints(FaultyFs::Op::kRename, 2);
}

TEST(CheckpointStoreTest, CommitLeavesOldStateWhenTheDirectorySyncFails) {
  ExpectFailedCommitLeavesOldCheckpoints(FaultyFs::Op::kSyncDir, 1);
}

TEST(CheckpointStoreTest, FailedCommitOfNewAccountsLeavesNoFile) {
  TempDir tmp;
  PosixFs posix;
  FaultyFs fs(posix);
  auto store = OpenOrDie(tmp.path(), fs);
  store->Stage("alpha", Make(1));
  store->Stage("beta", Make(1));
  fs.FailNth(FaultyFs::Op::kRename, 2);
  ASSERT_FALSE(store->Commit().ok());
  EXPECT_TRUE(Names(tmp.path()).empty());
  EXPECT_TRUE(store->Load("alpha").status().IsNotFound());
}

TEST(CheckpointStoreTest, TornTempFileFromACrashIsIgnoredAndRemovedAtOpen) {
  TempDir tmp;
  PosixFs fs;
  {
    auto store = OpenOrDie(tmp.path(), fs);
    store->Stage("alpha", Make(3));
    ASSERT_THAT(store->Commit(), IsOk());
    // A crash in the middle of the next commit's write.
    WriteRaw(store->PathFor("alpha") + ".tmp", R"({"version":1,"site":"https://chat.ex)");
    WriteRaw(tmp.Sub("lost%2Baccount.checkpoint.json.tmp"), "");
  }
  auto store = OpenOrDie(tmp.path(), fs);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Load("alpha")->watermark, 3);
  EXPECT_EQ(Names(tmp.path()), std::vector<std::string>{"alpha.checkpoint.json"});
}

TEST(CheckpointStoreTest, NewerFormatVersionIsCorruptionNamingTheFile) {
  TempDir tmp;
  PosixFs fs;
  const std::string path = tmp.Sub("alpha.checkpoint.json");
  std::string text = CheckpointStore::Serialize(Make(1));
  text.replace(text.find("\"version\":1"), 11, "\"version\":2");
  WriteRaw(path, text);
  StatusOr<std::unique_ptr<CheckpointStore>> store = CheckpointStore::Open(tmp.path(), fs);
  ASSERT_TRUE(store.status().IsCorruption()) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(), HasSubstr("version 2"));
}

TEST(CheckpointStoreTest, RegisterFingerprintRoundTripsAndIsOptional) {
  Checkpoint with = Make(5);
  with.register_fingerprint = "fnv1a64:0123456789abcdef";
  StatusOr<Checkpoint> parsed = CheckpointStore::Parse(CheckpointStore::Serialize(with), "t");
  ASSERT_THAT(parsed.status(), IsOk());
  EXPECT_EQ(parsed->register_fingerprint, "fnv1a64:0123456789abcdef");

  // A checkpoint written before the field existed has none: it reads as unknown, not an error.
  std::string old_text = CheckpointStore::Serialize(Make(5));
  ASSERT_EQ(old_text.find("register_fingerprint"), std::string::npos);
  StatusOr<Checkpoint> old = CheckpointStore::Parse(old_text, "t");
  ASSERT_THAT(old.status(), IsOk());
  EXPECT_EQ(old->register_fingerprint, "");

  std::string bad = CheckpointStore::Serialize(Make(5));
  bad.insert(bad.rfind('}'), ",\"register_fingerprint\":7");
  EXPECT_TRUE(CheckpointStore::Parse(bad, "t").status().IsCorruption());
}

TEST(CheckpointStoreTest, RecoveryFieldsRoundTripAndAreOptional) {
  Checkpoint with = Make(5);
  with.feature_level = 400;
  with.settled_poll_unix_ms = 1735689600123;
  with.history_floor_message_id = 77;
  with.history_floor_unix_seconds = 1735689000;
  with.backfill_active = true;
  with.backfill_rewind_to_unix_seconds = 1735689300;
  with.pending_gap_records = {R"({"version":1,"type":"gap","reason":"a \"quoted\" one"})", "{}"};
  StatusOr<Checkpoint> parsed = CheckpointStore::Parse(CheckpointStore::Serialize(with), "t");
  ASSERT_THAT(parsed.status(), IsOk());
  EXPECT_EQ(*parsed, with);

  // Written before the fields existed: unknown (0) and none pending, not an error.
  std::string old_text = R"({"version":1,"site":"s","account":"a","queue_id":"q","watermark":5,)"
                         R"("last_published_message_id":-1,"registered_at_unix_ms":0,)"
                         R"("backfill":{"active":false,"anchor_message_id":-1}})";
  StatusOr<Checkpoint> old = CheckpointStore::Parse(old_text, "t");
  ASSERT_THAT(old.status(), IsOk());
  EXPECT_EQ(old->feature_level, 0);
  EXPECT_EQ(old->settled_poll_unix_ms, 0);
  EXPECT_EQ(old->backfill_rewind_to_unix_seconds, 0);
  EXPECT_EQ(old->history_floor_unix_seconds, 0);
  EXPECT_TRUE(old->pending_gap_records.empty());

  std::string bad_level = CheckpointStore::Serialize(Make(5));
  bad_level.replace(bad_level.find("\"feature_level\":0"), 17, "\"feature_level\":\"0\"");
  EXPECT_TRUE(CheckpointStore::Parse(bad_level, "t").status().IsCorruption()) << bad_level;
  for (const char* bad_member : {R"("pending_gap_records":"x")", R"("pending_gap_records":[1])"}) {
    std::string bad = CheckpointStore::Serialize(Make(5));
    bad.insert(bad.rfind('}'), std::string(",") + bad_member);
    EXPECT_TRUE(CheckpointStore::Parse(bad, "t").status().IsCorruption()) << bad_member;
  }
}

TEST(CheckpointStoreTest, UnparsableCheckpointIsCorruptionNamingTheFile) {
  TempDir tmp;
  PosixFs fs;
  for (const std::string bad : {"{\"version\":1,", "[]", "{\"version\":1}", ""}) {
    WriteRaw(tmp.Sub("beta.checkpoint.json"), bad);
    StatusOr<std::unique_ptr<CheckpointStore>> store = CheckpointStore::Open(tmp.path(), fs);
    ASSERT_TRUE(store.status().IsCorruption()) << bad << ": " << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(tmp.Sub("beta.checkpoint.json")));
  }
}

TEST(CheckpointStoreTest, CheckpointOfAnotherAccountUnderThisNameIsCorruption) {
  TempDir tmp;
  PosixFs fs;
  Checkpoint c = Make(1);
  c.account = "beta";
  WriteRaw(tmp.Sub("alpha.checkpoint.json"), CheckpointStore::Serialize(c));
  EXPECT_TRUE(CheckpointStore::Open(tmp.path(), fs).status().IsCorruption());
}

TEST(CheckpointStoreTest, AnyAccountNameMakesASafeFileName) {
  TempDir tmp;
  PosixFs fs;
  auto store = OpenOrDie(tmp.path(), fs);
  const std::vector<std::string> accounts = {"ops/team a.b", "..", "caf\xc3\xa9", "x%41"};
  for (const auto& a : accounts) store->Stage(a, Make(4));
  ASSERT_THAT(store->Commit(), IsOk());
  for (const std::string& name : Names(tmp.path())) {
    EXPECT_EQ(name.find('/'), std::string::npos);
    EXPECT_NE(name[0], '.');
  }
  auto reopened = OpenOrDie(tmp.path(), fs);
  for (const auto& a : accounts) EXPECT_THAT(reopened->Load(a), IsOk()) << a;
}

TEST(CheckpointStoreTest, OtherFilesInTheStateDirectoryAreLeftAlone) {
  TempDir tmp;
  PosixFs fs;
  WriteRaw(tmp.Sub("lock"), "123\n");
  WriteRaw(tmp.Sub("dead-letter.jsonl"), "{}\n");
  auto store = OpenOrDie(tmp.path(), fs);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->LoadAll().empty());
  EXPECT_EQ(Names(tmp.path()), (std::vector<std::string>{"dead-letter.jsonl", "lock"}));
}

TEST(CheckpointStoreTest, RemoveDeletesTheCheckpointDurably) {
  TempDir tmp;
  PosixFs posix;
  FaultyFs fs(posix);
  auto store = OpenOrDie(tmp.path(), fs);
  store->Stage("alpha", Make(1));
  store->Stage("beta", Make(1));
  ASSERT_THAT(store->Commit(), IsOk());
  store->Stage("alpha", Make(2));
  const int dir_syncs = fs.calls(FaultyFs::Op::kSyncDir);
  ASSERT_THAT(store->Remove("alpha"), IsOk());
  EXPECT_EQ(fs.calls(FaultyFs::Op::kSyncDir), dir_syncs + 1);
  EXPECT_FALSE(store->has_staged());
  EXPECT_TRUE(store->Load("alpha").status().IsNotFound());
  EXPECT_EQ(OnDisk(tmp.path()), (std::map<std::string, int64_t>{{"beta", 1}}));
  EXPECT_THAT(store->Remove("never-saved"), IsOk());
}

TEST(CheckpointStoreTest, UnwritableDirectoryIsIOErrorWithThePath) {
  TempDir tmp;
  PosixFs fs;
  WriteRaw(tmp.Sub("file"), "");
  StatusOr<std::unique_ptr<CheckpointStore>> store =
      CheckpointStore::Open(tmp.Sub("file/state"), fs);
  ASSERT_TRUE(store.status().IsIOError()) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(tmp.Sub("file/state")));
}

}  // namespace
}  // namespace zb
