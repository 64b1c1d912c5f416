#include "daemon/kafka/kafka_publisher.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "daemon/base/log.h"
#include "daemon/base/mutex.h"

namespace zb {
namespace {

// Defaults filled in when kafka.properties leaves them unset. linger.ms: a few milliseconds of
// batching costs nothing next to a long-poll round trip and makes batches of a burst.
// message.timeout.ms: librdkafka's own default, written down; a timed-out record is produced
// again, so the value only decides how often an outage is noticed per record.
// queue.buffering.max.*: the bound on what one response may hold in memory; the transfer pauses
// on QUEUE_FULL (DESIGN.md), so 64 MiB of values is the most a huge first poll after an outage
// can take. The message count matters as much: each record also carries its topic, key and
// eight headers (about 2 KiB with librdkafka's own copy), so 100,000 records in flight peaked at
// 270 MiB RSS draining a 100,000-event backlog, and 20,000 at 76 MiB for ~15% less throughput
// (bench/pipeline_bench.py, README "Performance").
constexpr std::pair<const char*, const char*> kDefaultProperties[] = {
    {"linger.ms", "5"},
    {"message.timeout.ms", "300000"},
    {"queue.buffering.max.messages", "20000"},
    {"queue.buffering.max.kbytes", "65536"},
};

std::string ErrorText(rd_kafka_resp_err_t err, std::string_view detail = {}) {
  std::string text = rd_kafka_err2name(err);
  text += ": ";
  if (detail.empty()) {
    text += rd_kafka_err2str(err);
  } else {
    text += detail;
  }
  return text;
}

// How a delivery report's error is settled. An error that is not listed is kRetryable: the
// record is kept and tried again, which holds its account (loud, visible, nothing lost) rather
// than sending a record that might have gone through to the dead-letter spool.
//
//   librdkafka error                        outcome        why
//   NO_ERROR                                kDelivered     acked by all in-sync replicas
//   _MSG_TIMED_OUT, _TIMED_OUT,             kRetryable     not written within message.timeout.ms
//   _TIMED_OUT_QUEUE, REQUEST_TIMED_OUT                    (broker down or slow)
//   _TRANSPORT, _ALL_BROKERS_DOWN,          kRetryable     connection trouble
//   _RESOLVE, NETWORK_EXCEPTION,
//   BROKER_NOT_AVAILABLE
//   LEADER_NOT_AVAILABLE,                   kRetryable     leadership moving; librdkafka retries
//   NOT_LEADER_FOR_PARTITION,                              these itself and only reports them
//   NOT_ENOUGH_REPLICAS(_AFTER_APPEND),                    once it gives up
//   KAFKA_STORAGE_ERROR
//   _PURGE_QUEUE, _PURGE_INFLIGHT,          kRetryable     we purged or destroyed the producer
//   _DESTROY                                               (Rebuild, shutdown)
//   _FATAL, OUT_OF_ORDER_SEQUENCE_NUMBER,   kRetryable     the producer, not the record, is
//   UNKNOWN_PRODUCER_ID,                                   broken: Rebuild() and produce again
//   INVALID_PRODUCER_EPOCH
//   _UNKNOWN_TOPIC, UNKNOWN_TOPIC_OR_PART   kMissingTopic  topic absent (auto-creation off):
//                                                          hold the account, not dead-letter
//   MSG_SIZE_TOO_LARGE, INVALID_MSG_SIZE,   kPermanent     larger than the broker or topic takes
//   RECORD_LIST_TOO_LARGE
//   TOPIC_AUTHORIZATION_FAILED,             kPermanent     not authorised to write it
//   CLUSTER_AUTHORIZATION_FAILED
//   INVALID_RECORD, INVALID_MSG, _BAD_MSG,  kPermanent     the broker rejects the record itself
//   INVALID_TIMESTAMP, POLICY_VIOLATION,                   (or the topic's name: TOPIC_EXCEPTION)
//   UNSUPPORTED_FOR_MESSAGE_FORMAT,
//   TOPIC_EXCEPTION, _INVALID_ARG,
//   _UNKNOWN_PARTITION
DeliveryReport::Outcome Classify(rd_kafka_resp_err_t err) {
  using Outcome = DeliveryReport::Outcome;
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return Outcome::kDelivered;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
      return Outcome::kMissingTopic;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return Outcome::kPermanent;
    default:
      // The retryable rows of the table, and anything unlisted.
      return Outcome::kRetryable;
  }
}

// What an immediately refused produce call means to the caller.
Status ProduceErrorToStatus(rd_kafka_resp_err_t err, std::string_view topic) {
  std::string where = "produce to " + std::string(topic) + ": ";
  switch (err) {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return Status::Unavailable("queue full");
    case RD_KAFKA_RESP_ERR__FATAL:
      return Status::Fatal(where + ErrorText(err));
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
      return Status::NotFound(where + ErrorText(err));
    default:
      // Unavailable is kept for "queue full" alone: the caller waits for deliveries to make
      // room, and a refusal that deliveries do not cure would stall it.
      return Status::InvalidArgument(where + ErrorText(err));
  }
}

// The effective value of a numeric property (librdkafka validated it when the producer was
// built), or `fallback` if it does not parse as a number.
int64_t NumericProperty(const std::map<std::string, std::string>& properties,
                        const std::string& name, int64_t fallback) {
  auto it = properties.find(name);
  if (it == properties.end()) return fallback;
  int64_t value = 0;
  const std::string& text = it->second;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value <= 0) return fallback;
  return value;
}

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using KafkaConf = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

}  // namespace

