// `zulip-bridge status`: a table of the running daemon's accounts, read from its /readyz.
//
// The daemon already publishes everything an operator asks first (state, queue id, watermark,
// events in flight, parked reason) as JSON on its HTTP listener; the command asks the address
// the configuration names and lays it out for a terminal. It needs no lock and no access to the
// state directory, so it works from any user that can reach the listener, while the daemon
// runs under its own sandboxed user.
#ifndef ZB_DAEMON_OPS_STATUS_COMMAND_H_
#define ZB_DAEMON_OPS_STATUS_COMMAND_H_

#include <string>
#include <string_view>

#include "daemon/base/status.h"
#include "daemon/config/config.h"

namespace zb {

// What `status` prints, from the /readyz body of a daemon. InvalidArgument naming what is
// missing when `readyz_json` is not what a zulip-bridge answers.
StatusOr<std::string> FormatStatusTable(std::string_view readyz_json);

// The URL `status` asks: the configured listener, with a wildcard address (0.0.0.0, ::) asked
// on loopback. InvalidArgument when the listener has no fixed port (port 0).
StatusOr<std::string> ReadyzUrl(const HttpConfig& http);

// The /readyz body of the daemon configured by `config` (answered 200 or 503). Unavailable
// naming the address when nothing answers there.
StatusOr<std::string> FetchReadyz(const Config& config);

// Asks the daemon configured by `config` and returns the table. Unavailable naming the address
// when nothing answers there (the daemon is not running, or listens elsewhere).
StatusOr<std::string> QueryStatus(const Config& config);

}  // namespace zb

#endif  // ZB_DAEMON_OPS_STATUS_COMMAND_H_
