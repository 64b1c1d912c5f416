// KafkaPublisher against librdkafka's mock cluster (in-process brokers on loopback): the
// fault-injection cases a real broker cannot stage on demand. The real broker is exercised in
// tests/integration/kafka_publisher_test.cc.
#include "daemon/kafka/kafka_publisher.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/fakes/mock_kafka_cluster.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::HasSubstr;
using ::zb::testing::IsOk;
using ::zb::testing::WaitFor;
using Outcome = DeliveryReport::Outcome;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;

using MockCluster = ::zb::testing::MockKafkaCluster;

// What the owner's callbacks saw, safe to read from the test thread.
class Reports {
 public:
  void Add(std::vector<DeliveryReport> batch) {
    std::lock_guard lock(mu_);
    for (auto& report : batch) {
      ++count_;
      by_token_[report.token] = std::move(report);
    }
  }
  void AddError(const KafkaErrorReport& error) {
    std::lock_guard lock(mu_);
    errors_.push_back(error);
  }
  std::optional<DeliveryReport> Get(uint64_t token) {
    std::lock_guard lock(mu_);
    auto it = by_token_.find(token);
    if (it == by_token_.end()) return std::nullopt;
    return it->second;
  }
  void Forget(uint64_t token) {
    std::lock_guard lock(mu_);
    by_token_.erase(token);
  }
  bool Has(uint64_t token, Outcome outcome) {
    auto report = Get(token);
    return report && report->outcome == outcome;
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return count_;
  }
  bool SawFatal() {
    std::lock_guard lock(mu_);
    for (const auto& e : errors_) {
      if (e.fatal) return true;
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::map<uint64_t, DeliveryReport> by_token_;
  size_t count_ = 0;
  std::vector<KafkaErrorReport> errors_;
};

class KafkaPublisherTest : public ::testing::Test {
 protected:
  KafkaPublisherOptions Options(std::map<std::string, std::string> extra = {}) {
    KafkaPublisherOptions options;
    options.brokers = cluster_.bootstraps();
    options.properties = {{"log_level", "2"}};  // the faults below are meant; keep logs quiet
    for (auto& [k, v] : extra) options.properties[k] = v;
    options.on_delivery = [this](std::vector<DeliveryReport> batch) {
      reports_.Add(std::move(batch));
    };
    options.on_error = [this](const KafkaErrorReport& error) { reports_.AddError(error); };
    options.poll_interval = 20ms;
    return options;
  }

  std::unique_ptr<KafkaPublisher> Make(std::map<std::string, std::string> extra = {}) {
    auto publisher = KafkaPublisher::Create(Options(std::move(extra)));
    EXPECT_THAT(publisher, IsOk());
    return publisher.ok() ? std::move(*publisher) : nullptr;
  }

  static KafkaRecord Record(uint64_t token, std::string_view value = "{\"id\":1}") {
    KafkaRecord record;
    record.topic = "zb.test";
    record.key = "alice";
    record.value = value;
    record.timestamp_ms = 1700000000000;
    record.token = token;
    return record;
  }

  MockCluster cluster_;
  Reports reports_;
};

TEST_F(KafkaPublisherTest, DeliversRecordsAndReportsEveryToken) {
  auto publisher = Make();
  ASSERT_TRUE(publisher);
  std::vector<KafkaHeader> headers = {{"zulip-account", "alice"}};
  for (uint64_t token = 1; token <= 50; ++token) {
    KafkaRecord record = Record(token);
    record.headers = headers;
    ASSERT_THAT(publisher->Produce(record), IsOk());
  }
  ASSERT_TRUE(WaitFor([&] { return reports_.count() == 50; }, kWait));
  for (uint64_t token = 1; token <= 50; ++token) {
    auto report = reports_.Get(token);
    ASSERT_TRUE(report) << token;
    EXPECT_EQ(report->outcome, Outcome::kDelivered) << report->error;
    EXPECT_GE(report->offset, 0);
    EXPECT_GE(report->partition, 0);
  }
  EXPECT_TRUE(WaitFor([&] { return publisher->InFlight() == 0; }, kWait));
  EXPECT_EQ(publisher->HeldFailed(), 0u);
}

TEST_F(KafkaPublisherTest, ReportsArriveOnOneThreadThatIsNotTheCallers) {
  std::mutex mu;
  std::set<std::thread::id> threads;
  KafkaPublisherOptions options = Options();
  options.on_delivery = [&](std::vector<DeliveryReport> batch) {
    {
      std::lock_guard lock(mu);
      threads.insert(std::this_thread::get_id());
    }
    reports_.Add(std::move(batch));
  };
  auto publisher = KafkaPublisher::Create(std::move(options));
  ASSERT_THAT(publisher, IsOk());
  for (uint64_t token = 1; token <= 10; ++token) {
    ASSERT_THAT((*publisher)->Produce(Record(token)), IsOk());
  }
  ASSERT_THAT((*publisher)->Flush(kWait), IsOk());
  std::lock_guard lock(mu);
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_FALSE(threads.contains(std::this_thread::get_id()));
}

TEST_F(KafkaPublisherTest, HandsStatisticsJsonToTheOwner) {
  std::mutex mu;
  std::string json;
  KafkaPublisherOptions options = Options({{"statistics.interval.ms", "100"}});
  options.on_statistics = [&](std::string_view stats) {
    std::lock_guard lock(mu);
    json.assign(stats);
  };
  auto publisher = KafkaPublisher::Create(std::move(options));
  ASSERT_THAT(publisher, IsOk());
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return !json.empty();
      },
      kWait));
  std::lock_guard lock(mu);
  EXPECT_THAT(json, HasSubstr("\"type\": \"producer\""));
}