struct KafkaPublisher::Impl {
  // One record the publisher holds, from Produce() until it is delivered or released. Its
  // address is the message opaque, and librdkafka reads `record.value` in place (no copy).
  struct Held {
    OwnedKafkaRecord record;
    uint64_t seq = 0;  // production order, for Rebuild
    bool failed = false;
  };

  // The librdkafka opaque of one producer generation: reports of a replaced producer are
  // recognised by it and dropped.
  struct Generation {
    Impl* impl = nullptr;
    uint64_t number = 0;
  };

  explicit Impl(KafkaPublisherOptions opts) : options(std::move(opts)) {
    const auto effective = KafkaPublisher::EffectiveProperties(options);
    max_records =
        static_cast<size_t>(NumericProperty(effective, "queue.buffering.max.messages", 100000));
    max_bytes = static_cast<size_t>(
        NumericProperty(effective, "queue.buffering.max.kbytes", 1048576) * 1024);
  }

  static size_t Bytes(const OwnedKafkaRecord& r) {
    return r.value.size() + (r.key ? r.key->size() : 0);
  }

  // Whether one more record of `bytes` fits in what the publisher may own. Caller holds `mu`.
  // An empty publisher takes any record, so that one larger than the byte limit is refused by
  // librdkafka (and dead-lettered) rather than waiting for room that can never come.
  bool HasRoomFor(size_t bytes) const ZB_REQUIRES(mu) {
    if (held_records.empty()) return true;
    return held_records.size() < max_records && held_bytes + bytes <= max_bytes;
  }

  void Forget(std::unordered_map<uint64_t, std::unique_ptr<Held>>::iterator it) ZB_REQUIRES(mu) {
    held_bytes -= Bytes(it->second->record);
    held_records.erase(it);
  }

  ~Impl() {
    StopPollThread();
    // Reports the destruction may make concern records about to be freed: drop them.
    shutting_down.store(true);
    handle.reset();
  }

