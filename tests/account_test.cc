// Account, the per-account state machine, driven the way the daemon drives it: on a real
// EventLoop (its own thread, timers on a FakeClock), against a scripted FakeHttpTransport, a
// real CheckpointStore on a FaultyFs in a temp dir, and a real KafkaPublisher on librdkafka's
// mock cluster. The test stands where the supervisor stands: it commits the store when an
// account asks (once per loop turn) and hands delivery reports to the account, but only when
// the test says so, so that it can hold Kafka's acknowledgements back and check that nothing
// is acknowledged to Zulip before them.
#include "daemon/pipeline/account.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/base/event_loop.h"
#include "daemon/base/fs.h"
#include "daemon/base/log.h"
#include "daemon/kafka/kafka_publisher.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_http_transport.h"
#include "tests/fakes/faulty_fs.h"
#include "tests/fakes/mock_kafka_cluster.h"
#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::zb::testing::FakeClock;
using ::zb::testing::FakeHttpTransport;
using ::zb::testing::FakeResponse;
using ::zb::testing::FaultyFs;
using ::zb::testing::IsOk;
using ::zb::testing::TempDir;
using ::zb::testing::WaitFor;
using namespace std::chrono_literals;

constexpr auto kWait = 30s;
constexpr char kAccount[] = "alice";
constexpr char kSite[] = "https://chat.example.com";

using MockCluster = ::zb::testing::MockKafkaCluster;

// What one HTTP call was, and what the checkpoint store held durably at the moment it was
// started: the invariant is about that moment.
struct CallRecord {
  HttpTransport::Handle handle = 0;
  std::string endpoint;  // "register", "events"
  HttpMethod method = HttpMethod::kGet;
  std::map<std::string, std::string> params;
  std::optional<Checkpoint> durable;  // the store's committed checkpoint for the account
  int64_t at_ns = 0;                  // fake clock time of the start

  std::string Param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? "<absent>" : it->second;
  }
  int64_t last_event_id() const { return std::stoll(Param("last_event_id")); }
};

// Forwards to the scripted fake and records every call with the durable checkpoint of the
// moment. Loop thread only, like every HttpTransport.
class RecordingTransport final : public HttpTransport {
 public:
  RecordingTransport(FakeHttpTransport& fake, const CheckpointStore& store, const Clock& clock)
      : fake_(fake), store_(store), clock_(clock) {}

  Handle Start(HttpRequest request, HttpCallbacks callbacks) override {
    CallRecord record;
    std::string url = request.url;
    record.endpoint = url.substr(url.rfind('/') + 1);
    record.method = request.method;
    for (const auto& [k, v] : request.query) record.params[k] = v;
    for (const auto& [k, v] : request.form) record.params[k] = v;
    StatusOr<Checkpoint> durable = store_.Load(kAccount);
    if (durable.ok()) record.durable = *durable;
    record.at_ns = clock_.Now().time_since_epoch().count();
    record.handle = fake_.Start(std::move(request), std::move(callbacks));
    records_.push_back(record);
    return record.handle;
  }
  void Pause(Handle handle) override { fake_.Pause(handle); }
  void Resume(Handle handle) override { fake_.Resume(handle); }
  void Cancel(Handle handle) override { fake_.Cancel(handle); }

  const std::vector<CallRecord>& records() const { return records_; }

 private:
  FakeHttpTransport& fake_;
  const CheckpointStore& store_;
  const Clock& clock_;
  std::vector<CallRecord> records_;
};

std::string RegisterOk(const std::string& queue_id) {
  return R"({"result":"success","msg":"","queue_id":")" + queue_id +
         R"(","last_event_id":-1,"zulip_version":"10.2","zulip_feature_level":400,)"
         R"("event_queue_longpoll_timeout_seconds":90})";
}

// A register answer with the newest message id of the moment the queue was made.
std::string RegisterOkWithMaxMessageId(const std::string& queue_id, int64_t max_message_id) {
  std::string body = RegisterOk(queue_id);
  body.pop_back();
  return body + R"(,"max_message_id":)" + std::to_string(max_message_id) + "}";
}

// A GET /messages page: nothing (left) to backfill.
std::string NoMessages() {
  return R"({"result":"success","msg":"","messages":[],"anchor":0,"found_anchor":false,)"
         R"("found_oldest":true,"found_newest":true,"history_limited":false})";
}

// A message event on a queue: event id `id`, message id `message_id`.
std::string MessageEvent(int64_t id, int64_t message_id) {
  return R"({"type":"message","flags":[],"message":{"id":)" + std::to_string(message_id) +
         R"(,"type":"stream","stream_id":1,"subject":"t","content":"live"},"id":)" +
         std::to_string(id) + "}";
}

// A GET /messages page with these message ids.
std::string MessagesPage(const std::vector<int64_t>& ids, bool found_newest) {
  std::string body = R"({"result":"success","msg":"","messages":[)";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) body += ',';
    body += R"({"id":)" + std::to_string(ids[i]) +
            R"(,"type":"stream","stream_id":1,"subject":"t","content":"old","flags":["read"]})";
  }
  return body + R"(],"found_anchor":false,"found_oldest":false,"found_newest":)" +
         (found_newest ? "true" : "false") + R"(,"history_limited":false})";
}

// A message in a GET /messages answer: its id and when it was sent.
struct OldMessage {
  int64_t id;
  int64_t timestamp;  // Unix seconds
};

// FakeClock's wall time at the start (2025-01-01T00:00:00Z), and times around it.
constexpr int64_t kWallStart = 1735689600;
constexpr int64_t kLongAgo = kWallStart - 3600;  // before any backfill's read-back margin
constexpr int64_t kJustNow = kWallStart;

// Answers a GET /messages the way Zulip does over `history` (sorted by id): the messages after
// (num_after) or before (num_before) the anchor, with found_oldest and found_newest.
std::string MessagesFrom(const std::vector<OldMessage>& history,
                         const std::map<std::string, std::string>& params) {
  auto param = [&](const char* name) {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  };
  const std::string anchor_text = param("anchor");
  const int64_t anchor = anchor_text == "oldest"   ? 0
                         : anchor_text == "newest" ? INT64_MAX
                                                   : std::stoll(anchor_text);
  const bool include = param("include_anchor") != "false";
  const int before = std::stoi(param("num_before")), after = std::stoi(param("num_after"));
  std::vector<OldMessage> out;
  size_t first_after = 0;
  while (first_after < history.size() && history[first_after].id < anchor) ++first_after;
  bool found_oldest = true, found_newest = true;
  // Before the anchor (newest first, then put back in order).
  size_t i = first_after;
  for (int n = 0; n < before && i > 0; ++n) out.insert(out.begin(), history[--i]);
  found_oldest = i == 0;
  size_t j = first_after;
  if (j < history.size() && history[j].id == anchor) {
    if (include) out.push_back(history[j]);
    ++j;
  }
  for (int n = 0; n < after && j < history.size(); ++n) out.push_back(history[j++]);
  found_newest = j == history.size();
  std::string body = R"({"result":"success","msg":"","messages":[)";
  for (size_t k = 0; k < out.size(); ++k) {
    if (k > 0) body += ',';
    body += R"({"id":)" + std::to_string(out[k].id) + R"(,"timestamp":)" +
            std::to_string(out[k].timestamp) +
            R"(,"type":"stream","stream_id":1,"subject":"t","content":"old","flags":["read"]})";
  }
  return body + R"(],"found_anchor":false,"found_oldest":)" + (found_oldest ? "true" : "false") +
         R"(,"found_newest":)" + (found_newest ? "true" : "false") + R"(,"history_limited":false})";
}

// A typing event with this id: small, routed to zulip.typing.
std::string Typing(int64_t id) {
  return R"({"type":"typing","op":"start","id":)" + std::to_string(id) + "}";
}
std::string Heartbeat(int64_t id) {
  return R"({"type":"heartbeat","id":)" + std::to_string(id) + "}";
}

std::string EventsBody(const std::vector<std::string>& events, const std::string& queue_id) {
  std::string body = R"({"result":"success","msg":"","events":[)";
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0) body += ',';
    body += events[i];
  }
  return body + R"(],"queue_id":")" + queue_id + "\"}";
}

FakeResponse Events(const std::vector<std::string>& events, const std::string& queue_id = "q1") {
  return FakeResponse::Json(200, EventsBody(events, queue_id));
}

// What a lost queue looks like to its next GET.
FakeResponse QueueLost(const std::string& queue_id = "q1") {
  return FakeResponse::Json(400, R"({"result":"error","msg":"Bad event queue ID: )" + queue_id +
                                     R"(","code":"BAD_EVENT_QUEUE_ID","queue_id":")" + queue_id +
                                     "\"}");
}

class AccountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = CheckpointStore::Open(dir_.Sub("state"), fs_);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
    MakeSpool();
    transport_ = std::make_unique<RecordingTransport>(fake_, *store_, clock_);
    auto loop = EventLoop::Create(clock_);
    ASSERT_THAT(loop, IsOk());
    loop_ = std::move(*loop);
    loop_thread_ = std::thread([this] { EXPECT_THAT(loop_->Run(), IsOk()); });

    config_.name = kAccount;
    config_.site = kSite;
    config_.email = "alice-bot@chat.example.com";
    config_.api_key = Secret("s3cret-key");
    router_.site = kSite;
    router_.bridge_version = "test";
    backoff_.base = 1s;
    backoff_.cap = 1s;
  }

  void TearDown() override {
    if (loop_) {
      OnLoop([this] { account_.reset(); });
      loop_->Stop();
      loop_thread_.join();
    }
    publisher_.reset();
  }

  void MakePublisher(std::map<std::string, std::string> extra = {}) {
    KafkaPublisherOptions options;
    options.brokers = brokers_.empty() ? cluster_.bootstraps() : brokers_;
    options.properties = {{"log_level", "2"},
                          {"linger.ms", "0"},
                          // A broker the test brings back up is found again at once.
                          {"reconnect.backoff.ms", "10"},
                          {"reconnect.backoff.max.ms", "100"}};
    for (auto& [k, v] : extra) options.properties[k] = v;
    options.on_delivery = [this](std::vector<DeliveryReport> batch) {
      std::lock_guard lock(reports_mu_);
      for (auto& report : batch) held_.push_back(std::move(report));
    };
    options.poll_interval = 20ms;
    auto publisher = KafkaPublisher::Create(std::move(options));
    ASSERT_THAT(publisher, IsOk());
    publisher_ = std::move(*publisher);
  }

  // The dead-letter spool in the state directory, on the same FaultyFs as the checkpoints.
  void MakeSpool(int64_t max_bytes = int64_t{1} << 30) {
    auto spool = DeadLetterSpool::Open(dir_.Sub("state"), fs_, metrics_, {max_bytes});
    ASSERT_THAT(spool, IsOk());
    spool_ = std::move(*spool);
  }

  // What the spool holds now (read the way a replay reads it, and put back).
  std::vector<DeadLetter> Spooled() {
    auto batch = spool_->TakeForReplay();
    EXPECT_THAT(batch, IsOk());
    if (!batch.ok()) return {};
    EXPECT_THAT(spool_->FinishReplay(batch->records, batch->unreadable_lines), IsOk());
    return batch->records;
  }

  // Builds the account (and the publisher, unless the test built its own) on the loop thread.
  void MakeAccount() {
    if (!publisher_) MakePublisher();
    AccountEnv env{
        *loop_,  *transport_, *publisher_, *store_,
        *spool_, metrics_,    clock_,      [this](Account& account) { RequestCommit(account); }};
    env.per_account_type_metrics = per_account_type_;
    OnLoop([&] { account_ = std::make_unique<Account>(config_, router_, backoff_, 0, env); });
  }

  // As the supervisor does: one commit at the end of the loop turn for every account that
  // asked, then OnCommitted.
  void RequestCommit(Account& account) {
    ++commit_requests_;
    if (commit_scheduled_) return;
    commit_scheduled_ = true;
    loop_->Post([this, &account] {
      commit_scheduled_ = false;
      Status committed = store_->Commit();
      commit_results_.push_back(committed);
      account.OnCommitted(committed);
    });
  }

  // Runs `fn` on the loop thread and waits for it.
  void OnLoop(std::function<void()> fn) { ::zb::testing::RunOnLoop(*loop_, std::move(fn), kWait); }

  // Lets the loop run what is due: scripted HTTP answers, posted commits, due timers (a post
  // wakes the loop, and each turn runs due timers before posted tasks).
  void Turn() {
    for (int i = 0; i < 4; ++i) OnLoop([this] { fake_.Pump(); });
  }

  void Start(std::optional<Checkpoint> checkpoint = std::nullopt) {
    OnLoop([&] { account_->Start(checkpoint); });
    Turn();
  }

  // Answers the last call made, and lets the account act on it.
  void Answer(FakeResponse response) {
    OnLoop([&] { fake_.Reply(fake_.last().handle, std::move(response)); });
    Turn();
  }

  void Advance(Clock::Duration d) {
    clock_.Advance(d);
    Turn();
  }

  std::vector<CallRecord> Calls() {
    std::vector<CallRecord> out;
    OnLoop([&] { out = transport_->records(); });
    return out;
  }
  CallRecord LastCall() { return Calls().back(); }
  size_t CallCount() { return Calls().size(); }

  AccountSnapshot Snapshot() {
    AccountSnapshot s;
    OnLoop([&] { s = account_->Snapshot(); });
    return s;
  }

  // The records the fake publisher held are gone with the process that produced them (a stop or a
  // kill -9): no report will come for them.
  void ForgetHeldRecords() {
    std::lock_guard lock(reports_mu_);
    held_.clear();
  }

  // A first start (no checkpoint) registers `queue` with `max_message_id` and polls it.
  void FirstStartRegisters(const std::string& queue, int64_t max_message_id) {
    MakeAccount();
    Start();
    ASSERT_EQ(LastCall().endpoint, "register");
    Answer(FakeResponse::Json(200, RegisterOkWithMaxMessageId(queue, max_message_id)));
    ASSERT_EQ(LastCall().endpoint, "events");
  }

  // Drives a backfill to its end: answers each GET /messages from `history`, delivers every
  // record, and lets backoffs pass, until the new queue is polled (false at the deadline).
  bool RunBackfillToTheEnd(const std::vector<OldMessage>& history) {
    return WaitFor(
        [&] {
          bool unanswered = false;
          OnLoop([&] { unanswered = !fake_.last().response; });
          if (LastCall().endpoint == "messages" && unanswered) {
            AnswerMessagesFrom(history);
          } else if (HeldCount() > 0) {
            Deliver();
          } else {
            Advance(100ms);
          }
          return LastCall().endpoint == "events";
        },
        kWait);
  }

  // Answers every GET /messages the account makes from `history` until it makes another call.
  // Returns how many it answered.
  int AnswerMessagesFrom(const std::vector<OldMessage>& history) {
    int answered = 0;
    while (LastCall().endpoint == "messages" && answered < 100) {
      Answer(FakeResponse::Json(200, MessagesFrom(history, LastCall().params)));
      ++answered;
    }
    return answered;
  }

  // The message ids of the records Kafka reported so far (held back), in report order; -1 for
  // records without a message.
  std::vector<uint64_t> HeldTokens() {
    std::lock_guard lock(reports_mu_);
    std::vector<uint64_t> tokens;
    for (const auto& report : held_) tokens.push_back(report.token);
    return tokens;
  }

  // Registers queue `queue_id` and lets the account start its first GET.
  void RegisterQueue(const std::string& queue_id = "q1") {
    Start();
    ASSERT_EQ(LastCall().endpoint, "register");
    Answer(FakeResponse::Json(200, RegisterOk(queue_id)));
    ASSERT_EQ(LastCall().endpoint, "events");
  }

  size_t HeldCount() {
    std::lock_guard lock(reports_mu_);
    return held_.size();
  }
  // Waits until Kafka has reported `n` records (the test holds them back).
  bool WaitForReports(size_t n) {
    return WaitFor([&] { return HeldCount() >= n; }, kWait);
  }
  // Hands the held reports whose token is in `tokens` (all, when empty) to the account, as
  // the supervisor does, then lets the loop act on them.
  void Deliver(std::set<uint64_t> tokens = {}) {
    std::vector<DeliveryReport> now;
    {
      std::lock_guard lock(reports_mu_);
      for (auto it = held_.begin(); it != held_.end();) {
        if (tokens.empty() || tokens.count(it->token)) {
          now.push_back(*it);
          it = held_.erase(it);
        } else {
          ++it;
        }
      }
    }
    OnLoop([&] {
      for (const DeliveryReport& report : now) account_->OnDelivery(report);
      account_->OnProducerRoom();
    });
    Turn();
  }

  // Every held report is a delivery (the mock broker took the record).
  bool AllHeldDelivered() {
    std::lock_guard lock(reports_mu_);
    for (const auto& report : held_) {
      if (report.outcome != DeliveryReport::Outcome::kDelivered) return false;
    }
    return true;
  }

  uint64_t QueuesLost() {
    return metrics_
        .GetCounter("zb_queues_lost_total", "Event queues Zulip no longer had (a gap)",
                    {{"account", kAccount}})
        .value();
  }

  // Checks the one invariant over every GET made so far: its last_event_id was durable in
  // the store, for that very queue, when the GET started.
  void ExpectEveryGetSentOnlyDurableWatermarks() {
    for (const CallRecord& call : Calls()) {
      if (call.endpoint != "events") continue;
      ASSERT_TRUE(call.durable.has_value()) << "GET before any checkpoint was durable";
      EXPECT_EQ(call.durable->queue_id, call.Param("queue_id"));
      EXPECT_EQ(call.durable->watermark, call.last_event_id())
          << "GET sent a watermark the disk did not hold";
    }
  }

  TempDir dir_;
  PosixFs posix_fs_;
  FaultyFs fs_{posix_fs_};
  FakeClock clock_;
  FakeHttpTransport fake_;
  MockCluster cluster_;
  MetricsRegistry metrics_;
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<DeadLetterSpool> spool_;
  std::unique_ptr<RecordingTransport> transport_;
  std::unique_ptr<EventLoop> loop_;
  std::thread loop_thread_;
  std::unique_ptr<KafkaPublisher> publisher_;
  std::unique_ptr<Account> account_;

  std::string brokers_;            // when set, instead of cluster_'s
  bool per_account_type_ = false;  // metrics.per_account_type
  AccountConfig config_;
  EventRouterOptions router_;
  BackoffPolicy backoff_;

  // Loop thread only.
  bool commit_scheduled_ = false;
  int commit_requests_ = 0;
  std::vector<Status> commit_results_;

  std::mutex reports_mu_;
  std::vector<DeliveryReport> held_;  // guarded by reports_mu_
};

TEST_F(AccountTest, RegisterSendsEveryArgumentExplicitly) {
  config_.event_types = std::vector<std::string>{"message", "typing"};
  config_.fetch_event_types = {"message", "realm"};
  config_.narrow = {{"channel", "general"}};
  config_.all_public_streams = true;
  config_.apply_markdown = true;
  config_.client_gravatar = false;
  config_.slim_presence = true;
  config_.client_capabilities = {{"notification_settings_null", true},
                                 {"bulk_message_deletion", false}};
  config_.queue_lifespan_secs = 3600;
  MakeAccount();
  Start();

  ASSERT_EQ(CallCount(), 1u);
  CallRecord reg = LastCall();
  EXPECT_EQ(reg.endpoint, "register");
  EXPECT_EQ(reg.Param("event_types"), R"(["message","typing"])");
  EXPECT_EQ(reg.Param("fetch_event_types"), R"(["message","realm"])");
  EXPECT_EQ(reg.Param("narrow"), R"([["channel","general"]])");
  EXPECT_EQ(reg.Param("all_public_streams"), "true");
  EXPECT_EQ(reg.Param("apply_markdown"), "true");
  EXPECT_EQ(reg.Param("client_gravatar"), "false");
  EXPECT_EQ(reg.Param("slim_presence"), "true");
  EXPECT_EQ(reg.Param("client_capabilities"),
            R"({"bulk_message_deletion":false,"notification_settings_null":true})");
  EXPECT_EQ(reg.Param("queue_lifespan_secs"), "3600");
}

TEST_F(AccountTest, RegisterLeavesEventTypesOutWhenEveryTypeIsWanted) {
  MakeAccount();
  Start();
  CallRecord reg = LastCall();
  EXPECT_EQ(reg.Param("event_types"), "<absent>");
  // The others are still explicit, defaults included.
  EXPECT_EQ(reg.Param("narrow"), "[]");
  EXPECT_EQ(reg.Param("client_gravatar"), "false");
  EXPECT_EQ(reg.Param("queue_lifespan_secs"), "604800");
}

TEST_F(AccountTest, NewQueueIsDurableBeforeItsFirstGetWhichSendsMinusOne) {
  MakeAccount();
  Start();
  EXPECT_FALSE(store_->Load(kAccount).ok()) << "nothing durable before the register answers";
  Answer(FakeResponse::Json(200, RegisterOk("q-new")));

  std::vector<CallRecord> calls = Calls();
  ASSERT_EQ(calls.size(), 2u);
  const CallRecord& get = calls[1];
  EXPECT_EQ(get.endpoint, "events");
  EXPECT_EQ(get.Param("queue_id"), "q-new");
  EXPECT_EQ(get.Param("last_event_id"), "-1");
  ASSERT_TRUE(get.durable.has_value()) << "the first GET started before the queue was durable";
  EXPECT_EQ(get.durable->queue_id, "q-new");
  EXPECT_EQ(get.durable->watermark, -1);
  EXPECT_EQ(get.durable->site, kSite);
}

