// ProducerRebuilder with a real KafkaPublisher against librdkafka's mock cluster, on a real
// event loop: what the supervisor does after a fatal producer error.
#include "daemon/kafka/producer_rebuilder.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/base/clock.h"
#include "daemon/base/event_loop.h"
#include "daemon/base/metrics.h"
#include "daemon/kafka/kafka_publisher.h"
#include "tests/fakes/mock_kafka_cluster.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::zb::testing::IsOk;
using ::zb::testing::WaitFor;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;

class ProducerRebuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create(RealClock::Instance());
    ASSERT_THAT(loop, IsOk());
    loop_ = std::move(*loop);
    KafkaPublisherOptions options;
    options.brokers = cluster_.bootstraps();
    options.properties = {{"log_level", "2"}};
    options.poll_interval = 20ms;
    options.on_delivery = [this](std::vector<DeliveryReport> reports) {
      std::lock_guard lock(mu_);
      for (const DeliveryReport& r : reports) {
        if (r.outcome == DeliveryReport::Outcome::kDelivered) delivered_.insert(r.token);
      }
    };
    // As the supervisor does: a fatal error asks the rebuilder, on the loop.
    options.on_error = [this](const KafkaErrorReport& error) {
      if (!error.fatal) return;
      ++fatal_errors_;
      loop_->Post([this] {
        if (rebuilder_) rebuilder_->Request();
      });
    };
    StatusOr<std::unique_ptr<KafkaPublisher>> publisher = KafkaPublisher::Create(options);
    ASSERT_THAT(publisher, IsOk());
    publisher_ = std::move(*publisher);
    BackoffPolicy backoff;
    backoff.base = 20ms;
    backoff.cap = 200ms;
    rebuilder_ = std::make_unique<ProducerRebuilder>(*loop_, RealClock::Instance(), *publisher_,
                                                     metrics_, backoff, /*seed=*/7);
    thread_ = std::thread([this] { EXPECT_THAT(loop_->Run(), IsOk()); });
  }

  void TearDown() override {
    if (thread_.joinable()) {
      loop_->Post([this] {
        rebuilder_.reset();
        loop_->Stop();
      });
      thread_.join();
    }
    publisher_.reset();
  }

  bool Delivered(uint64_t token) {
    std::lock_guard lock(mu_);
    return delivered_.count(token) > 0;
  }

  // Reads a value the loop thread owns, on the loop thread.
  template <typename T>
  T OnLoop(std::function<T()> f) {
    T result{};
    ::zb::testing::RunOnLoop(
        *loop_, [&] { result = f(); }, kWait);
    return result;
  }

  static KafkaRecord Record(uint64_t token) {
    KafkaRecord record;
    record.topic = "zb.rebuild";
    record.value = "{\"id\":1}";
    record.token = token;
    return record;
  }

  ::zb::testing::MockKafkaCluster cluster_;
  MetricsRegistry metrics_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<KafkaPublisher> publisher_;
  std::unique_ptr<ProducerRebuilder> rebuilder_;
  std::thread thread_;
  std::atomic<int> fatal_errors_{0};
  std::mutex mu_;
  std::set<uint64_t> delivered_;
};

// Issue #15 (9): a rebuild that fails used to be the last one; every account held for good.
TEST_F(ProducerRebuilderTest, RetriesAFailedRebuildUntilItWorksAndRecordsFlowAgain) {
  ASSERT_THAT(publisher_->Produce(Record(1)), IsOk());
  ASSERT_TRUE(WaitFor([&] { return Delivered(1); }, kWait));

  cluster_.SetBrokerDown();
  ASSERT_THAT(publisher_->Produce(Record(2)), IsOk());  // unacknowledged when the producer dies
  publisher_->FailNextRebuildsForTest(2);
  ASSERT_THAT(publisher_->TriggerFatalErrorForTest("forced by ProducerRebuilderTest"), IsOk());
  ASSERT_TRUE(WaitFor([&] { return publisher_->Generation() >= 1; }, kWait))
      << "the producer was not rebuilt after its first rebuilds failed";
  EXPECT_EQ(fatal_errors_.load(), 1);

  cluster_.SetBrokerUp();
  ASSERT_TRUE(WaitFor([&] { return Delivered(2); }, kWait)) << "the held record did not flow";
  ASSERT_THAT(publisher_->Produce(Record(3)), IsOk());
  ASSERT_TRUE(WaitFor([&] { return Delivered(3); }, kWait));

  EXPECT_EQ(OnLoop<int>([&] { return rebuilder_->failures(); }), 0);
  EXPECT_EQ(OnLoop<bool>([&] { return rebuilder_->retry_pending(); }), false);
  std::string text = metrics_.RenderPrometheus();
  EXPECT_THAT(text, HasSubstr("zb_kafka_producer_rebuilds_total{result=\"failed\"} 2"));
  EXPECT_THAT(text, HasSubstr("zb_kafka_producer_rebuilds_total{result=\"ok\"} 1"));
}

TEST_F(ProducerRebuilderTest, ARequestWhileARetryIsPendingWaitsForTheBackoff) {
  publisher_->FailNextRebuildsForTest(1000);
  loop_->Post([&] { rebuilder_->Request(); });
  ASSERT_TRUE(
      WaitFor([&] { return OnLoop<int>([&] { return rebuilder_->failures(); }) >= 3; }, kWait));
  // A request while a retry is scheduled does not rebuild at once: the backoff stands.
  EXPECT_TRUE(OnLoop<bool>([&] {
    int failures = rebuilder_->failures();
    bool pending = rebuilder_->retry_pending();
    for (int i = 0; i < 10; ++i) rebuilder_->Request();
    return pending && rebuilder_->failures() == failures;
  }));
  publisher_->FailNextRebuildsForTest(0);
  ASSERT_TRUE(WaitFor([&] { return publisher_->Generation() >= 1; }, kWait));
}

}  // namespace
}  // namespace zb