  StatusOr<KafkaHandle> MakeHandle(Generation* generation) {
    KafkaConf conf(rd_kafka_conf_new());
    char errstr[512];
    auto set = [&](const std::string& key, const std::string& value) -> Status {
      if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr, sizeof errstr) !=
          RD_KAFKA_CONF_OK) {
        return Status::InvalidArgument("kafka property " + key + ": " + errstr);
      }
      return Status::Ok();
    };
    for (const auto& [key, value] : KafkaPublisher::EffectiveProperties(options)) {
      ZB_RETURN_IF_ERROR(set(key, value));
    }
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &Impl::OnDeliveryTrampoline);
    rd_kafka_conf_set_error_cb(conf.get(), &Impl::OnErrorTrampoline);
    // Without a log callback librdkafka writes its own lines to stderr, which breaks the
    // daemon's log format (and journald's priorities).
    rd_kafka_conf_set_log_cb(conf.get(), &Impl::OnLogTrampoline);
    if (options.on_statistics) {
      rd_kafka_conf_set_stats_cb(conf.get(), &Impl::OnStatisticsTrampoline);
    }
    rd_kafka_conf_set_opaque(conf.get(), generation);
    // rd_kafka_new takes the configuration only when it succeeds.
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr, sizeof errstr);
    if (rk == nullptr) return Status::InvalidArgument(std::string("kafka producer: ") + errstr);
    // rk owns the configuration now; release() hands back the pointer rd_kafka_new took.
    (void)conf.release();
    return KafkaHandle(rk);
  }

  // Hands `held` to librdkafka. Caller holds `mu`.
  Status Enqueue(Held& held) ZB_REQUIRES(mu) {
    const OwnedKafkaRecord& r = held.record;
    std::vector<rd_kafka_vu_t> vus(5 + (r.key ? 1 : 0) + (r.headers.empty() ? 0 : 1));
    size_t i = 0;
    vus[i].vtype = RD_KAFKA_VTYPE_TOPIC;
    vus[i++].u.cstr = r.topic.c_str();
    vus[i].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[i].u.mem.ptr = const_cast<char*>(r.value.data());
    vus[i++].u.mem.size = r.value.size();
    // No RD_KAFKA_MSG_F_COPY: the value lives in `held` until the report; the key and headers
    // are small and librdkafka always copies them.
    vus[i].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[i++].u.i = 0;
    vus[i].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
    vus[i++].u.i64 = r.timestamp_ms;
    vus[i].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vus[i++].u.ptr = &held;
    if (r.key) {
      vus[i].vtype = RD_KAFKA_VTYPE_KEY;
      vus[i].u.mem.ptr = const_cast<char*>(r.key->data());
      vus[i++].u.mem.size = r.key->size();
    }
    // One header list of our own (VTYPE_HEADERS), not one VTYPE_HEADER per header: with the
    // latter, librdkafka 2.0.2 frees the list twice when the partitioner refuses the record (a
    // topic it knows to be missing), confluentinc/librdkafka#4627; AccountTest's missing-topic
    // test crashed on it under ASan. The list is librdkafka's once the produce succeeds and
    // still ours when it fails.
    rd_kafka_headers_t* headers = nullptr;
    if (!r.headers.empty()) {
      headers = rd_kafka_headers_new(r.headers.size());
      for (const auto& [name, value] : r.headers) {
        rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                            static_cast<ssize_t>(value.size()));
      }
      vus[i].vtype = RD_KAFKA_VTYPE_HEADERS;
      vus[i++].u.headers = headers;
    }
    rd_kafka_error_t* error = rd_kafka_produceva(handle.get(), vus.data(), vus.size());
    if (error == nullptr) return Status::Ok();
    if (headers != nullptr) rd_kafka_headers_destroy(headers);
    rd_kafka_resp_err_t err = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
    // A dead producer refuses with the code of the error that killed it, not ERR__FATAL.
    char cause[512];
    if (rd_kafka_fatal_error(handle.get(), cause, sizeof cause) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Fatal("produce to " + r.topic + ": producer is dead: " + cause);
    }
    return ProduceErrorToStatus(err, r.topic);
  }

  Status Produce(const KafkaRecord& record) {
    auto held = std::make_unique<Held>();
    held->record = OwnedCopyOf(record);
    OwnedKafkaRecord& r = held->record;

    MutexLock lock(&mu);
    if (held_records.contains(record.token)) {
      return Status::InvalidArgument("produce: token " + std::to_string(record.token) +
                                     " is already held");
    }
    // Records held after a failed delivery are out of librdkafka's queue but still in memory:
    // they count against the same limits, or every message.timeout.ms of an outage would let
    // another queue's worth in (issue #15). A full publisher says what a full librdkafka says.
    if (!HasRoomFor(Bytes(r))) return Status::Unavailable("queue full");
    ZB_RETURN_IF_ERROR(Enqueue(*held));
    held->seq = next_seq++;
    ++in_flight;
    held_bytes += Bytes(r);
    held_records.emplace(record.token, std::move(held));
    return Status::Ok();
  }

  Status Reproduce(uint64_t token) {
    MutexLock lock(&mu);
    auto it = held_records.find(token);
    if (it == held_records.end() || !it->second->failed) {
      return Status::NotFound("reproduce: no failed record has token " + std::to_string(token));
    }
    Status queued = Enqueue(*it->second);
    // NotFound from Reproduce means "no such held record"; a topic still missing is a reason
    // to try again later, as the caller does for a full queue.
    if (queued.IsNotFound()) return Status::Unavailable(queued.message());
    ZB_RETURN_IF_ERROR(queued);
    it->second->failed = false;
    --failed_count;
    ++in_flight;
    return Status::Ok();
  }

  StatusOr<OwnedKafkaRecord> Release(uint64_t token) {
    MutexLock lock(&mu);
    auto it = held_records.find(token);
    if (it == held_records.end() || !it->second->failed) {
      return Status::NotFound("release: no failed record has token " + std::to_string(token));
    }
    OwnedKafkaRecord record = std::move(it->second->record);
    held_bytes -= Bytes(record);
    held_records.erase(it);
    --failed_count;
    return record;
  }

  Status Rebuild() {
    StopPollThread();
    auto next = std::make_unique<Generation>(Generation{this, generation->number + 1});
    StatusOr<KafkaHandle> fresh =
        fail_rebuilds_for_test.load() > 0
            ? StatusOr<KafkaHandle>(Status::InvalidArgument(
                  "kafka producer: refused by FailNextRebuildsForTest (" +
                  std::to_string(fail_rebuilds_for_test.fetch_sub(1)) + " left)"))
            : MakeHandle(next.get());
    if (!fresh.ok()) {
      StartPollThread();
      return fresh.status();
    }
    std::unique_ptr<Generation> old_generation;  // outlives old_handle, which points at it
    KafkaHandle old_handle;
    Status result;
    std::vector<DeliveryReport> unqueued;
    {
      MutexLock lock(&mu);
      old_handle = std::move(handle);
      old_generation = std::move(generation);
      handle = std::move(*fresh);
      generation = std::move(next);
      std::vector<Held*> order;
      order.reserve(held_records.size());
      for (auto& [token, held] : held_records) order.push_back(held.get());
      std::sort(order.begin(), order.end(),
                [](const Held* a, const Held* b) { return a->seq < b->seq; });
      for (Held* held : order) {
        Status status = result.ok() ? Enqueue(*held) : result;
        if (!status.ok()) {
          if (result.ok()) result = status;
          if (!held->failed) {
            held->failed = true;
            ++failed_count;
            --in_flight;
            unqueued.push_back({held->record.token, DeliveryReport::Outcome::kRetryable,
                                "rebuild: " + status.message(), -1, -1, held->record.topic});
          }
          continue;
        }
        if (held->failed) {
          held->failed = false;
          --failed_count;
          ++in_flight;
        }
      }
    }
    // The old producer still points at values held here: purge it and destroy it before
    // anything can free them. Its reports carry the old generation and are dropped.
    rd_kafka_purge(old_handle.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(old_handle.get(), 0);
    old_handle.reset();
    ++rebuilds;
    if (!unqueued.empty()) options.on_delivery(std::move(unqueued));
    StartPollThread();
    return result;
  }

  Status Flush(std::chrono::milliseconds timeout) {
    // Not rd_kafka_flush(): it would serve delivery reports on this thread. The poll thread goes
    // on serving them; linger.ms is short, so waiting for the count is enough.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    MutexLock lock(&mu);
    while (in_flight != 0) {
      if (!flushed.WaitUntil(&mu, deadline) && in_flight != 0) break;
    }
    if (in_flight == 0) return Status::Ok();
    return Status::Unavailable("flush: " + std::to_string(in_flight) +
                               " records still in flight after " + std::to_string(timeout.count()) +
                               " ms");
  }

  void StartPollThread() {
    stop_polling.store(false);
    poll_thread = std::thread([this] { PollLoop(); });
  }

  void StopPollThread() {
    stop_polling.store(true);
    if (poll_thread.joinable()) poll_thread.join();
  }

  void PollLoop() {
    const int interval_ms = static_cast<int>(options.poll_interval.count());
    while (!stop_polling.load()) {
      rd_kafka_poll(handle.get(), interval_ms);
      if (batch.empty()) continue;
      size_t reported = batch.size();
      options.on_delivery(std::move(batch));
      batch.clear();
      MutexLock lock(&mu);
      handing_over.clear();
      // A record leaves InFlight() only once the owner has its report, so that Flush() returning
      // OK means every report was handed over.
      in_flight -= reported;
      if (in_flight == 0) flushed.SignalAll();
    }
  }

  // Poll thread.
  void OnDelivery(const Generation& gen, const rd_kafka_message_t& message) {
    if (shutting_down.load()) return;
    MutexLock lock(&mu);
    if (gen.number != generation->number) return;
    auto* held = static_cast<Held*>(message._private);
    DeliveryReport report;
    report.token = held->record.token;
    report.outcome = Classify(message.err);
    report.partition = message.partition;
    report.offset = message.offset;
    if (report.outcome == DeliveryReport::Outcome::kDelivered) {
      Forget(held_records.find(report.token));
      handing_over.insert(report.token);
    } else {
      // Not rd_kafka_message_errstr(): for a produced message it returns the payload.
      report.error = ErrorText(message.err);
      report.topic = held->record.topic;
      held->failed = true;
      ++failed_count;
    }
    batch.push_back(std::move(report));
  }

  void OnError(rd_kafka_t* rk, int err, const char* reason) {
    ++error_count;
    KafkaErrorReport report;
    auto code = static_cast<rd_kafka_resp_err_t>(err);
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
      report.fatal = true;
      char cause[512];
      rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(rk, cause, sizeof cause);
      report.error = ErrorText(fatal, cause);
    } else {
      report.error = ErrorText(code, reason ? reason : "");
    }
    if (options.on_error) options.on_error(report);
  }

  static void OnDeliveryTrampoline(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    auto* gen = static_cast<Generation*>(opaque);
    gen->impl->OnDelivery(*gen, *message);
  }
  static void OnErrorTrampoline(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* gen = static_cast<Generation*>(opaque);
    gen->impl->OnError(rk, err, reason);
  }
  // librdkafka's syslog levels. Its errors (level 3) come through the error callback too,
  // which the owner logs as warnings or errors: here they are info, so that an outage is not
  // said twice at the same level.
  static void OnLogTrampoline(const rd_kafka_t* rk, int level, const char* facility,
                              const char* message) {
    LogLevel ours = level <= 2   ? LogLevel::kError
                    : level == 4 ? LogLevel::kWarn
                    : level <= 6 ? LogLevel::kInfo
                                 : LogLevel::kDebug;
    Log(ours, "librdkafka",
        {{"facility", facility}, {"client", rd_kafka_name(rk)}, {"detail", message}});
  }
  static int OnStatisticsTrampoline(rd_kafka_t*, char* json, size_t len, void* opaque) {
    auto* gen = static_cast<Generation*>(opaque);
    gen->impl->options.on_statistics(std::string_view(json, len));
    return 0;  // librdkafka frees the JSON
  }

  const KafkaPublisherOptions options;

  std::thread poll_thread;
  std::atomic<bool> stop_polling{false};
  std::atomic<bool> shutting_down{false};
  std::atomic<uint64_t> error_count{0};
  std::atomic<uint64_t> rebuilds{0};
  std::atomic<int> fail_rebuilds_for_test{0};
  // Reports of the current rd_kafka_poll() call; poll thread only.
  std::vector<DeliveryReport> batch;

  mutable Mutex mu;
  CondVar flushed;
  // Replaced only by Rebuild, with the poll thread stopped and `mu` held.
  std::unique_ptr<Generation> generation;
  KafkaHandle handle;
  std::unordered_map<uint64_t, std::unique_ptr<Held>> held_records ZB_GUARDED_BY(mu);
  size_t held_bytes ZB_GUARDED_BY(mu) = 0;  // values and keys of held_records
  // Delivered records of the current poll turn whose reports are not yet handed over.
  std::unordered_set<uint64_t> handing_over ZB_GUARDED_BY(mu);
  // The effective queue.buffering.max.messages and .kbytes (in bytes): the most the publisher
  // owns at once, in librdkafka's queue and held after a failure together.
  size_t max_records = 0;
  size_t max_bytes = 0;
  uint64_t next_seq ZB_GUARDED_BY(mu) = 0;
  size_t in_flight ZB_GUARDED_BY(mu) = 0;     // produced, report not yet handed to the owner
  size_t failed_count ZB_GUARDED_BY(mu) = 0;  // held after a failed report
};

