// HealthServer: the operator's HTTP window into the daemon, on its own thread and its own
// (loopback by default) address: /healthz, /readyz and /metrics.
//
//   /healthz  200 while the event loop turns (its snapshot is fresh); 503 when it has stalled.
//   /readyz   200 once config, state directory and producer are up, whatever Zulip and Kafka
//             are doing (they may be down at boot); 503 before. The JSON body lists every
//             account with its state, queue, watermark and, when parked, the reason; a parked
//             account never makes the daemon unready.
//   /metrics  Prometheus text format.
//
// The only TU that includes cpp-httplib. It reads the daemon through HealthSource
// (health_source.h), which the Supervisor implements. Threads: its own listener thread; every
// HealthSource method is safe from it.
#ifndef ZB_DAEMON_PROCESS_HEALTH_SERVER_H_
#define ZB_DAEMON_PROCESS_HEALTH_SERVER_H_

#include <memory>
#include <thread>

#include "daemon/base/status.h"
#include "daemon/config/config.h"

namespace zb {

class HealthSource;

class HealthServer {
 public:
  // Binds `config.host:config.port` (port 0: any free port) and starts serving. IOError naming
  // the address when it cannot bind.
  static StatusOr<std::unique_ptr<HealthServer>> Start(const HttpConfig& config,
                                                       HealthSource& source);
  // Stops the listener and joins its thread.
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // The bound port (useful with port 0).
  int port() const { return port_; }

 private:
  struct Impl;
  HealthServer(std::unique_ptr<Impl> impl, int port);
  std::unique_ptr<Impl> impl_;
  int port_;
};

}  // namespace zb

#endif  // ZB_DAEMON_PROCESS_HEALTH_SERVER_H_