TEST_F(AccountTest, AcknowledgesOnlyWhatKafkaAcknowledgedAndTheDiskHolds) {
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0), Typing(1), Typing(2)}));
  // Tokens are the account's slot (0) and a sequence in the order produced: event k -> k.
  ASSERT_TRUE(WaitForReports(3));
  ASSERT_TRUE(AllHeldDelivered());
  Turn();
  EXPECT_EQ(CallCount(), 2u) << "polled again before Kafka's acknowledgements reached it";
  EXPECT_EQ(Snapshot().state, AccountState::kDraining);

  // Later events acknowledged first: the prefix is not settled, so nothing moves.
  Deliver({1, 2});
  EXPECT_EQ(CallCount(), 2u) << "acknowledged past an event Kafka had not acknowledged";
  EXPECT_EQ(store_->Load(kAccount)->watermark, -1);

  Deliver({0});
  std::vector<CallRecord> calls = Calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[2].Param("last_event_id"), "2");
  EXPECT_EQ(calls[2].Param("queue_id"), "q1");
  ExpectEveryGetSentOnlyDurableWatermarks();
  EXPECT_EQ(Snapshot().durable_watermark, 2);
}

TEST_F(AccountTest, DoesNotAcknowledgeWhileKafkaIsDown) {
  cluster_.SetBrokerDown();
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0), Typing(1)}));
  EXPECT_EQ(Snapshot().in_flight, 2u);
  // The records sit in librdkafka: no report, so no acknowledgement, however long it takes.
  Advance(10min);
  Deliver();
  EXPECT_EQ(CallCount(), 2u);
  EXPECT_EQ(store_->Load(kAccount)->watermark, -1);

  cluster_.SetBrokerUp();
  ASSERT_TRUE(WaitForReports(2));
  ASSERT_TRUE(AllHeldDelivered());
  Deliver();
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "1");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, HeartbeatOnlyResponseAdvancesAfterTheCommit) {
  MakeAccount();
  RegisterQueue();
  Answer(Events({Heartbeat(0)}));

  EXPECT_EQ(Snapshot().in_flight, 0u) << "a heartbeat was produced";
  EXPECT_EQ(publisher_->InFlight(), 0u);
  std::vector<CallRecord> calls = Calls();
  ASSERT_EQ(calls.size(), 3u) << "a heartbeat must settle at once, without Kafka";
  EXPECT_EQ(calls[2].Param("last_event_id"), "0");
  ASSERT_TRUE(calls[2].durable.has_value());
  EXPECT_EQ(calls[2].durable->watermark, 0) << "heartbeat advance sent before it was durable";
  EXPECT_EQ(HeldCount(), 0u);
}

TEST_F(AccountTest, HeartbeatAfterAnUnacknowledgedEventWaitsForIt) {
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0), Heartbeat(1)}));
  ASSERT_TRUE(WaitForReports(1));
  Turn();
  EXPECT_EQ(CallCount(), 2u) << "the heartbeat's id passed an unacknowledged event";
  EXPECT_EQ(Snapshot().in_flight, 1u) << "only the typing event goes to Kafka";

  Deliver();
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "1");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, WatermarkFollowsTheIdsReceivedWhenIdsSkip) {
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0), Typing(1), Typing(5)}));
  ASSERT_TRUE(WaitForReports(3));
  Deliver();
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "5");

  Answer(Events({Typing(9)}));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  ASSERT_EQ(CallCount(), 4u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "9");

  std::vector<int64_t> sent;
  for (const CallRecord& call : Calls()) {
    if (call.endpoint == "events") sent.push_back(call.last_event_id());
  }
  EXPECT_THAT(sent, ElementsAre(-1, 5, 9)) << "an id not received was sent";
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, FailedCheckpointWriteStopsAcknowledgingUntilACommitSucceeds) {
  MakeAccount();
  RegisterQueue();
  fs_.FailNth(FaultyFs::Op::kWrite, 1);
  Answer(Events({Typing(0), Typing(1)}));
  ASSERT_TRUE(WaitForReports(2));
  Deliver();

  ASSERT_FALSE(commit_results_.empty());
  EXPECT_FALSE(commit_results_.back().ok());
  EXPECT_EQ(fs_.failures(), 1);
  EXPECT_EQ(CallCount(), 2u) << "acknowledged a watermark whose commit failed";
  EXPECT_EQ(store_->Load(kAccount)->watermark, -1);
  AccountSnapshot failed = Snapshot();
  EXPECT_EQ(failed.durable_watermark, -1);
  EXPECT_THAT(failed.last_error, HasSubstr("Input/output error"));

  // The retry of the commit comes after a backoff (at most the 1 s cap) and succeeds.
  Advance(1s);
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_TRUE(commit_results_.back().ok());
  EXPECT_EQ(LastCall().Param("last_event_id"), "1");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, FailedCheckpointSyncStopsAcknowledgingUntilACommitSucceeds) {
  MakeAccount();
  RegisterQueue();
  // Fails this sync and the retry's too: two failed commits, then a good one.
  fs_.FailNth(FaultyFs::Op::kSyncFile, 1, /*sticky=*/true);
  Answer(Events({Typing(0)}));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  EXPECT_EQ(CallCount(), 2u);
  Advance(1s);
  EXPECT_EQ(CallCount(), 2u) << "acknowledged while the disk still refused the checkpoint";
  EXPECT_GE(std::count_if(commit_results_.begin(), commit_results_.end(),
                          [](const Status& s) { return !s.ok(); }),
            2);
  EXPECT_EQ(store_->Load(kAccount)->watermark, -1);

  fs_.Heal();
  Advance(1s);
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "0");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, LostQueueReRegistersAndStartsTheNewQueueFromMinusOne) {
  MakeAccount();
  RegisterQueue("q1");
  Answer(Events({Typing(0), Typing(1), Typing(2)}));
  ASSERT_TRUE(WaitForReports(3));
  Deliver();
  ASSERT_EQ(LastCall().Param("last_event_id"), "2");

  Answer(QueueLost());
  ASSERT_EQ(LastCall().endpoint, "register");
  EXPECT_EQ(QueuesLost(), 1u);

  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  // The gap: the lost queue's messages are read back first (none here).
  ASSERT_EQ(LastCall().endpoint, "messages");
  AnswerMessagesFrom({});
  CallRecord get = LastCall();
  ASSERT_EQ(get.endpoint, "events");
  EXPECT_EQ(get.Param("queue_id"), "q2");
  EXPECT_EQ(get.Param("last_event_id"), "-1") << "an old watermark was sent to a new queue";
  ASSERT_TRUE(get.durable.has_value());
  EXPECT_EQ(get.durable->queue_id, "q2");
  EXPECT_EQ(get.durable->watermark, -1);

  // The new queue's ids start over: its first event settles from -1.
  Answer(Events({Typing(0)}, "q2"));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  EXPECT_EQ(LastCall().Param("last_event_id"), "0");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, LostQueueBackfillsItsMessagesBeforePollingAndSkipsTheirLiveCopies) {
  MakeAccount();
  RegisterQueue("q1");
  Answer(Events({MessageEvent(0, 100), MessageEvent(1, 101)}));
  ASSERT_TRUE(WaitForReports(2));
  Deliver();
  Answer(QueueLost());
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOk("q2")));

  // Before the new queue is polled: its id and the backfill are durable, and the backfill first
  // reads back from the last message published, one-ended, to the messages sent a margin before
  // the last settled poll (a lower message than 101 could have been lost).
  CallRecord page = LastCall();
  ASSERT_EQ(page.endpoint, "messages");
  EXPECT_EQ(page.Param("anchor"), "101");
  EXPECT_EQ(page.Param("include_anchor"), "false");
  EXPECT_EQ(page.Param("num_after"), "0");
  ASSERT_TRUE(page.durable.has_value());
  EXPECT_EQ(page.durable->queue_id, "q2");
  EXPECT_TRUE(page.durable->backfill_active);
  EXPECT_EQ(page.durable->backfill_anchor_message_id, 101);
  EXPECT_EQ(page.durable->backfill_rewind_to_unix_seconds, kWallStart - 300);
  const std::vector<OldMessage> history = {
      {99, kLongAgo}, {100, kJustNow}, {101, kJustNow}, {102, kJustNow}, {103, kJustNow}};
  Answer(FakeResponse::Json(200, MessagesFrom(history, page.params)));
  // Forward from 99, the newest message sent before the margin: 100 and 101 are in Kafka
  // (their live events were acknowledged), so only 102 and 103 are published.
  ASSERT_EQ(LastCall().endpoint, "messages");
  EXPECT_EQ(LastCall().Param("anchor"), "99");
  EXPECT_EQ(LastCall().Param("num_before"), "0");
  AnswerMessagesFrom(history);

  // The gap record and the two backfilled messages.
  ASSERT_TRUE(WaitForReports(3));
  EXPECT_EQ(LastCall().endpoint, "messages") << "polled before the backfill was in Kafka";
  Deliver();
  CallRecord get = LastCall();
  ASSERT_EQ(get.endpoint, "events");
  EXPECT_EQ(get.Param("queue_id"), "q2");
  ASSERT_TRUE(get.durable.has_value());
  EXPECT_FALSE(get.durable->backfill_active);
  EXPECT_EQ(get.durable->last_published_message_id, 103);
  auto counter = [&](const char* name) {
    return metrics_.GetCounter(name, "", {{"account", kAccount}}).value();
  };
  EXPECT_EQ(counter("zb_gaps_total"), 1u);
  EXPECT_EQ(counter("zb_backfilled_messages_total"), 2u);

  // The new queue has 103 again (sent while the backfill ran) and 104: only 104 is published.
  Answer(Events({MessageEvent(0, 103), MessageEvent(1, 104)}, "q2"));
  ASSERT_TRUE(WaitForReports(1));
  Turn();
  EXPECT_EQ(HeldCount(), 1u) << "message 103 published twice";
  Deliver();
  EXPECT_EQ(LastCall().Param("last_event_id"), "1");
  EXPECT_EQ(counter("zb_duplicates_skipped_total"), 3u);  // 100, 101 read back; 103 live
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, TheBackfillStopsAtTheNewQueuesNewestMessageWhichPollingDelivers) {
  MakeAccount();
  RegisterQueue("q1");
  Answer(Events({MessageEvent(0, 100)}));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  Answer(QueueLost());
  // Message 102 was the newest when q2 was made; 103 came after, so q2 delivers it.
  Answer(FakeResponse::Json(200, RegisterOkWithMaxMessageId("q2", 102)));
  ASSERT_EQ(LastCall().endpoint, "messages");
  ASSERT_TRUE(LastCall().durable.has_value());
  EXPECT_EQ(LastCall().durable->backfill_until_message_id, 102);
  AnswerMessagesFrom({{100, kJustNow}, {101, kJustNow}, {102, kJustNow}, {103, kJustNow}});
  ASSERT_TRUE(WaitForReports(3));  // the gap record, 101 and 102: not 100 (in Kafka), not 103
  Deliver();
  CallRecord get = LastCall();
  ASSERT_EQ(get.endpoint, "events") << "the backfill read on past the bound";
  EXPECT_EQ(get.durable->last_published_message_id, 102);

  // q2 has 102 (made just as it registered) and 103: 102 is the backfill's, 103 is published.
  Answer(Events({MessageEvent(0, 102), MessageEvent(1, 103)}, "q2"));
  ASSERT_TRUE(WaitForReports(1));
  Turn();
  EXPECT_EQ(HeldCount(), 1u);
  Deliver();
  EXPECT_EQ(LastCall().Param("last_event_id"), "1");
  EXPECT_EQ(LastCall().durable->last_published_message_id, 103) << "message 103 was lost";
}