Status KafkaPublisher::CheckProperties(const std::map<std::string, std::string>& properties) {
  // The guarantee rests on these two: refuse, don't override silently, so the operator learns
  // that the configuration says something the daemon will not do.
  if (auto it = properties.find("enable.idempotence");
      it != properties.end() && it->second != "true") {
    return Status::InvalidArgument("kafka property enable.idempotence=" + it->second +
                                   ": must be true (records could be duplicated or reordered)");
  }
  for (const char* acks : {"acks", "request.required.acks"}) {
    if (auto it = properties.find(acks);
        it != properties.end() && it->second != "all" && it->second != "-1") {
      return Status::InvalidArgument(std::string("kafka property ") + acks + "=" + it->second +
                                     ": must be all (a record acknowledged by one broker can "
                                     "be lost after Zulip was told it was received)");
    }
  }
  KafkaConf conf(rd_kafka_conf_new());
  for (const auto& [key, value] : properties) {
    char errstr[512];
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      // librdkafka's words may quote the value; the secret properties (sasl.password,
      // ssl.key.password...) are free-form strings it never rejects, so no secret gets here.
      return Status::InvalidArgument("kafka property " + key + ": " + errstr);
    }
  }
  return Status::Ok();
}

std::map<std::string, std::string> KafkaPublisher::EffectiveProperties(
    const KafkaPublisherOptions& options) {
  std::map<std::string, std::string> effective;
  for (const auto& [key, value] : kDefaultProperties) effective[key] = value;
  for (const auto& [key, value] : options.properties) effective[key] = value;
  if (!options.brokers.empty()) effective["bootstrap.servers"] = options.brokers;
  effective["enable.idempotence"] = "true";
  effective["acks"] = "all";
  effective.erase("request.required.acks");  // an alias of acks
  return effective;
}