TEST_F(KafkaPublisherTest, PassesPropertiesThroughAsIs) {
  // test.mock.num.brokers makes librdkafka build its own mock cluster: it can only work if the
  // property reaches librdkafka untouched.
  KafkaPublisherOptions options = Options({{"test.mock.num.brokers", "1"}});
  options.brokers.clear();
  auto publisher = KafkaPublisher::Create(std::move(options));
  ASSERT_THAT(publisher, IsOk());
  ASSERT_THAT((*publisher)->Produce(Record(1)), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports_.Has(1, Outcome::kDelivered); }, kWait));
}

TEST_F(KafkaPublisherTest, FlushWaitsUntilEveryReportIsHandedOver) {
  auto publisher = Make({{"linger.ms", "200"}});
  ASSERT_TRUE(publisher);
  for (uint64_t token = 1; token <= 20; ++token) {
    ASSERT_THAT(publisher->Produce(Record(token)), IsOk());
  }
  ASSERT_THAT(publisher->Flush(kWait), IsOk());
  EXPECT_EQ(reports_.count(), 20u);
  EXPECT_EQ(publisher->InFlight(), 0u);
}

TEST_F(KafkaPublisherTest, ReportsTimeoutAsRetryableAndReproducesTheHeldRecord) {
  auto publisher = Make({{"message.timeout.ms", "500"}});
  ASSERT_TRUE(publisher);
  cluster_.SetBrokerDown();
  ASSERT_THAT(publisher->Produce(Record(7, "the exact bytes")), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports_.Get(7).has_value(); }, kWait));
  DeliveryReport report = *reports_.Get(7);
  EXPECT_EQ(report.outcome, Outcome::kRetryable);
  EXPECT_THAT(report.error, HasSubstr("_MSG_TIMED_OUT"));
  EXPECT_EQ(publisher->HeldFailed(), 1u);
  EXPECT_TRUE(WaitFor([&] { return publisher->InFlight() == 0; }, kWait));

  EXPECT_THAT(report.error, ::testing::Not(HasSubstr("the exact bytes")));  // no payload in logs

  cluster_.SetBrokerUp();
  reports_.Forget(7);
  ASSERT_THAT(publisher->Reproduce(7), IsOk());
  EXPECT_EQ(publisher->HeldFailed(), 0u);
  // As the owner does: until the producer has reconnected, a short message.timeout.ms can
  // expire again; each retryable report is answered with another Reproduce.
  ASSERT_TRUE(WaitFor(
      [&] {
        if (reports_.Has(7, Outcome::kRetryable)) {
          reports_.Forget(7);
          EXPECT_THAT(publisher->Reproduce(7), IsOk());
        }
        return reports_.Has(7, Outcome::kDelivered);
      },
      kWait));
}

TEST_F(KafkaPublisherTest, ClassifiesTooLargeAsPermanentAndReleasesTheBytes) {
  auto publisher = Make();
  ASSERT_TRUE(publisher);
  // Warm up: the producer id and the partition leader are known before the fault is set.
  ASSERT_THAT(publisher->Produce(Record(1)), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports_.Has(1, Outcome::kDelivered); }, kWait));

  cluster_.FailNextProduce(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  ASSERT_THAT(publisher->Produce(Record(2, "too big for the broker")), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports_.Get(2).has_value(); }, kWait));
  DeliveryReport report = *reports_.Get(2);
  EXPECT_EQ(report.outcome, Outcome::kPermanent);
  EXPECT_THAT(report.error, HasSubstr("MSG_SIZE_TOO_LARGE"));

  StatusOr<OwnedKafkaRecord> released = publisher->Release(2);
  ASSERT_THAT(released, IsOk());
  EXPECT_EQ(released->value, "too big for the broker");
  EXPECT_EQ(released->key, "alice");
  EXPECT_EQ(released->topic, "zb.test");
  EXPECT_EQ(publisher->HeldFailed(), 0u);
  EXPECT_TRUE(publisher->Release(2).status().IsNotFound());
}