TEST_F(AccountTest, ABackfillInterruptedByACrashResumesFromItsDurableAnchor) {
  Checkpoint saved;
  saved.site = kSite;
  saved.queue_id = "q2";
  saved.watermark = -1;
  saved.last_published_message_id = 150;
  saved.backfill_active = true;
  saved.backfill_anchor_message_id = 150;
  MakeAccount();
  Start(saved);
  ASSERT_EQ(LastCall().endpoint, "messages");
  EXPECT_EQ(LastCall().Param("anchor"), "150");
  Answer(FakeResponse::Json(200, MessagesPage({151}, true)));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  CallRecord get = LastCall();
  ASSERT_EQ(get.endpoint, "events");
  EXPECT_EQ(get.Param("queue_id"), "q2");
  EXPECT_EQ(get.Param("last_event_id"), "-1");
  EXPECT_FALSE(get.durable->backfill_active);
}

// Issue #15, finding 2: acknowledgements come out of order across partitions. 101's record is
// acknowledged, 100's is not, and the account stops: the final checkpoint's highest published
// message is 101, but 100 is not in Kafka, so the restart must publish it again.
TEST_F(AccountTest, AStopWithALowerMessageUnacknowledgedPublishesItAgainAfterTheRestart) {
  MakeAccount();
  RegisterQueue("q1");
  Answer(Events({Typing(0), MessageEvent(1, 100), MessageEvent(2, 101)}));
  ASSERT_TRUE(WaitForReports(3));
  const std::vector<uint64_t> tokens = HeldTokens();
  Deliver({tokens[0], tokens[2]});  // the typing event's and 101's records, not 100's
  OnLoop([&] {
    account_->Stop();
    account_->StageFinalCheckpoint();
    ASSERT_THAT(store_->Commit(), IsOk());
  });
  StatusOr<Checkpoint> saved = store_->Load(kAccount);
  ASSERT_THAT(saved, IsOk());
  EXPECT_EQ(saved->watermark, 0) << "event 1 (message 100) is not in Kafka";
  EXPECT_EQ(saved->last_published_message_id, 101);

  OnLoop([&] { account_.reset(); });
  ForgetHeldRecords();
  MakeAccount();
  Start(*saved);
  ASSERT_EQ(LastCall().endpoint, "events");
  EXPECT_EQ(LastCall().Param("last_event_id"), "0");
  Answer(Events({MessageEvent(1, 100), MessageEvent(2, 101)}));
  // 100 must be produced; 101 may come again (the dedup key tells consumers).
  ASSERT_TRUE(WaitForReports(1)) << "message 100 was skipped as published: lost";
}