StatusOr<std::unique_ptr<KafkaPublisher>> KafkaPublisher::Create(KafkaPublisherOptions options) {
  if (!options.on_delivery) return Status::InvalidArgument("kafka publisher: no on_delivery");
  ZB_RETURN_IF_ERROR(CheckProperties(options.properties));
  auto impl = std::make_unique<Impl>(std::move(options));
  impl->generation = std::make_unique<Impl::Generation>(Impl::Generation{impl.get(), 0});
  StatusOr<KafkaHandle> handle = impl->MakeHandle(impl->generation.get());
  if (!handle.ok()) return handle.status();
  impl->handle = std::move(*handle);
  impl->StartPollThread();
  return std::unique_ptr<KafkaPublisher>(new KafkaPublisher(std::move(impl)));
}

KafkaPublisher::KafkaPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaPublisher::~KafkaPublisher() = default;

Status KafkaPublisher::Produce(const KafkaRecord& record) { return impl_->Produce(record); }
Status KafkaPublisher::Reproduce(uint64_t token) { return impl_->Reproduce(token); }
StatusOr<OwnedKafkaRecord> KafkaPublisher::Release(uint64_t token) { return impl_->Release(token); }
Status KafkaPublisher::Rebuild() { return impl_->Rebuild(); }
Status KafkaPublisher::Flush(std::chrono::milliseconds timeout) { return impl_->Flush(timeout); }

