// HealthSource: what the health server reads of the running daemon, and nothing more. The
// Supervisor implements it; the health server (health_server.h) sees only this, so the two
// depend one way: supervisor -> health_server -> health_source.
//
// Threads: every method is called from the health server's listener thread while the loop
// runs on the main thread, so an implementation answers from atomics or copies taken under
// its own lock, never from loop-owned state directly.
#ifndef ZB_DAEMON_PROCESS_HEALTH_SOURCE_H_
#define ZB_DAEMON_PROCESS_HEALTH_SOURCE_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "daemon/base/metrics.h"
#include "daemon/pipeline/account.h"

namespace zb {

// What the last reload did, for /readyz and `zulip-bridge reload`.
struct ReloadOutcome {
  uint64_t generation = 0;  // reloads attempted since start; 0: none yet
  bool applied = false;
  std::string message;  // a summary when applied, why not otherwise
};

class HealthSource {
 public:
  virtual ~HealthSource() = default;

  // True once config, state and producer are up (what READY=1 and /readyz say).
  virtual bool ready() const = 0;
  // True when the event loop turned within `within` (what /healthz says).
  virtual bool LoopAliveWithin(std::chrono::seconds within) const = 0;
  virtual ReloadOutcome LastReload() const = 0;
  // A recent snapshot of every account (refreshed by the loop about once a second).
  virtual std::vector<AccountSnapshot> AccountSnapshots() const = 0;
  // The registry /metrics renders; it is safe from any thread (metrics.h).
  virtual MetricsRegistry& metrics() = 0;
};

}  // namespace zb

#endif  // ZB_DAEMON_PROCESS_HEALTH_SOURCE_H_
