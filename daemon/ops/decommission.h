// `zulip-bridge decommission ACCOUNT`: retire an account for good. Deletes its Zulip event queue
// (DELETE /api/v1/events) and then its checkpoint.
//
// Why a command: the bridge asks Zulip for 7-day queues so that restarts and outages lose
// nothing, and a queue that lives on keeps its bot counted as connected and keeps collecting
// events nobody will read, for up to a week. Removing the account from the configuration is
// not enough for the same reason; this is what an operator runs first.
//
// It runs while the daemon is stopped: it takes the state directory's lock, so it can never
// delete a queue that a running daemon is reading. The checkpoint is removed only after Zulip
// confirmed the queue is gone (deleted now, or already gone), so a failed attempt can simply be
// repeated.
#ifndef ZB_DAEMON_OPS_DECOMMISSION_H_
#define ZB_DAEMON_OPS_DECOMMISSION_H_

#include <string>
#include <string_view>

#include "daemon/base/fs.h"
#include "daemon/base/status.h"
#include "daemon/config/config.h"

namespace zb {

struct DecommissionResult {
  std::string queue_id;        // "" when the account had no checkpoint
  bool queue_deleted = false;  // false: no checkpoint, or Zulip no longer had the queue
};

// Decommissions `account`, which must be in `config` (its credentials are needed). NotFound
// when it is not; Unavailable when the state directory is locked by a running daemon (the
// lock's message names its pid) or Zulip could not be reached; Unauthenticated or
// InvalidArgument with Zulip's words when Zulip refused the deletion. On any error the
// checkpoint is kept.
StatusOr<DecommissionResult> Decommission(const Config& config, std::string_view account, Fs& fs);

}  // namespace zb

#endif  // ZB_DAEMON_OPS_DECOMMISSION_H_
