// `zulip-bridge reload`: asks the running daemon to read its configuration again and waits
// for the outcome, so that `systemctl reload` (ExecReload) fails when the new configuration
// was not applied and says why.
//
// The daemon answers on its HTTP listener: /readyz carries its pid and the outcome of its
// last reload (a generation that counts reloads, applied or not, and a message). The command
// reads them, sends SIGHUP to that pid, and waits until the generation moves on. SIGHUP rather
// than an HTTP call: the listener may be reachable from the network (in a container), and a
// signal can only come from the daemon's own user or root.
#ifndef ZB_DAEMON_OPS_RELOAD_COMMAND_H_
#define ZB_DAEMON_OPS_RELOAD_COMMAND_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/base/status.h"
#include "daemon/config/config.h"

namespace zb {

// What /readyz says about reloads.
struct ReloadState {
  int64_t pid = 0;
  uint64_t generation = 0;
  bool applied = false;
  std::string message;
};

// Reads the reload fields of a /readyz body. InvalidArgument naming what is missing when the
// body is not what a zulip-bridge with reload answers.
StatusOr<ReloadState> ParseReloadState(std::string_view readyz_json);

// Signals the daemon configured by `config` and waits up to `timeout` for its outcome (the
// default stays inside the unit's TimeoutStartSec=60, which bounds ExecReload). OK with
// the daemon's summary when the new configuration was applied; InvalidArgument with the
// daemon's reason when it was not; Unavailable when no daemon answers
// or no outcome came in time; IOError when the signal could not be sent.
StatusOr<std::string> RequestReload(const Config& config,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(45));

}  // namespace zb

#endif  // ZB_DAEMON_OPS_RELOAD_COMMAND_H_
