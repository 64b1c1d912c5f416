#include "daemon/pipeline/gap_records.h"

#include <chrono>
#include <utility>

#include "daemon/base/log.h"
#include "daemon/pipeline/record_headers.h"

namespace zb {
namespace {

// How long a gap record the publisher refused waits before it is produced again.
constexpr auto kRetryDelay = std::chrono::seconds(1);

}  // namespace

GapRecords::GapRecords(Env env) : env_(std::move(env)) {
  BuildControlHeaders({env_.site, env_.account, env_.bridge_version}, "gap", headers_);
}

GapRecords::~GapRecords() { env_.loop.CancelTimer(retry_timer_); }

void GapRecords::Restore(const std::vector<std::string>& records) {
  for (const std::string& json : records) pending_.push_back({json, 0});
}

void GapRecords::Add(std::string json) { pending_.push_back({std::move(json), 0}); }

void GapRecords::Stop() {
  stopped_ = true;
  env_.loop.CancelTimer(retry_timer_);
  retry_timer_ = 0;
}

void GapRecords::ProduceAll() {
  env_.loop.CancelTimer(retry_timer_);
  retry_timer_ = 0;
  bool retry = false;
  std::vector<std::pair<OwnedKafkaRecord, std::string>> refused;
  for (Pending& pending : pending_) {
    if (pending.token != 0) continue;
    KafkaRecord record;
    record.topic = env_.control_topic;
    record.key = env_.account;
    record.value = pending.json;
    record.headers = headers_;
    record.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              env_.clock.WallNow().time_since_epoch())
                              .count();
    record.token = env_.next_token();
    Status produced = env_.publisher.Produce(record);
    if (produced.IsInvalidArgument()) {
      // Never to be taken: to the spool like any record, and settled once it is there.
      pending.token = record.token;
      env_.produced(record.token, record.timestamp_ms);
      refused.emplace_back(OwnedCopyOf(record), produced.message());
      continue;
    }
    if (!produced.ok()) {
      // Kept (durable in the checkpoint) and tried again.
      LogAccount(produced.IsUnavailable() ? LogLevel::kDebug : LogLevel::kError, env_.account,
                 "could not produce a gap record yet; trying again",
                 {{"error", produced.message()}});
      retry = true;
      continue;
    }
    pending.token = record.token;
    env_.produced(record.token, record.timestamp_ms);
  }
  // After the loop: a spooled record settles at once and leaves pending_.
  for (auto& [record, error] : refused) {
    uint64_t token = record.token;
    env_.refused.DeadLetter(token, -1, std::move(record), std::move(error));
  }
  if (retry && !stopped_) {
    retry_timer_ = env_.loop.AddTimer(kRetryDelay, [this] { ProduceAll(); });
  }
}

bool GapRecords::OnSettled(uint64_t token) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->token == token) {
      pending_.erase(it);
      changed_ = true;
      return true;
    }
  }
  return false;
}

std::vector<std::string> GapRecords::Durable() const {
  std::vector<std::string> records;
  for (const Pending& pending : pending_) records.push_back(pending.json);
  return records;
}

}  // namespace zb