// Issue #15, finding 3: Zulip sends a message's event when its transaction commits, so a lower
// message id can arrive after a higher one. The checkpoint says 101 was published and event 0
// (message 101) settled; event 1 is message 100, which is not in Kafka.
TEST_F(AccountTest, AMessageArrivingAfterAHigherOneIsPublishedAfterARestart) {
  Checkpoint saved;
  saved.site = kSite;
  saved.queue_id = "q1";
  saved.watermark = 0;
  saved.last_published_message_id = 101;
  saved.registered_at_unix_ms = kWallStart * 1000;
  store_->Stage(kAccount, saved);
  ASSERT_THAT(store_->Commit(), IsOk());
  MakeAccount();
  Start(saved);
  ASSERT_EQ(LastCall().endpoint, "events");
  Answer(Events({MessageEvent(1, 100)}));
  ASSERT_TRUE(WaitForReports(1)) << "message 100 was skipped as published: lost";
  Deliver();
  EXPECT_EQ(LastCall().Param("last_event_id"), "1");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

// Issue #15, finding 3 (where a backfill starts): message 101's event arrived and was
// acknowledged, message 100's had not yet arrived when the queue was lost. A backfill that
// starts after 101 never reads 100.
TEST_F(AccountTest, TheBackfillReadsBackMessagesBelowTheLastPublishedOne) {
  MakeAccount();
  RegisterQueue("q1");
  Answer(Events({MessageEvent(0, 101)}));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  Answer(QueueLost());
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  AnswerMessagesFrom({{90, kLongAgo}, {100, kJustNow}, {101, kJustNow}});
  ASSERT_TRUE(WaitForReports(2)) << "message 100 was not read back";  // the gap record and 100
  Deliver();
  CallRecord get = LastCall();
  ASSERT_EQ(get.endpoint, "events");
  EXPECT_FALSE(get.durable->backfill_active);
  EXPECT_EQ(get.durable->backfill_rewind_to_unix_seconds, 0);
  EXPECT_EQ(
      metrics_.GetCounter("zb_backfilled_messages_total", "", {{"account", kAccount}}).value(), 1u)
      << "90 predates the margin; 101 is in Kafka";
}

// Issue #15, finding 5: a backfilled record the producer refuses at once (too large) settles
// inside the loop that produces the batch; the batch must still produce the rest of its records.
TEST_F(AccountTest, ARecordRefusedAtOnceInABackfillBatchLeavesTheRestOfTheBatchProduced) {
  MakePublisher({{"message.max.bytes", "1000"}});
  MakeAccount();
  RegisterQueue("q1");
  Answer(Events({Typing(0)}));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  Answer(QueueLost());
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  ASSERT_EQ(LastCall().endpoint, "messages");
  std::string page =
      R"({"result":"success","msg":"","messages":[{"id":101,"timestamp":)" +
      std::to_string(kJustNow) + R"(,"type":"stream","stream_id":1,"subject":"t",)" +
      R"("content":")" + std::string(2000, 'x') + R"(","flags":[]},{"id":102,"timestamp":)" +
      std::to_string(kJustNow) +
      R"(,"type":"stream","stream_id":1,"subject":"t","content":"ok","flags":[]},)" +
      R"({"id":103,"timestamp":)" + std::to_string(kJustNow) +
      R"(,"type":"stream","stream_id":1,"subject":"t","content":"ok","flags":[]}],)" +
      R"("found_anchor":false,"found_oldest":true,"found_newest":true,)" +
      R"("history_limited":false})";
  // No message was published before the loss and the server gave no max_message_id: the
  // backfill reads back from the newest (none older than the margin here), then forward.
  EXPECT_EQ(LastCall().Param("anchor"), "newest");
  EXPECT_EQ(LastCall().Param("num_after"), "0");
  Answer(FakeResponse::Json(200, NoMessages()));
  EXPECT_EQ(LastCall().Param("anchor"), "oldest");
  Answer(FakeResponse::Json(200, page));
  ASSERT_TRUE(WaitForReports(3)) << "the batch ended at the refused record";  // gap, 102, 103
  EXPECT_EQ(LastCall().endpoint, "messages") << "polled before the batch was in Kafka";
  Deliver();
  CallRecord get = LastCall();
  ASSERT_EQ(get.endpoint, "events");
  EXPECT_EQ(get.durable->last_published_message_id, 103);
  std::vector<DeadLetter> spooled = Spooled();
  ASSERT_EQ(spooled.size(), 1u);
  EXPECT_THAT(spooled[0].value, HasSubstr("\"id\":101"));
}

// Issue #15, finding 6: the gap record is durable with the new queue and produced until Kafka
// has it, so a stop before Kafka acknowledged it does not lose the report.
TEST_F(AccountTest, AGapRecordKafkaHadNotAcknowledgedIsPublishedAfterARestart) {
  MakeAccount();
  RegisterQueue("q1");
  Answer(QueueLost());
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  ASSERT_EQ(LastCall().endpoint, "messages");
  ASSERT_TRUE(LastCall().durable.has_value());
  ASSERT_EQ(LastCall().durable->pending_gap_records.size(), 1u);
  EXPECT_THAT(LastCall().durable->pending_gap_records[0], HasSubstr("\"lost_queue_id\":\"q1\""));
  ASSERT_TRUE(WaitForReports(1));  // the gap record, held back: Kafka "did not acknowledge"
  OnLoop([&] {
    account_->Stop();
    account_->StageFinalCheckpoint();
    ASSERT_THAT(store_->Commit(), IsOk());
  });
  StatusOr<Checkpoint> saved = store_->Load(kAccount);
  ASSERT_THAT(saved, IsOk());
  ASSERT_EQ(saved->pending_gap_records.size(), 1u);

  OnLoop([&] { account_.reset(); });
  ForgetHeldRecords();
  MakeAccount();
  Start(*saved);
  ASSERT_TRUE(WaitForReports(1)) << "the gap record was not produced again";
  AnswerMessagesFrom({});
  Deliver();
  ASSERT_EQ(LastCall().endpoint, "events");
  // Forgotten with the next checkpoint (here, a heartbeat's).
  Answer(Events({Heartbeat(0)}, "q2"));
  ASSERT_EQ(LastCall().endpoint, "events");
  EXPECT_EQ(LastCall().Param("last_event_id"), "0");
  EXPECT_TRUE(LastCall().durable->pending_gap_records.empty())
      << "an acknowledged gap record is still pending";
}

// Issue #15, finding 8: a stopped account stays stopped when its backfill batch settles.
TEST_F(AccountTest, AStoppedAccountStaysStoppedWhenItsBackfillBatchSettles) {
  MakeAccount();
  RegisterQueue("q1");
  Answer(QueueLost());
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  ASSERT_EQ(LastCall().endpoint, "messages");
  AnswerMessagesFrom({{101, kJustNow}});
  ASSERT_TRUE(WaitForReports(2));  // the gap record and 101
  OnLoop([&] { account_->Stop(); });
  const size_t calls = CallCount();
  Deliver();
  Advance(10s);
  EXPECT_EQ(Snapshot().state, AccountState::kStopped);
  EXPECT_EQ(CallCount(), calls) << "a stopped account made a request: " << LastCall().endpoint;
}

// Issue #15, finding 11: a resumed queue's records carry the server's feature level (kept in
// the checkpoint), and a loss found on the first poll after a start names the last good poll.
TEST_F(AccountTest, AResumedQueueKeepsItsFeatureLevelAndLastGoodPoll) {
  Checkpoint saved;
  saved.site = kSite;
  saved.queue_id = "q1";
  saved.watermark = 4;
  saved.feature_level = 400;
  saved.settled_poll_unix_ms = kWallStart * 1000 - 60000;  // 2024-12-31T23:59:00Z
  MakePublisher({{"message.max.bytes", "1000"}});
  MakeAccount();
  Start(saved);
  ASSERT_EQ(LastCall().endpoint, "events");
  // Too large for the producer: spooled, with the headers it would have had.
  Answer(Events(
      {R"({"type":"typing","op":"start","pad":")" + std::string(2000, 'x') + R"(","id":5})"}));
  std::vector<DeadLetter> spooled = Spooled();
  ASSERT_EQ(spooled.size(), 1u);
  bool found = false;
  for (const auto& [key, value] : spooled[0].headers) {
    if (key == "zulip-feature-level") {
      found = true;
      EXPECT_EQ(value, "400");
    }
  }
  EXPECT_TRUE(found);
  ASSERT_EQ(LastCall().endpoint, "events");
  Answer(QueueLost());
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  ASSERT_TRUE(LastCall().durable.has_value());
  ASSERT_EQ(LastCall().durable->pending_gap_records.size(), 1u);
  // The poll that returned event 5 is the last good one, after the checkpoint's.
  EXPECT_THAT(LastCall().durable->pending_gap_records[0],
              HasSubstr("\"last_good_poll\":\"2025-01-01T00:00:00"));
}

// A narrow naming a channel that was renamed, deleted or left: Zulip refuses every page with a
// 400, however often it is asked, while the new queue, never polled, expires. A 5xx before it
// is still retried.
TEST_F(AccountTest, ABackfillPageRefusedWith400ParksTheAccountWithZulipsReason) {
  config_.narrow = {{"channel", "renamed away"}};
  MakeAccount();
  RegisterQueue("q1");
  Answer(QueueLost("q1"));
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  ASSERT_EQ(LastCall().endpoint, "messages");
  Answer(FakeResponse::Json(502, "<html>502 Bad Gateway</html>"));
  EXPECT_EQ(Snapshot().state, AccountState::kBackingOff);
  Advance(1s);
  ASSERT_EQ(LastCall().endpoint, "messages") << "a 5xx on a backfill page is retried";
  const size_t calls = CallCount();

  Answer(FakeResponse::Json(
      400,
      R"({"result":"error","msg":"Invalid narrow operator: unknown channel","code":"BAD_REQUEST"})"));
  AccountSnapshot parked = Snapshot();
  EXPECT_EQ(parked.state, AccountState::kParked);
  EXPECT_THAT(parked.parked_reason, HasSubstr("GET /messages"));
  EXPECT_THAT(parked.parked_reason, HasSubstr("unknown channel"));
  EXPECT_EQ(parked.park_reason, ParkReason::kBackfillRefused);
  EXPECT_EQ(parked.parked_reason.rfind("backfill refused by Zulip: ", 0), 0u)
      << parked.parked_reason;
  Advance(1h);
  EXPECT_EQ(CallCount(), calls) << "a refused backfill page was asked again";
  EXPECT_EQ(Snapshot().state, AccountState::kParked);
}

// Servers before feature level 250 know the public-channels operator only as `streams`.
TEST_F(AccountTest, TheBackfillSpellsThePublicChannelsOperatorForTheServersFeatureLevel) {
  for (int64_t feature_level : {200, 400}) {
    SCOPED_TRACE(feature_level);
    config_.all_public_streams = true;
    MakeAccount();
    RegisterQueue("q1");
    Answer(QueueLost("q1"));
    const std::string newest = R"("zulip_feature_level":400)";
    std::string reg = RegisterOk("q2");
    reg.replace(reg.find(newest), newest.size(),
                R"("zulip_feature_level":)" + std::to_string(feature_level));
    Answer(FakeResponse::Json(200, reg));
    // Several narrows: each one's newest message is read first, the account's own first.
    ASSERT_EQ(LastCall().endpoint, "messages");
    EXPECT_EQ(LastCall().Param("narrow"), "[]");
    Answer(FakeResponse::Json(200, NoMessages()));
    ASSERT_EQ(LastCall().endpoint, "messages");
    EXPECT_EQ(LastCall().Param("narrow"), feature_level >= 250
                                              ? R"([{"operator":"channels","operand":"public"}])"
                                              : R"([{"operator":"streams","operand":"public"}])");
    OnLoop([this] { account_.reset(); });
  }
}

TEST_F(AccountTest, UnauthorizedRegisterParksTheAccountWithTheServersReason) {
  MakeAccount();
  Start();
  Answer(FakeResponse::Json(401,
                            R"({"result":"error","msg":"Invalid API key","code":"UNAUTHORIZED"})"));
  AccountSnapshot parked = Snapshot();
  EXPECT_EQ(parked.state, AccountState::kParked);
  EXPECT_THAT(parked.parked_reason, HasSubstr("Invalid API key"));
  EXPECT_THAT(parked.parked_reason, ::testing::Not(HasSubstr("s3cret-key")));
  EXPECT_EQ(parked.park_reason, ParkReason::kUnauthenticated);

  Advance(1h);
  EXPECT_EQ(CallCount(), 1u) << "a parked account made another request";
  EXPECT_EQ(Snapshot().state, AccountState::kParked);
}

TEST_F(AccountTest, AServerOlderThanTheOldestSupportedParksTheAccount) {
  MakeAccount();
  Start();
  const std::string newest = R"("zulip_feature_level":400)";
  std::string reg = RegisterOk("q1");
  reg.replace(reg.find(newest), newest.size(), R"("zulip_feature_level":100)");
  Answer(FakeResponse::Json(200, reg));
  AccountSnapshot parked = Snapshot();
  EXPECT_EQ(parked.state, AccountState::kParked);
  EXPECT_EQ(parked.park_reason, ParkReason::kZulipTooOld);
  EXPECT_EQ(
      parked.parked_reason,
      "Zulip server feature level 100 (version 10.2) is older than the oldest supported, 155");
}

TEST_F(AccountTest, RateLimitedPollWaitsRetryAfterToTheFraction) {
  MakeAccount();
  RegisterQueue();
  FakeResponse limited = FakeResponse::Json(
      429,
      R"({"result":"error","msg":"API usage exceeded rate limit","code":"RATE_LIMIT_HIT","retry-after":2.5})");
  limited.head.retry_after = "2.5";
  Answer(std::move(limited));
  const int64_t limited_at = LastCall().at_ns;

  Advance(2499ms);
  EXPECT_EQ(CallCount(), 2u) << "retried before Retry-After passed";
  Advance(1ms);
  std::vector<CallRecord> calls = Calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_GE(calls[2].at_ns - limited_at, std::chrono::nanoseconds(2500ms).count());
  EXPECT_EQ(calls[2].endpoint, "events");
  EXPECT_EQ(calls[2].Param("queue_id"), "q1");
  EXPECT_EQ(calls[2].Param("last_event_id"), "-1");
}

TEST_F(AccountTest, RateLimitedRegisterWaitsRetryAfterToTheFraction) {
  MakeAccount();
  Start();
  FakeResponse limited = FakeResponse::Json(
      429,
      R"({"result":"error","msg":"API usage exceeded rate limit","code":"RATE_LIMIT_HIT","retry-after":2.5})");
  limited.head.retry_after = "2.5";
  Answer(std::move(limited));

  Advance(2499ms);
  EXPECT_EQ(CallCount(), 1u) << "registered again before Retry-After passed";
  Advance(1ms);
  ASSERT_EQ(CallCount(), 2u);
  EXPECT_EQ(LastCall().endpoint, "register");
}

TEST_F(AccountTest, PollsAreSpreadOverWhatIsLeftOfTheRateLimitWindow) {
  MakeAccount();
  RegisterQueue();
  // 10 requests left and the window resets in 5 s: one request per 0.5 s, not 10 at once and
  // then a wait for the reset.
  FakeResponse events = Events({Typing(0)});
  int64_t wall_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.WallNow().time_since_epoch()).count();
  events.head.ratelimit_remaining = "10";
  events.head.ratelimit_limit = "200";
  events.head.ratelimit_reset = std::to_string(wall_seconds + 5);
  Answer(std::move(events));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  EXPECT_EQ(CallCount(), 2u) << "polled again without pacing";
  Advance(499ms);
  EXPECT_EQ(CallCount(), 2u) << "polled before a tenth of the window passed";
  Advance(1ms);
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().endpoint, "events");
  EXPECT_EQ(LastCall().Param("last_event_id"), "0");
}

TEST_F(AccountTest, ServerErrorBacksOffAndRetriesTheSameQueue) {
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0)}));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  ASSERT_EQ(CallCount(), 3u);

  Answer(FakeResponse::Json(502, "<html>502 Bad Gateway</html>"));
  EXPECT_EQ(Snapshot().state, AccountState::kBackingOff);
  EXPECT_EQ(CallCount(), 3u) << "retried without backing off";

  Advance(1s);  // the backoff cap
  std::vector<CallRecord> calls = Calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[3].endpoint, "events") << "a 5xx must not re-register";
  EXPECT_EQ(calls[3].Param("queue_id"), "q1");
  EXPECT_EQ(calls[3].Param("last_event_id"), "0");
  EXPECT_EQ(QueuesLost(), 0u);
}

// A body nested 200,000 deep (a broken proxy, a hostile site) overflowed the stack of a
// recursive parser and took the process down; it is a bad body of this account's call, retried.
TEST_F(AccountTest, BodiesNestedTwoHundredThousandDeepAreRetriedNotACrash) {
  const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
  MakeAccount();
  Start();
  Answer(FakeResponse::Json(
      200,
      R"({"result":"success","queue_id":"q1","last_event_id":-1,"realm_users":)" + deep + "}"));
  EXPECT_EQ(Snapshot().state, AccountState::kBackingOff);
  EXPECT_THAT(Snapshot().last_error, HasSubstr("nesting deeper than 512"));
  Advance(1s);
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOk("q1")));
  ASSERT_EQ(LastCall().endpoint, "events");

  Answer(FakeResponse::Json(200, R"({"result":"success","events":[)" + deep + "]}"));
  EXPECT_EQ(Snapshot().state, AccountState::kBackingOff);
  EXPECT_THAT(Snapshot().last_error, HasSubstr("nesting deeper than 512"));
  Advance(1s);
  ASSERT_EQ(LastCall().endpoint, "events");
  EXPECT_EQ(LastCall().Param("queue_id"), "q1");
  EXPECT_EQ(LastCall().Param("last_event_id"), "-1");
}

TEST_F(AccountTest, ResumesTheCheckpointedQueueWithoutRegistering) {
  Checkpoint saved;
  saved.site = kSite;
  saved.queue_id = "q-old";
  saved.watermark = 41;
  store_->Stage(kAccount, saved);
  ASSERT_THAT(store_->Commit(), IsOk());
  MakeAccount();
  Start(*store_->Load(kAccount));

  std::vector<CallRecord> calls = Calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].endpoint, "events") << "resumed by registering anew";
  EXPECT_EQ(calls[0].Param("queue_id"), "q-old");
  EXPECT_EQ(calls[0].Param("last_event_id"), "41");

  Answer(Events({Typing(42)}, "q-old"));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  EXPECT_EQ(LastCall().Param("last_event_id"), "42");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, CheckpointWithTheSameRegisterArgumentsResumesItsQueue) {
  Checkpoint saved;
  saved.site = kSite;
  saved.queue_id = "q-old";
  saved.watermark = 41;
  saved.register_fingerprint = RegisterFingerprint(config_);
  MakeAccount();
  Start(saved);
  ASSERT_EQ(CallCount(), 1u);
  EXPECT_EQ(LastCall().endpoint, "events");
  EXPECT_EQ(LastCall().Param("queue_id"), "q-old");
}

