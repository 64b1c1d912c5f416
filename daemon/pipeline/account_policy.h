// What an account does when something fails, as values: why it parks (ParkReason), what it does
// again after a wait (RetryAction), and which failed Zulip calls park it (ParkReasonFor). The
// account (account.cc) acts on these values; it never decides by comparing a label.
//
// A park reason has one name, for code and for any log field, metric label or status field
// that classifies parked accounts (ParkReasonName), and one way of being written for the
// operator (ParkedReasonText: the log line's reason=, and parked_reason in `status` and
// /readyz). A new reason is added here (the enum, its name, its words and, when a failed Zulip
// call causes it, ParkReasonFor); a reason the account finds out by itself (a server too old)
// also where it finds it.
//
// Threads: pure functions, safe from any thread.
#ifndef ZB_DAEMON_PIPELINE_ACCOUNT_POLICY_H_
#define ZB_DAEMON_PIPELINE_ACCOUNT_POLICY_H_

#include <optional>
#include <string>
#include <string_view>

#include "daemon/zulip/zulip_client.h"

namespace zb {

// Why an account is parked: stopped for a cause only an operator can fix.
enum class ParkReason {
  // Zulip answered 401: the API key is wrong, or the user or the realm is deactivated.
  kUnauthenticated,
  // POST /register refused the account's configuration (a bad narrow, all_public_streams for a
  // guest, an event type the server does not know...).
  kConfigurationRefused,
  // GET /messages refused a backfill page with a 4xx (a narrow naming a channel renamed,
  // deleted or left): it is refused again however often it is asked.
  kBackfillRefused,
  // The server's feature level is below kMinZulipFeatureLevel (account.h).
  kZulipTooOld,
};

// "unauthenticated", "configuration", "backfill_refused", "zulip_too_old": stable, for
// machines (a label, a field); never shown instead of ParkedReasonText.
std::string_view ParkReasonName(ParkReason reason);

// What the operator reads: `detail` (the server's words, or what the account found out), after
// the reason's own words where it has any ("backfill refused by Zulip: " + detail).
std::string ParkedReasonText(ParkReason reason, std::string_view detail);

// What an account does again after a wait: the Zulip call that failed, or the checkpoint
// commit that did.
enum class RetryAction {
  kRegister,     // POST /register
  kPoll,         // GET /events, from the durable watermark
  kBackfill,     // the backfill's next GET /messages page (or its batch's records)
  kCommitQueue,  // stage and commit a new queue's checkpoint again
  kCommit,       // stage and commit the watermark's checkpoint again
};

// "register", "poll", "backfill" (call= in "Zulip call failed; retrying"), "commit_queue",
// "commit".
std::string_view RetryActionName(RetryAction action);

// Whether the Zulip call `failed` (kRegister, kPoll or kBackfill), which failed as `kind`,
// parks the account, and why; nullopt when it does not (a lost queue is registered again,
// anything else is retried after a backoff).
std::optional<ParkReason> ParkReasonFor(ZulipErrorKind kind, RetryAction failed);

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_ACCOUNT_POLICY_H_
