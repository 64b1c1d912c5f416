#include "daemon/ops/decommission.h"

#include <httplib.h>

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/state/checkpoint_store.h"
#include "daemon/state/state_dir_lock.h"
#include "tests/fake_zulip_fixture.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using zb::testing::IsOk;

constexpr char kEmail[] = "retired-bot@example.com";
constexpr char kKey[] = "retiredKey456789abcdefghijklmnop";

class DecommissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(zulip_.Start(kEmail, kKey), IsOk());
    config_.state_dir = dir_.path();
    config_.accounts.push_back(zulip_.Account("retired"));
  }

  // Registers a queue for the user as the daemon would have; returns its id.
  std::string RegisterQueue() {
    httplib::Client client("127.0.0.1", zulip_->port());
    client.set_basic_auth(kEmail, kKey);
    httplib::Result result = client.Post("/api/v1/register", "event_types=%5B%22message%22%5D",
                                         "application/x-www-form-urlencoded");
    EXPECT_TRUE(result && result->status == 200);
    if (!result) return "";
    size_t at = result->body.find("\"queue_id\":\"");
    if (at == std::string::npos) return "";
    at += 12;
    return result->body.substr(at, result->body.find('"', at) - at);
  }

  void WriteCheckpoint(const std::string& queue_id) {
    StatusOr<std::unique_ptr<CheckpointStore>> store = CheckpointStore::Open(dir_.path(), fs_);
    ASSERT_THAT(store.status(), IsOk());
    Checkpoint checkpoint;
    checkpoint.site = zulip_->url();
    checkpoint.queue_id = queue_id;
    checkpoint.watermark = 12;
    (*store)->Stage("retired", checkpoint);
    ASSERT_THAT((*store)->Commit(), IsOk());
  }

  bool HasCheckpoint() {
    StatusOr<std::unique_ptr<CheckpointStore>> store = CheckpointStore::Open(dir_.path(), fs_);
    return store.ok() && (*store)->Load("retired").ok();
  }

  bool ZulipHasQueue(const std::string& queue_id) { return zulip_->Queue(queue_id).has_value(); }

  zb::testing::TempDir dir_;
  PosixFs fs_;
  Config config_;
  zb::testing::InProcessZulip zulip_;
};

TEST_F(DecommissionTest, DeletesTheZulipQueueThenTheCheckpoint) {
  std::string queue = RegisterQueue();
  ASSERT_FALSE(queue.empty());
  WriteCheckpoint(queue);
  StatusOr<DecommissionResult> result = Decommission(config_, "retired", fs_);
  ASSERT_THAT(result.status(), IsOk());
  EXPECT_EQ(result->queue_id, queue);
  EXPECT_TRUE(result->queue_deleted);
  EXPECT_FALSE(ZulipHasQueue(queue));
  EXPECT_FALSE(HasCheckpoint());
}

TEST_F(DecommissionTest, RefusesWhileADaemonHoldsTheStateDirectoryAndTouchesNothing) {
  std::string queue = RegisterQueue();
  WriteCheckpoint(queue);
  StatusOr<std::unique_ptr<StateDirLock>> daemon = StateDirLock::Acquire(dir_.path());
  ASSERT_THAT(daemon.status(), IsOk());
  StatusOr<DecommissionResult> result = Decommission(config_, "retired", fs_);
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.status().IsUnavailable());
  EXPECT_THAT(result.status().message(), HasSubstr("in use by another zulip-bridge"));
  EXPECT_THAT(result.status().message(), HasSubstr("daemon is stopped"));
  EXPECT_TRUE(ZulipHasQueue(queue));
  EXPECT_TRUE(HasCheckpoint());
}

TEST_F(DecommissionTest, AQueueZulipAlreadyDroppedStillRetiresTheCheckpoint) {
  std::string queue = RegisterQueue();
  WriteCheckpoint(queue);
  ASSERT_THAT(zulip_->DropQueue(queue), IsOk());
  StatusOr<DecommissionResult> result = Decommission(config_, "retired", fs_);
  ASSERT_THAT(result.status(), IsOk());
  EXPECT_FALSE(result->queue_deleted);
  EXPECT_FALSE(HasCheckpoint());
}

TEST_F(DecommissionTest, ARefusedKeyKeepsTheCheckpointAndSaysWhyWithoutTheKey) {
  std::string queue = RegisterQueue();
  WriteCheckpoint(queue);
  config_.accounts[0].api_key = Secret("wrongKey3456789abcdefghijklmnopq");
  StatusOr<DecommissionResult> result = Decommission(config_, "retired", fs_);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("checkpoint is kept"));
  EXPECT_THAT(result.status().message(), HasSubstr(queue));
  EXPECT_THAT(result.status().message(), Not(HasSubstr("wrongKey")));
  EXPECT_TRUE(ZulipHasQueue(queue));
  EXPECT_TRUE(HasCheckpoint());
}

TEST_F(DecommissionTest, AnAccountWithoutCheckpointHasNothingToDelete) {
  StatusOr<DecommissionResult> result = Decommission(config_, "retired", fs_);
  ASSERT_THAT(result.status(), IsOk());
  EXPECT_EQ(result->queue_id, "");
  EXPECT_FALSE(result->queue_deleted);
}

TEST_F(DecommissionTest, AnAccountNotInTheConfigurationIsNamed) {
  StatusOr<DecommissionResult> result = Decommission(config_, "unknown", fs_);
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.status().IsNotFound());
  EXPECT_THAT(result.status().message(), HasSubstr("\"unknown\" is not in the configuration"));
}

}  // namespace
}  // namespace zb