TEST_F(AccountTest, ChangedRegisterArgumentsReplaceTheQueueWithAGapAndDeleteTheOldOne) {
  Checkpoint saved;
  saved.site = kSite;
  saved.queue_id = "q-old";
  saved.watermark = 41;
  saved.last_published_message_id = 100;
  saved.register_fingerprint = RegisterFingerprint(config_);
  config_.apply_markdown = !config_.apply_markdown;
  ASSERT_NE(RegisterFingerprint(config_), saved.register_fingerprint);
  MakeAccount();
  Start(saved);
  ASSERT_EQ(LastCall().endpoint, "register") << "the old queue was resumed for a new config";
  Answer(FakeResponse::Json(200, RegisterOk("q-new")));

  // The new queue is durable, with the new fingerprint, before the old one is deleted and
  // before the messages since the last one published are read back.
  std::vector<CallRecord> calls = Calls();
  auto deleted = std::find_if(calls.begin(), calls.end(),
                              [](const CallRecord& c) { return c.method == HttpMethod::kDelete; });
  ASSERT_NE(deleted, calls.end()) << "the old queue was not deleted";
  EXPECT_EQ(deleted->Param("queue_id"), "q-old");
  ASSERT_TRUE(deleted->durable.has_value());
  EXPECT_EQ(deleted->durable->queue_id, "q-new");
  EXPECT_EQ(deleted->durable->register_fingerprint, RegisterFingerprint(config_));
  CallRecord page = LastCall();
  ASSERT_EQ(page.endpoint, "messages");
  EXPECT_EQ(page.Param("anchor"), "100");
  Answer(FakeResponse::Json(200, MessagesPage({101}, true)));
  ASSERT_TRUE(WaitForReports(2));  // the gap record and message 101
  Deliver();
  CallRecord get = LastCall();
  ASSERT_EQ(get.endpoint, "events");
  EXPECT_EQ(get.Param("queue_id"), "q-new");
  EXPECT_EQ(get.Param("last_event_id"), "-1");
  EXPECT_EQ(metrics_
                .GetCounter("zb_registrations_total", "Event queues registered, by reason",
                            {{"account", kAccount}, {"reason", "configuration_changed"}})
                .value(),
            1u);
  EXPECT_EQ(metrics_.GetCounter("zb_gaps_total", "", {{"account", kAccount}}).value(), 1u);
}

TEST_F(AccountTest, CheckpointOfAnotherSiteRegistersAnew) {
  Checkpoint saved;
  saved.site = "https://other.example.com";
  saved.queue_id = "q-other";
  saved.watermark = 7;
  MakeAccount();
  Start(saved);
  CallRecord first = LastCall();
  EXPECT_EQ(first.endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOk("q1")));
  EXPECT_EQ(LastCall().Param("last_event_id"), "-1");
}

TEST_F(AccountTest, RecordKafkaDidNotTakeIsProducedAgainAndHoldsTheWatermark) {
  // The broker is down and records time out in librdkafka: their reports are failures.
  cluster_.SetBrokerDown();
  MakePublisher({{"message.timeout.ms", "300"}});
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0), Typing(1)}));
  ASSERT_TRUE(WaitForReports(2));
  ASSERT_FALSE(AllHeldDelivered());
  Deliver();
  EXPECT_EQ(CallCount(), 2u) << "acknowledged events Kafka did not take";
  AccountSnapshot failed = Snapshot();
  EXPECT_EQ(failed.in_flight, 2u);
  EXPECT_THAT(failed.last_error, HasSubstr("TIMED_OUT"));

  // Once the broker is back, the account's re-produce timer (on the loop's clock) hands the
  // held records to Kafka again; a record that times out again is produced again.
  cluster_.SetBrokerUp();
  for (int round = 0; round < 50 && CallCount() == 2u; ++round) {
    Advance(1s);
    ASSERT_TRUE(WaitForReports(1)) << "round " << round;
    Deliver();
  }
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "1");
  EXPECT_GE(metrics_
                .GetCounter("zb_records_reproduced_total",
                            "Records produced again after Kafka could not take them",
                            {{"account", kAccount}})
                .value(),
            2u);
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, DestroyingAnAccountLeavesNoTimerBehind) {
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0)}));
  ASSERT_TRUE(WaitForReports(1));
  // A failed report arms the account's re-produce timer.
  DeliveryReport failed;
  failed.token = 0;
  failed.outcome = DeliveryReport::Outcome::kRetryable;
  failed.error = "Local: Message timed out";
  OnLoop([&] { account_->OnDelivery(failed); });

  // Removed (a reload that drops it) while the loop goes on: a timer left behind would call
  // into freed memory when it fires.
  size_t pending = 1;
  OnLoop([&] {
    account_.reset();
    pending = loop_->PendingTimersForTest();
  });
  EXPECT_EQ(pending, 0u);
  Advance(2s);
}

TEST_F(AccountTest, LosingAResumedQueueCountsAsAQueueLostRegistration) {
  Checkpoint saved;
  saved.site = kSite;
  saved.queue_id = "q-old";
  saved.watermark = 41;
  MakeAccount();
  Start(saved);
  Answer(FakeResponse::Json(
      400,
      R"({"result":"error","msg":"Bad event queue ID: q-old","code":"BAD_EVENT_QUEUE_ID","queue_id":"q-old"})"));
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  ASSERT_EQ(LastCall().endpoint, "messages");
  Answer(FakeResponse::Json(200, NoMessages()));
  EXPECT_EQ(LastCall().Param("last_event_id"), "-1");
  EXPECT_EQ(QueuesLost(), 1u);
  auto registrations = [&](const std::string& reason) {
    return metrics_
        .GetCounter("zb_registrations_total", "Event queues registered, by reason",
                    {{"account", kAccount}, {"reason", reason}})
        .value();
  };
  EXPECT_EQ(registrations("queue_lost"), 1u);
  EXPECT_EQ(registrations("start"), 0u);
}

TEST_F(AccountTest, FullKafkaQueuePausesTheTransferAndResumesIt) {
  // One record fits in librdkafka's queue, and the broker is down so that it stays there.
  cluster_.SetBrokerDown();
  MakePublisher({{"queue.buffering.max.messages", "1"}});
  MakeAccount();
  RegisterQueue();
  HttpTransport::Handle get = LastCall().handle;
  Answer(Events({Typing(0), Typing(1), Typing(2)}));

  bool paused = false, done = false;
  OnLoop([&] {
    paused = fake_.call(get).paused;
    done = fake_.call(get).done;
  });
  EXPECT_TRUE(paused) << "the transfer went on although Kafka's queue was full";
  EXPECT_FALSE(done);
  EXPECT_EQ(Snapshot().in_flight, 1u);
  EXPECT_EQ(Snapshot().state, AccountState::kPolling);

  // Each delivery makes room for one more record: the transfer resumes, pauses, resumes.
  cluster_.SetBrokerUp();
  // librdkafka may report a delivery before its queue count drops, so a resumed transfer can
  // find the queue still full with nothing left in flight to wake it: the account then tries
  // again after a short delay (fake time here). Reports may also come two at a time.
  auto published = [&] {
    return metrics_
        .GetCounter("zb_events_published_total", "Events Kafka acknowledged",
                    {{"account", kAccount}})
        .value();
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        if (HeldCount() > 0) {
          Deliver();
        } else {
          Advance(100ms);
        }
        return published() == 3;
      },
      kWait))
      << published() << " of 3 records delivered";
  OnLoop([&] {
    paused = fake_.call(get).paused;
    done = fake_.call(get).done;
  });
  EXPECT_FALSE(paused);
  EXPECT_TRUE(done);
  // Every event produced once: three records, and the next GET acknowledges all of them.
  EXPECT_EQ(published(), 3u);
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "2");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

// A typing event of more than `bytes` bytes.
std::string BigTyping(int64_t id, size_t bytes) {
  return R"({"type":"typing","op":"start","pad":")" + std::string(bytes, 'x') + R"(","id":)" +
         std::to_string(id) + "}";
}

uint64_t DeadLettered(MetricsRegistry& metrics) {
  return metrics
      .GetCounter("zb_dead_letter_records_total",
                  "Records Kafka would never take, written to the dead-letter spool",
                  {{"account", kAccount}})
      .value();
}