TEST_F(KafkaPublisherTest, RefusesRecordAboveMessageMaxBytesAtOnce) {
  auto publisher = Make({{"message.max.bytes", "1000"}});
  ASSERT_TRUE(publisher);
  std::string big(5000, 'x');
  Status status = publisher->Produce(Record(1, big));
  EXPECT_TRUE(status.IsInvalidArgument()) << status;
  EXPECT_THAT(status.message(), HasSubstr("MSG_SIZE_TOO_LARGE"));
  EXPECT_EQ(publisher->InFlight(), 0u);
}

TEST_F(KafkaPublisherTest, QueueFullReturnsUnavailableUntilDeliveriesDrainIt) {
  auto publisher = Make({{"queue.buffering.max.messages", "5"}});
  ASSERT_TRUE(publisher);
  cluster_.SetBrokerDown();
  for (uint64_t token = 1; token <= 5; ++token) {
    ASSERT_THAT(publisher->Produce(Record(token)), IsOk());
  }
  Status full = publisher->Produce(Record(6));
  EXPECT_TRUE(full.IsUnavailable()) << full;
  EXPECT_EQ(full.message(), "queue full");
  EXPECT_EQ(publisher->InFlight(), 5u);

  cluster_.SetBrokerUp();
  ASSERT_TRUE(WaitFor([&] { return reports_.count() == 5; }, kWait));
  EXPECT_THAT(publisher->Produce(Record(6)), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports_.Has(6, Outcome::kDelivered); }, kWait));
}

// Issue #15 (7): a record that timed out leaves librdkafka's queue but stays held here. If it
// did not count, an outage would let every message.timeout.ms add another queue's worth.
TEST_F(KafkaPublisherTest, HeldFailedRecordsCountAgainstTheMessageLimit) {
  auto publisher = Make({{"queue.buffering.max.messages", "5"}, {"message.timeout.ms", "300"}});
  ASSERT_TRUE(publisher);
  cluster_.SetBrokerDown();
  for (uint64_t token = 1; token <= 5; ++token) {
    ASSERT_THAT(publisher->Produce(Record(token)), IsOk());
  }
  // Every record times out: librdkafka's queue is empty again, the publisher holds five.
  ASSERT_TRUE(
      WaitFor([&] { return publisher->HeldFailed() == 5 && publisher->InFlight() == 0; }, kWait));
  Status full = publisher->Produce(Record(6));
  EXPECT_TRUE(full.IsUnavailable()) << full;
  EXPECT_EQ(full.message(), "queue full");
  EXPECT_EQ(publisher->InFlight() + publisher->HeldFailed(), 5u);

  // A held record goes back without adding to what the publisher owns.
  reports_.Forget(1);
  ASSERT_THAT(publisher->Reproduce(1), IsOk());
  EXPECT_TRUE(publisher->Produce(Record(6)).IsUnavailable());

  // Room comes back once the held records are delivered.
  cluster_.SetBrokerUp();
  ASSERT_TRUE(WaitFor(
      [&] {
        for (uint64_t token = 1; token <= 5; ++token) {
          if (reports_.Has(token, Outcome::kRetryable)) {
            reports_.Forget(token);
            EXPECT_THAT(publisher->Reproduce(token), IsOk());
          }
        }
        return publisher->InFlight() + publisher->HeldFailed() == 0;
      },
      kWait));
  EXPECT_THAT(publisher->Produce(Record(6)), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports_.Has(6, Outcome::kDelivered); }, kWait));
}

TEST_F(KafkaPublisherTest, HeldFailedRecordsCountAgainstTheByteLimit) {
  // 1 KiB: two records of 400 bytes fit, a third does not.
  auto publisher = Make({{"queue.buffering.max.kbytes", "1"}, {"message.timeout.ms", "300"}});
  ASSERT_TRUE(publisher);
  cluster_.SetBrokerDown();
  const std::string value(400, 'v');
  ASSERT_THAT(publisher->Produce(Record(1, value)), IsOk());
  ASSERT_THAT(publisher->Produce(Record(2, value)), IsOk());
  ASSERT_TRUE(
      WaitFor([&] { return publisher->HeldFailed() == 2 && publisher->InFlight() == 0; }, kWait));
  Status full = publisher->Produce(Record(3, value));
  EXPECT_TRUE(full.IsUnavailable()) << full;
  EXPECT_EQ(full.message(), "queue full");
  // Releasing one makes room for one.
  ASSERT_THAT(publisher->Release(1), IsOk());
  EXPECT_THAT(publisher->Produce(Record(3, value)), IsOk());
}

