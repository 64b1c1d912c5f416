// AccountFleet on its own (review 2 of #15): the fleet on the simulation's runtime, model Kafka
// and file system, with a scripted Zulip (FakeHttpTransport) that records every call.
#include "daemon/pipeline/account_fleet.h"

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "daemon/base/fs.h"
#include "daemon/base/metrics.h"
#include "daemon/state/checkpoint_store.h"
#include "daemon/state/dead_letter_spool.h"
#include "tests/fakes/fake_http_transport.h"
#include "tests/sim/model_kafka.h"
#include "tests/sim/sim_fs.h"
#include "tests/sim/sim_runtime.h"
#include "tests/test_support.h"

namespace zb::sim {
namespace {

using namespace std::chrono_literals;
using ::zb::testing::FakeHttpTransport;

constexpr char kStateDir[] = "/state";
constexpr char kSite[] = "https://chat.example.com";

AccountConfig Named(const std::string& name) {
  AccountConfig account;
  account.name = name;
  account.site = kSite;
  account.email = name + "-bot@chat.example.com";
  account.api_key = Secret("key-" + name);
  account.fetch_event_types = {"message"};
  return account;
}

class AccountFleetTest : public ::testing::Test {
 protected:
  AccountFleetTest() {
    (void)fs_.CreateDir(kStateDir, 0700);
    auto store = CheckpointStore::Open(kStateDir, fs_);
    EXPECT_TRUE(store.ok());
    store_ = std::move(*store);
    auto spool = DeadLetterSpool::Open(spool_dir_.path(), spool_fs_, metrics_, {});
    EXPECT_TRUE(spool.ok());
    spool_ = std::move(*spool);
    kafka_.set_sink([this](const DeliveryReport& report) {
      if (fleet_) fleet_->OnDeliveries({report});
    });
    config_.state_dir = kStateDir;
    config_.kafka.flush_timeout_secs = 10;
  }

  // A checkpoint from an earlier run: the account's queue lives on at Zulip.
  void Resumable(const std::string& account, const std::string& queue_id) {
    Checkpoint checkpoint;
    checkpoint.site = kSite;
    checkpoint.queue_id = queue_id;
    checkpoint.watermark = 5;
    checkpoint.registered_at_unix_ms = 1;
    store_->Stage(account, checkpoint);
    ASSERT_TRUE(store_->Commit().ok());
  }

  void StartFleet() {
    process_ = std::make_unique<SimProcess>(runtime_);
    FleetEnv env{*process_, zulip_,
                 kafka_,    *store_,
                 *spool_,   metrics_,
                 runtime_,  [this](const Status& s) { stopped_ = s; },
                 nullptr,   [] { return uint64_t{7}; }};
    fleet_ = std::make_unique<AccountFleet>(config_, std::move(env));
    fleet_->Start();
  }

  void RunFor(Clock::Duration d) {
    const auto until = runtime_.Now() + d;
    zulip_.Pump();
    while (runtime_.Step(until)) zulip_.Pump();
    runtime_.AdvanceTo(until);
  }

  // DELETE /events calls Zulip saw for `queue_id`.
  int Deletes(const std::string& queue_id) const {
    int n = 0;
    for (const auto* call : zulip_.calls()) {
      if (call->request.method == HttpMethod::kDelete && call->Param("queue_id") == queue_id) ++n;
    }
    return n;
  }

  std::mt19937_64 rng_{1};
  SimRuntime runtime_{Clock::WallTimePoint(std::chrono::seconds(1798761600))};
  SimFs fs_{rng_};
  ModelKafka kafka_{runtime_, rng_, ModelKafkaOptions()};
  FakeHttpTransport zulip_;
  MetricsRegistry metrics_;
  ::zb::testing::TempDir spool_dir_;
  PosixFs spool_fs_;
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<DeadLetterSpool> spool_;
  Config config_;
  std::unique_ptr<SimProcess> process_;
  std::unique_ptr<AccountFleet> fleet_;
  std::optional<Status> stopped_;
};

// Accounts start 10 ms apart (thousands of them: minutes). One removed by a reload before its
// delayed start ran has no queue id in memory, so DeleteQueueAtZulip answers "gone" at once
// without asking Zulip, and FinishRemoval then deletes the checkpoint, the only record of the
// queue: the queue lives on at Zulip for its lifespan (7 days; the bot counts as online, which
// holds back its users' notifications, FACTS §3), `decommission` can no longer find it, and the
// log says queue_deleted=true. DESIGN: queues are deleted when an account is removed by reload.
TEST_F(AccountFleetTest, ReviewRemovalBeforeTheDelayedStartDeletesTheQueueOrKeepsTheCheckpoint) {
  config_.accounts = {Named("a0"), Named("a1"), Named("a2")};
  Resumable("a2", "q-a2");
  StartFleet();
  // SIGHUP within the start spread (here at once; a2 starts 20 ms after the fleet).
  Config next = config_;
  next.accounts = {Named("a0"), Named("a1")};
  FleetReload reload = fleet_->Apply(next);
  ASSERT_TRUE(reload.applied) << reload.summary;
  RunFor(5s);
  // Answer any DELETE the fleet made, as Zulip does.
  for (const auto* call : zulip_.calls()) {
    if (call->request.method == HttpMethod::kDelete) {
      zulip_.Reply(call->handle,
                   ::zb::testing::FakeResponse::Json(200, R"({"result":"success","msg":""})"));
    }
  }
  RunFor(5s);
  const bool checkpoint_kept = store_->Load("a2").ok();
  EXPECT_TRUE(checkpoint_kept || Deletes("q-a2") == 1)
      << "a2's checkpoint was removed, and its queue q-a2 was never deleted at Zulip";
  fleet_.reset();
  process_.reset();
}

}  // namespace
}  // namespace zb::sim