TEST_F(AccountTest, RecordTheProducerRefusesGoesToTheSpoolAndTheAccountGoesOn) {
  // The producer refuses records above message.max.bytes at once (InvalidArgument).
  MakePublisher({{"message.max.bytes", "1000"}});
  MakeAccount();
  RegisterQueue();
  const std::string big = BigTyping(1, 2000);
  Answer(Events({Typing(0), big, Typing(2)}));
  ASSERT_TRUE(WaitForReports(2));
  ASSERT_TRUE(AllHeldDelivered());
  Deliver();

  std::vector<DeadLetter> spooled = Spooled();
  ASSERT_EQ(spooled.size(), 1u);
  EXPECT_EQ(spooled[0].account, kAccount);
  EXPECT_EQ(spooled[0].event_id, 1);
  EXPECT_EQ(spooled[0].type, "typing");
  EXPECT_EQ(spooled[0].topic, "zulip.typing");
  EXPECT_EQ(spooled[0].key, std::optional<std::string>(kAccount));
  EXPECT_EQ(spooled[0].value, big) << "the spooled bytes differ from Zulip's";
  EXPECT_THAT(spooled[0].error, HasSubstr("MSG_SIZE_TOO_LARGE"));
  EXPECT_FALSE(spooled[0].headers.empty());
  EXPECT_EQ(DeadLettered(metrics_), 1u);
  // The spooled event counts as settled: the next GET acknowledges all three.
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "2");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, RecordTheBrokerRefusesForGoodIsSpooledThenSettled) {
  MakeAccount();
  RegisterQueue();
  cluster_.FailNextProduce(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  Answer(Events({Typing(0)}));
  ASSERT_TRUE(WaitForReports(1));
  {
    std::lock_guard lock(reports_mu_);
    ASSERT_EQ(held_[0].outcome, DeliveryReport::Outcome::kPermanent) << held_[0].error;
  }
  EXPECT_EQ(CallCount(), 2u);
  Deliver();

  EXPECT_EQ(publisher_->HeldFailed(), 0u) << "the record was not released from the producer";
  std::vector<DeadLetter> spooled = Spooled();
  ASSERT_EQ(spooled.size(), 1u);
  EXPECT_EQ(spooled[0].event_id, 0);
  EXPECT_EQ(spooled[0].value, Typing(0));
  EXPECT_THAT(spooled[0].error, HasSubstr("MSG_SIZE_TOO_LARGE"));
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "0");
  EXPECT_EQ(Snapshot().in_flight, 0u);
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, SpoolThatCannotSyncHoldsTheAccountUntilItDoes) {
  MakeAccount();
  RegisterQueue();
  cluster_.FailNextProduce(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  Answer(Events({Typing(0)}));
  ASSERT_TRUE(WaitForReports(1));
  // The next fsync is the spool's: the append is not durable.
  fs_.FailNth(FaultyFs::Op::kSyncFile, 1);
  Deliver();
  EXPECT_EQ(CallCount(), 2u) << "acknowledged an event that is neither in Kafka nor spooled";
  AccountSnapshot held = Snapshot();
  EXPECT_EQ(held.in_flight, 1u);
  EXPECT_THAT(held.last_error, HasSubstr("Input/output error"));
  EXPECT_TRUE(Spooled().empty());

  // The account tries the spool again after a pause; now it takes the record.
  Advance(10s);
  ASSERT_EQ(Spooled().size(), 1u);
  ASSERT_EQ(CallCount(), 3u);
  EXPECT_EQ(LastCall().Param("last_event_id"), "0");
  ExpectEveryGetSentOnlyDurableWatermarks();
}

TEST_F(AccountTest, FullSpoolHoldsTheAccountAndCountsTheRefusal) {
  MakeSpool(/*max_bytes=*/100);
  MakePublisher({{"message.max.bytes", "1000"}});
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0), BigTyping(1, 2000)}));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  AccountSnapshot held = Snapshot();
  EXPECT_THAT(held.last_error, HasSubstr("dead-letter spool full"));
  EXPECT_EQ(metrics_.GetCounter("zb_dead_letter_refused_total", "").value(), 1u);
  EXPECT_EQ(DeadLettered(metrics_), 0u);
  // Event 1 must never be acknowledged while it is neither in Kafka nor in the spool: every
  // retried poll (from the durable watermark, -1) meets it again and holds again.
  for (int i = 0; i < 3; ++i) {
    Advance(1s);
    ASSERT_EQ(CallCount(), 3u + i) << "no retried poll";
    Answer(Events({Typing(0), BigTyping(1, 2000)}));
  }
  for (const CallRecord& call : Calls()) {
    if (call.endpoint == "events") {
      EXPECT_EQ(call.last_event_id(), -1);
    }
  }
  EXPECT_EQ(metrics_.GetCounter("zb_dead_letter_refused_total", "").value(), 4u);
  ExpectEveryGetSentOnlyDurableWatermarks();
}

// A librdkafka mock cluster on which the test decides when a topic exists: the mock creates
// every topic asked for, so a missing one is one whose metadata says UNKNOWN_TOPIC_OR_PART.
class MockClusterWithMissingTopic {
 public:
  explicit MockClusterWithMissingTopic(const std::string& missing) : missing_(missing) {
    char errstr[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    cluster_ = rd_kafka_mock_cluster_new(host_, 1);
    rd_kafka_mock_topic_set_error(cluster_, missing_.c_str(),
                                  RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  }
  ~MockClusterWithMissingTopic() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(host_);
  }
  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  void CreateTopic() {
    rd_kafka_mock_topic_set_error(cluster_, missing_.c_str(), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

 private:
  const std::string missing_;
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

TEST_F(AccountTest, MissingTopicHoldsTheAccountSaysSoOnceAMinuteAndGoesOnOnceItExists) {
  std::mutex lines_mu;
  std::vector<std::string> lines;
  struct RestoreLog {
    ~RestoreLog() { SetLogSinkForTest({}, {}, false); }
  } restore_log;
  SetLogSinkForTest(
      [&](std::string_view line) {
        std::lock_guard lock(lines_mu);
        lines.emplace_back(line);
      },
      {}, false);
  auto all_lines = [&] {
    std::lock_guard lock(lines_mu);
    std::string out;
    for (const std::string& l : lines) out += l;
    return out;
  };
  auto missing_lines = [&] {
    std::lock_guard lock(lines_mu);
    return std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
      return l.find("Kafka topic does not exist") != std::string::npos &&
             l.find("topic=zulip.typing") != std::string::npos;
    });
  };
  MockClusterWithMissingTopic cluster("zulip.typing");
  brokers_ = cluster.bootstraps();
  MakePublisher({{"allow.auto.create.topics", "false"},
                 {"topic.metadata.propagation.max.ms", "100"},
                 {"topic.metadata.refresh.interval.ms", "100"}});
  MakeAccount();
  RegisterQueue();
  Gauge& held = metrics_.GetGauge("zb_kafka_missing_topic", "",
                                  {{"account", kAccount}, {"topic", "zulip.typing"}});
  std::set<HttpTransport::Handle> answered;
  // One turn of the world: answers a GET the account started (the same event, as Zulip would
  // send it again), hands over Kafka's reports, lets a second pass.
  auto round = [&] {
    CallRecord last = LastCall();
    if (last.endpoint == "events" && !answered.count(last.handle)) {
      answered.insert(last.handle);
      Answer(Events({Typing(0)}));
    }
    WaitFor([&] { return HeldCount() > 0; }, 200ms);
    Deliver();
    Advance(1s);
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        round();
        return held.value() == 1;
      },
      kWait))
      << "the missing topic was never reported; last GET sent last_event_id="
      << LastCall().Param("last_event_id") << "; log:\n"
      << all_lines();
  for (int i = 0; i < 5; ++i) round();
  EXPECT_EQ(missing_lines(), 1) << "not reported, or reported more than once a minute";
  for (const CallRecord& call : Calls()) {
    if (call.endpoint == "events") {
      EXPECT_EQ(call.last_event_id(), -1) << "acknowledged an event Kafka does not have";
    }
  }
  EXPECT_THAT(Snapshot().last_error, HasSubstr("zulip.typing"));
  Advance(61s);
  for (int i = 0; i < 3; ++i) round();
  EXPECT_EQ(missing_lines(), 2) << "not reported again after a minute";

  // The operator creates the topic: the account goes on by itself.
  cluster.CreateTopic();
  ASSERT_TRUE(WaitFor(
      [&] {
        round();
        for (const CallRecord& call : Calls()) {
          if (call.endpoint == "events" && call.last_event_id() == 0) return true;
        }
        return false;
      },
      kWait))
      << "the account did not go on once the topic existed";
  EXPECT_EQ(held.value(), 0);
  EXPECT_GE(metrics_
                .GetCounter("zb_kafka_missing_topic_total", "",
                            {{"account", kAccount}, {"topic", "zulip.typing"}})
                .value(),
            2u);
  ExpectEveryGetSentOnlyDurableWatermarks();
}

// The latency histogram observes each acknowledged record once, from the record's timestamp
// (when its event arrived) to the acknowledgement.
TEST_F(AccountTest, DeliveryLatencyHistogramCountsEveryAcknowledgedRecord) {
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0), Heartbeat(1), Typing(2), Typing(3)}));
  ASSERT_TRUE(WaitForReports(3));
  ASSERT_TRUE(AllHeldDelivered());
  Histogram& latency = metrics_.GetHistogram("zb_kafka_delivery_latency_seconds", "", {});
  EXPECT_EQ(latency.count(), 0u) << "observed before the acknowledgement reached the account";

  Advance(2s);  // Kafka's acknowledgements reach the account two seconds after the events
  Deliver({0, 1});
  EXPECT_EQ(latency.count(), 2u);
  Deliver();
  EXPECT_EQ(latency.count(), 3u) << "one observation per acknowledged record, none for heartbeats";
  EXPECT_DOUBLE_EQ(latency.sum(), 6.0);
  const std::vector<double>& bounds = latency.upper_bounds();
  for (size_t i = 0; i < bounds.size(); ++i) {
    // Every observation is 2 s: in the first bucket whose bound is at least 2 s.
    bool first_at_least_two = bounds[i] >= 2.0 && (i == 0 || bounds[i - 1] < 2.0);
    EXPECT_EQ(latency.bucket_count(i), first_at_least_two ? 3u : 0u) << "le=" << bounds[i];
  }
}

TEST_F(AccountTest, PerTypePublishedCountsOnlyAcknowledgedEventsAndNoAccountTypeSeriesByDefault) {
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0), Typing(1)}));
  ASSERT_TRUE(WaitForReports(2));
  Counter& published =
      metrics_.GetCounter("zb_type_events_published_total", "", {{"type", "typing"}});
  EXPECT_EQ(published.value(), 0u) << "counted as published before Kafka acknowledged";
  Deliver();
  EXPECT_EQ(published.value(), 2u);
  EXPECT_EQ(metrics_.GetCounter("zb_type_events_received_total", "", {{"type", "typing"}}).value(),
            2u);
  std::string text = metrics_.RenderPrometheus();
  EXPECT_EQ(text.find("zb_account_type_events"), std::string::npos) << text;
}

