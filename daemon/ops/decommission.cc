#include "daemon/ops/decommission.h"

#include <algorithm>
#include <memory>
#include <optional>

#include "daemon/base/clock.h"
#include "daemon/base/event_loop.h"
#include "daemon/pipeline/account.h"
#include "daemon/state/checkpoint_store.h"
#include "daemon/state/state_dir_lock.h"
#include "daemon/zulip/curl_transport.h"
#include "daemon/zulip/zulip_client.h"

namespace zb {
namespace {

// Deletes `queue_id` with the account's credentials; the outcome of the one call.
ZulipOutcome DeleteQueue(const AccountConfig& account, const std::string& queue_id) {
  ZulipOutcome outcome;
  StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create(RealClock::Instance());
  if (!loop.ok()) {
    outcome.kind = ZulipErrorKind::kTransient;
    outcome.status = loop.status();
    return outcome;
  }
  StatusOr<std::unique_ptr<CurlTransport>> transport = CurlTransport::Create(**loop);
  if (!transport.ok()) {
    outcome.kind = ZulipErrorKind::kTransient;
    outcome.status = transport.status();
    return outcome;
  }
  ZulipClient client(**transport, ZulipClientOptionsFor(account));
  client.DeleteQueue(queue_id, [&](ZulipOutcome result) {
    outcome = std::move(result);
    (*loop)->Stop();
  });
  Status ran = (*loop)->Run();
  if (!ran.ok()) {
    outcome.kind = ZulipErrorKind::kTransient;
    outcome.status = ran;
  }
  return outcome;
}

}  // namespace

StatusOr<DecommissionResult> Decommission(const Config& config, std::string_view account, Fs& fs) {
  auto configured = std::find_if(config.accounts.begin(), config.accounts.end(),
                                 [&](const AccountConfig& a) { return a.name == account; });
  if (configured == config.accounts.end()) {
    return Status::NotFound("account \"" + std::string(account) +
                            "\" is not in the configuration: its credentials are needed to "
                            "delete its Zulip queue");
  }
  StatusOr<std::unique_ptr<StateDirLock>> lock = StateDirLock::Acquire(config.state_dir);
  if (!lock.ok()) {
    if (!lock.status().IsUnavailable()) return lock.status();
    return Status::Unavailable(lock.status().message() +
                               "; decommission runs while the daemon is stopped");
  }
  StatusOr<std::unique_ptr<CheckpointStore>> checkpoints =
      CheckpointStore::Open(config.state_dir, fs);
  ZB_RETURN_IF_ERROR(checkpoints.status());
  StatusOr<Checkpoint> checkpoint = (*checkpoints)->Load(account);
  DecommissionResult result;
  if (!checkpoint.ok()) {
    if (checkpoint.status().IsNotFound()) return result;  // never registered: nothing to delete
    return checkpoint.status();
  }
  result.queue_id = checkpoint->queue_id;
  if (!result.queue_id.empty()) {
    ZulipOutcome deleted = DeleteQueue(*configured, result.queue_id);
    if (deleted.ok()) {
      result.queue_deleted = true;
    } else if (deleted.kind != ZulipErrorKind::kQueueLost) {
      return deleted.status.WithContext("account " + std::string(account) + ": deleting queue " +
                                        result.queue_id + "; the checkpoint is kept");
    }
  }
  ZB_RETURN_IF_ERROR((*checkpoints)->Remove(account));
  return result;
}

}  // namespace zb