size_t KafkaPublisher::InFlight() const {
  MutexLock lock(&impl_->mu);
  return impl_->in_flight;
}
size_t KafkaPublisher::HeldFailed() const {
  MutexLock lock(&impl_->mu);
  return impl_->failed_count;
}
size_t KafkaPublisher::Held() const {
  MutexLock lock(&impl_->mu);
  return impl_->held_records.size();
}
std::vector<uint64_t> KafkaPublisher::UnsettledTokens() const {
  MutexLock lock(&impl_->mu);
  std::vector<uint64_t> tokens;
  tokens.reserve(impl_->held_records.size() + impl_->handing_over.size());
  for (const auto& [token, held] : impl_->held_records) tokens.push_back(token);
  tokens.insert(tokens.end(), impl_->handing_over.begin(), impl_->handing_over.end());
  return tokens;
}
uint64_t KafkaPublisher::ErrorCount() const { return impl_->error_count.load(); }
uint64_t KafkaPublisher::Generation() const { return impl_->rebuilds.load(); }

void KafkaPublisher::FailNextRebuildsForTest(int count) {
  impl_->fail_rebuilds_for_test.store(count);
}

Status KafkaPublisher::TriggerFatalErrorForTest(std::string_view reason) {
  MutexLock lock(&impl_->mu);
  rd_kafka_resp_err_t err =
      rd_kafka_test_fatal_error(impl_->handle.get(), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                std::string(reason).c_str());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Fatal(ErrorText(err));
  return Status::Ok();
}

}  // namespace zb
