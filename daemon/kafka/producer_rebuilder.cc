#include "daemon/kafka/producer_rebuilder.h"

#include <chrono>

#include "daemon/base/log.h"

namespace zb {

ProducerRebuilder::ProducerRebuilder(Scheduler& loop, Clock& clock, ProcessPublisher& publisher,
                                     MetricsRegistry& metrics, BackoffPolicy backoff, uint64_t seed)
    : loop_(loop),
      publisher_(publisher),
      backoff_(backoff, clock, seed),
      ok_(metrics.GetCounter("zb_kafka_producer_rebuilds_total",
                             "Rebuilds of the Kafka producer after a fatal error, by result",
                             {{"result", "ok"}})),
      failed_(metrics.GetCounter("zb_kafka_producer_rebuilds_total",
                                 "Rebuilds of the Kafka producer after a fatal error, by result",
                                 {{"result", "failed"}})) {}

ProducerRebuilder::~ProducerRebuilder() { loop_.CancelTimer(retry_timer_); }

void ProducerRebuilder::Request() {
  if (retry_timer_ != 0) return;
  Attempt();
}

void ProducerRebuilder::Attempt() {
  Status rebuilt = publisher_.Rebuild();
  if (rebuilt.ok()) {
    ok_.Inc();
    backoff_.Reset();
    LogInfo("Kafka producer rebuilt; unacknowledged records produced again",
            {{"generation", publisher_.Generation()}});
    return;
  }
  failed_.Inc();
  // Every account holds until a rebuild works, so keep trying, and say so each time: an
  // operator sees the error (a certificate file gone, out of threads) and can fix it.
  Clock::Duration delay = backoff_.NextDelay();
  LogError("Kafka producer rebuild failed; every account holds until it works, retrying",
           {{"error", rebuilt.message()},
            {"failures", backoff_.failures()},
            {"retry_in_ms", std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()}});
  retry_timer_ = loop_.AddTimer(delay, [this] {
    retry_timer_ = 0;
    Attempt();
  });
}

}  // namespace zb