TEST_F(AccountTest, PerAccountTypeSeriesAppearWhenConfigured) {
  per_account_type_ = true;
  MakeAccount();
  RegisterQueue();
  Answer(Events({Typing(0), MessageEvent(1, 100), Typing(2)}));
  ASSERT_TRUE(WaitForReports(3));
  Deliver({0, 1});
  std::string text = metrics_.RenderPrometheus();
  EXPECT_NE(
      text.find("zb_account_type_events_received_total{account=\"alice\",type=\"typing\"} 2\n"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find("zb_account_type_events_received_total{account=\"alice\",type=\"message\"} 1\n"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find("zb_account_type_events_published_total{account=\"alice\",type=\"typing\"} 1\n"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find("zb_account_type_events_published_total{account=\"alice\",type=\"message\"} 1\n"),
      std::string::npos)
      << text;
}

TEST_F(AccountTest, LastEventTimeIsTheLastEventNotTheLastHeartbeat) {
  MakeAccount();
  RegisterQueue();
  EXPECT_FALSE(Snapshot().last_event_unix_ms.has_value());
  Answer(Events({Heartbeat(0)}));
  EXPECT_FALSE(Snapshot().last_event_unix_ms.has_value()) << "a heartbeat counted as an event";

  const int64_t event_ms = 1735689600000;  // the fake wall clock, untouched so far
  Answer(Events({Typing(1)}));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  EXPECT_EQ(Snapshot().last_event_unix_ms, event_ms);
  Gauge& gauge = metrics_.GetGauge("zb_last_event_timestamp_seconds", "", {{"account", kAccount}});
  EXPECT_DOUBLE_EQ(gauge.value(), event_ms / 1000.0);

  Advance(30s);
  Answer(Events({Heartbeat(2)}));
  EXPECT_EQ(Snapshot().last_event_unix_ms, event_ms) << "a heartbeat moved the last event time";
  EXPECT_DOUBLE_EQ(gauge.value(), event_ms / 1000.0);
}

// Review of #15 (branch review). A configuration change found at a start while a backfill is
// still to read back (its read-back target and anchor durable): the replacement queue's
// registration recomputes both, from the checkpoint's last published message and from the
// *second* queue's registration time, and so forgets what the first backfill was for. Message
// 100 was allocated before 101 and committed after the poll that delivered 101, so q1 never
// delivered it; q1 was found lost after ten minutes of 502s (a Zulip upgrade). The first run
// registered q2 with "read back to messages sent before T0-300 s" and was stopped before
// reading; the second run, with apply_markdown changed, must still read 100 back.
TEST_F(AccountTest, ReviewAConfigurationChangeDuringABackfillKeepsItsReadBack) {
  MakeAccount();
  RegisterQueue("q1");
  Answer(Events({MessageEvent(0, 101)}));
  ASSERT_TRUE(WaitForReports(1));
  Deliver();
  ASSERT_EQ(LastCall().endpoint, "events");
  Answer(FakeResponse::Json(502, "<html>502 Bad Gateway</html>"));
  Advance(600s);
  ASSERT_EQ(LastCall().endpoint, "events");
  Answer(QueueLost("q1"));
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  ASSERT_EQ(LastCall().endpoint, "messages");
  ASSERT_TRUE(LastCall().durable.has_value());
  EXPECT_EQ(LastCall().durable->backfill_anchor_message_id, 101);
  EXPECT_EQ(LastCall().durable->backfill_rewind_to_unix_seconds, kWallStart - 300);
  OnLoop([&] {
    account_->Stop();
    account_->StageFinalCheckpoint();
    ASSERT_THAT(store_->Commit(), IsOk());
  });
  StatusOr<Checkpoint> saved = store_->Load(kAccount);
  ASSERT_THAT(saved, IsOk());
  ASSERT_TRUE(saved->backfill_active);
  ASSERT_EQ(saved->backfill_rewind_to_unix_seconds, kWallStart - 300);

  OnLoop([&] { account_.reset(); });
  ForgetHeldRecords();
  config_.apply_markdown = !config_.apply_markdown;
  MakeAccount();
  const size_t before = CallCount();
  Start(*saved);
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOk("q3")));
  ASSERT_EQ(LastCall().endpoint, "messages");
  const std::vector<OldMessage> history = {
      {90, kLongAgo}, {100, kWallStart - 1}, {101, kWallStart - 1}};
  AnswerMessagesFrom(history);
  std::vector<CallRecord> calls = Calls();
  std::optional<CallRecord> forward;
  for (size_t i = before; i < calls.size(); ++i) {
    if (calls[i].endpoint == "messages" && calls[i].Param("num_before") == "0") {
      forward = calls[i];
      break;
    }
  }
  ASSERT_TRUE(forward.has_value());
  EXPECT_EQ(forward->Param("anchor"), "90")
      << "the read back after the configuration change stopped above message 100: lost";

  // Drive the backfill to its end and count what it published.
  ASSERT_TRUE(RunBackfillToTheEnd(history));
  EXPECT_EQ(
      2u /* 100 and 101: this run has not published 101 */,
      metrics_.GetCounter("zb_backfilled_messages_total", "", {{"account", kAccount}}).value())
      << "message 100 was never published";
}

// Review of #15 (branch review). settled_poll_unix_ms is the time the last settled poll
// *returned*, but Zulip wrote that poll's events when it was *answered*, which can be long
// before: the transfer is paused while Kafka's queue is full (the first poll after an outage
// streams a big backlog). Message 100 was allocated before 101 and committed just after the
// answer was made, so the answer has 101 but not 100. The transfer takes 400 s; then the queue
// is lost. Reading back to "sent 300 s before the poll returned" stops above 100: lost.
TEST_F(AccountTest, ReviewTheReadBackCountsFromWhenThePollWasAnsweredNotWhenItEnded) {
  cluster_.SetBrokerDown();
  MakePublisher({{"queue.buffering.max.messages", "1"}});
  MakeAccount();
  RegisterQueue("q1");
  Answer(Events({Typing(0), MessageEvent(1, 101)}));
  Advance(400s);  // Kafka is down; the transfer stays paused
  cluster_.SetBrokerUp();
  auto published = [&] {
    return metrics_
        .GetCounter("zb_events_published_total", "Events Kafka acknowledged",
                    {{"account", kAccount}})
        .value();
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        if (HeldCount() > 0) {
          Deliver();
        } else {
          Advance(100ms);
        }
        return published() == 2;
      },
      kWait));
  ASSERT_EQ(LastCall().endpoint, "events");
  EXPECT_EQ(LastCall().Param("last_event_id"), "1");
  // Zulip crashed meanwhile: q1 had event 2 (message 100) and lost it.
  Answer(QueueLost("q1"));
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  ASSERT_EQ(LastCall().endpoint, "messages");
  ASSERT_TRUE(LastCall().durable.has_value());
  EXPECT_LE(LastCall().durable->backfill_rewind_to_unix_seconds, kWallStart - 300)
      << "the read back starts from when the settled poll ended, not when it was answered";
  const size_t before = CallCount();
  const std::vector<OldMessage> history = {
      {90, kLongAgo}, {100, kWallStart - 1}, {101, kWallStart - 1}};
  AnswerMessagesFrom(history);
  std::vector<CallRecord> calls = Calls();
  std::optional<CallRecord> forward;
  for (size_t i = before - 1; i < calls.size(); ++i) {
    if (calls[i].endpoint == "messages" && calls[i].Param("num_before") == "0") {
      forward = calls[i];
      break;
    }
  }
  ASSERT_TRUE(forward.has_value());
  EXPECT_EQ(forward->Param("anchor"), "90") << "message 100 is never read back: lost";

  // Drive the backfill to its end and count what it published.
  ASSERT_TRUE(RunBackfillToTheEnd(history));
  EXPECT_EQ(
      1u /* 100: 101 is in Kafka */,
      metrics_.GetCounter("zb_backfilled_messages_total", "", {{"account", kAccount}}).value())
      << "message 100 was never published";
}

// Review of #15 (branch review). The history floor is the first queue's max_message_id, but a
// message with a lower id whose transaction commits after the registration reaches that queue
// as an event (FACTS §2.2: max_message_id counts committed rows; §3: events go out on commit).
// Here message 99 commits after q1 is registered with max_message_id 100; q1 delivers it, the
// bridge is killed before Kafka acknowledges it, and Zulip loses q1 meanwhile. The backfill
// never read below the floor, 100: message 99 was lost.
TEST_F(AccountTest, ReviewAMessageBelowTheFirstMaxMessageIdThatTheFirstQueueDeliveredIsNotLost) {
  ASSERT_NO_FATAL_FAILURE(FirstStartRegisters("q1", 100));
  // Produced, not acknowledged (Kafka is down), when the bridge gets a SIGTERM; Zulip loses q1
  // while it is stopped. (Killed with -9 instead: the next test.)
  Answer(Events({MessageEvent(0, 99)}));
  ASSERT_TRUE(WaitForReports(1));
  OnLoop([&] {
    account_->Stop();
    account_->StageFinalCheckpoint();
    ASSERT_THAT(store_->Commit(), IsOk());
    account_.reset();
  });
  ForgetHeldRecords();
  StatusOr<Checkpoint> saved = store_->Load(kAccount);
  ASSERT_THAT(saved, IsOk());
  EXPECT_EQ(saved->watermark, -1);
  EXPECT_EQ(saved->history_floor_message_id, 98) << "the floor came down to what q1 delivered";
  MakeAccount();
  Start(*saved);
  ASSERT_EQ(LastCall().endpoint, "events");
  Answer(QueueLost("q1"));
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOkWithMaxMessageId("q2", 100)));
  // (100, the newest at the first registration, is history: this narrow holds only 99.)
  const std::vector<OldMessage> history = {{99, kWallStart - 3}};
  ASSERT_TRUE(RunBackfillToTheEnd(history));
  EXPECT_EQ(
      1u, metrics_.GetCounter("zb_backfilled_messages_total", "", {{"account", kAccount}}).value())
      << "message 99, delivered by q1 and never in Kafka, was not read back: lost";
}

// The kill -9 form of the case above, which a floor by id alone could not close: killed before
// anything but the first queue's registration is durable, the floor is still 100. Message 99
// was sent after the floor's time (the first registration less the read-back margin), so the
// read-back goes below the floor's id to reach it.
TEST_F(AccountTest, AMessageBelowTheFloorThatTheFirstQueueDeliveredSurvivesAKillMinusNine) {
  ASSERT_NO_FATAL_FAILURE(FirstStartRegisters("q1", 100));
  Answer(Events({MessageEvent(0, 99)}));
  ASSERT_TRUE(WaitForReports(1));
  // kill -9: nothing more is made durable; what Kafka had in flight is gone.
  OnLoop([&] { account_.reset(); });
  ForgetHeldRecords();
  StatusOr<Checkpoint> saved = store_->Load(kAccount);
  ASSERT_THAT(saved, IsOk());
  ASSERT_EQ(saved->history_floor_message_id, 100) << "nothing but the registration is durable";
  EXPECT_EQ(saved->history_floor_unix_seconds, kWallStart - 300);
  MakeAccount();
  Start(*saved);
  ASSERT_EQ(LastCall().endpoint, "events");
  Answer(QueueLost("q1"));
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOkWithMaxMessageId("q2", 100)));
  // 90 was sent long before the first start: history, never read back. 99 was sent 3 s before
  // it and committed after it.
  const std::vector<OldMessage> history = {{90, kWallStart - 4000}, {99, kWallStart - 3}};
  ASSERT_TRUE(RunBackfillToTheEnd(history));
  EXPECT_EQ(
      1u, metrics_.GetCounter("zb_backfilled_messages_total", "", {{"account", kAccount}}).value())
      << "message 99, delivered by q1 and never in Kafka, must be read back, and 90 must not";
}

// Review of #15 (branch review), a history flood rather than a loss. An account whose
// fetch_event_types leaves out "message" gets no max_message_id from /register (FACTS §2.2), so
// a quiet account (nothing published yet) has neither an anchor nor a history floor, and its
// first gap reads the organisation's whole history from the oldest message, which
// docs/decisions.md promises never happens ("never the whole history").
TEST_F(AccountTest, ReviewAGapOnAQuietAccountWithoutMaxMessageIdDoesNotReadTheWholeHistory) {
  config_.fetch_event_types = {"realm"};
  MakeAccount();
  RegisterQueue("q1");
  Answer(Events({Heartbeat(0)}));
  ASSERT_EQ(LastCall().endpoint, "events");
  Answer(QueueLost("q1"));
  ASSERT_EQ(LastCall().endpoint, "register");
  Answer(FakeResponse::Json(200, RegisterOk("q2")));
  ASSERT_EQ(LastCall().endpoint, "messages");
  EXPECT_NE(LastCall().Param("anchor"), "oldest")
      << "the first gap of a quiet account reads the organisation's whole history";
}

}  // namespace
}  // namespace zb
