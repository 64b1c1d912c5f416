// ProducerRebuilder: the supervisor's answer to a fatal producer error. librdkafka 2.0.2 can
// kill an idempotent producer after a broker outage (DESIGN.md "Process shape"); the daemon then
// replaces it in-process with ProcessPublisher::Rebuild() (KafkaPublisher's; the simulation's
// model Kafka has one too), which produces every unacknowledged record again. Until a rebuild
// succeeds, every account holds (its produce calls answer Fatal), so a rebuild that fails
// (librdkafka refused to build the new producer: a certificate file gone for a moment, out of
// threads or descriptors) is tried again after an exponential backoff with full jitter, capped
// (daemon/base/backoff.h), for as long as it takes. Each failure is an error log line naming the
// error; zb_kafka_producer_rebuilds_total{result="ok|failed"} counts them.
//
// Threads: loop thread only (construction, Request, the retry timer, destruction). The publisher
// is borrowed and must outlive this object; so must the loop, clock and metrics.
#ifndef ZB_DAEMON_KAFKA_PRODUCER_REBUILDER_H_
#define ZB_DAEMON_KAFKA_PRODUCER_REBUILDER_H_

#include <cstdint>

#include "daemon/base/backoff.h"
#include "daemon/base/clock.h"
#include "daemon/base/metrics.h"
#include "daemon/base/scheduler.h"
#include "daemon/kafka/publisher.h"

namespace zb {

class ProducerRebuilder {
 public:
  ProducerRebuilder(Scheduler& loop, Clock& clock, ProcessPublisher& publisher,
                    MetricsRegistry& metrics, BackoffPolicy backoff, uint64_t seed);
  // Cancels a pending retry.
  ~ProducerRebuilder();
  ProducerRebuilder(const ProducerRebuilder&) = delete;
  ProducerRebuilder& operator=(const ProducerRebuilder&) = delete;

  // The producer hit a fatal error: rebuild it now. While a retry is already scheduled, the
  // request is covered by it (the backoff stands).
  void Request();

  // Consecutive failed rebuilds since the last one that succeeded.
  int failures() const { return backoff_.failures(); }
  // True while a retry is scheduled.
  bool retry_pending() const { return retry_timer_ != 0; }

 private:
  void Attempt();

  Scheduler& loop_;
  ProcessPublisher& publisher_;
  Backoff backoff_;
  Counter& ok_;
  Counter& failed_;
  Scheduler::TimerId retry_timer_ = 0;
};

}  // namespace zb

#endif  // ZB_DAEMON_KAFKA_PRODUCER_REBUILDER_H_