TEST_F(KafkaPublisherTest, RefusesADuplicateTokenWhileTheFirstIsHeld) {
  auto publisher = Make();
  ASSERT_TRUE(publisher);
  cluster_.SetBrokerDown();
  ASSERT_THAT(publisher->Produce(Record(1)), IsOk());
  EXPECT_TRUE(publisher->Produce(Record(1)).IsInvalidArgument());
  EXPECT_EQ(publisher->InFlight(), 1u);
}

TEST_F(KafkaPublisherTest, RefusesOverridesThatBreakTheGuarantee) {
  for (auto [key, value] : std::map<std::string, std::string>{
           {"acks", "1"}, {"request.required.acks", "0"}, {"enable.idempotence", "false"}}) {
    auto publisher = KafkaPublisher::Create(Options({{key, value}}));
    ASSERT_FALSE(publisher.ok()) << key;
    EXPECT_TRUE(publisher.status().IsInvalidArgument());
    EXPECT_THAT(publisher.status().message(), HasSubstr(key));
  }
}

TEST_F(KafkaPublisherTest, NamesAnUnknownProperty) {
  auto publisher = KafkaPublisher::Create(Options({{"no.such.property", "1"}}));
  ASSERT_FALSE(publisher.ok());
  EXPECT_TRUE(publisher.status().IsInvalidArgument());
  EXPECT_THAT(publisher.status().message(), HasSubstr("no.such.property"));
}

TEST(KafkaPublisherPropertiesTest, EffectivePropertiesFillDefaultsKeepOverridesAndForceSafety) {
  KafkaPublisherOptions options;
  options.brokers = "127.0.0.1:9092";
  options.properties = {{"linger.ms", "50"}, {"request.required.acks", "all"}, {"x.y", "z"}};
  auto effective = KafkaPublisher::EffectiveProperties(options);
  EXPECT_EQ(effective["linger.ms"], "50");
  EXPECT_EQ(effective["message.timeout.ms"], "300000");
  EXPECT_EQ(effective["queue.buffering.max.kbytes"], "65536");
  EXPECT_EQ(effective["bootstrap.servers"], "127.0.0.1:9092");
  EXPECT_EQ(effective["enable.idempotence"], "true");
  EXPECT_EQ(effective["acks"], "all");
  EXPECT_FALSE(effective.contains("request.required.acks"));
  EXPECT_EQ(effective["x.y"], "z");
}

TEST(KafkaPublisherPropertiesTest, CheckPropertiesAcceptsSafeAndRefusesUnsafeOrUnknown) {
  EXPECT_THAT(KafkaPublisher::CheckProperties({{"acks", "all"}, {"linger.ms", "20"}}), IsOk());
  EXPECT_TRUE(KafkaPublisher::CheckProperties({{"acks", "1"}}).IsInvalidArgument());
  EXPECT_TRUE(KafkaPublisher::CheckProperties({{"linger.ms", "soon"}}).IsInvalidArgument());
  EXPECT_TRUE(KafkaPublisher::CheckProperties({{"no.such.thing", "1"}}).IsInvalidArgument());
}

TEST_F(KafkaPublisherTest, RebuildAfterFatalErrorProducesEveryUnacknowledgedRecordAgain) {
  auto publisher = Make();
  ASSERT_TRUE(publisher);
  ASSERT_THAT(publisher->Produce(Record(1)), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports_.Has(1, Outcome::kDelivered); }, kWait));

  cluster_.SetBrokerDown();
  for (uint64_t token = 2; token <= 4; ++token) {
    ASSERT_THAT(publisher->Produce(Record(token)), IsOk());
  }
  ASSERT_THAT(publisher->TriggerFatalErrorForTest("broker outage"), IsOk());
  ASSERT_TRUE(WaitFor([&] { return reports_.SawFatal(); }, kWait));
  Status after_fatal = publisher->Produce(Record(5));
  EXPECT_TRUE(after_fatal.IsFatal()) << after_fatal;

  ASSERT_THAT(publisher->Rebuild(), IsOk());
  EXPECT_EQ(publisher->Generation(), 1u);
  EXPECT_EQ(publisher->InFlight(), 3u);
  cluster_.SetBrokerUp();
  ASSERT_TRUE(WaitFor(
      [&] {
        return reports_.Has(2, Outcome::kDelivered) && reports_.Has(3, Outcome::kDelivered) &&
               reports_.Has(4, Outcome::kDelivered);
      },
      kWait));
  EXPECT_THAT(publisher->Produce(Record(5)), IsOk());
  ASSERT_THAT(publisher->Flush(kWait), IsOk());
}

}  // namespace
}  // namespace zb
