// ParkReason: why an account is parked, that is stopped for a cause only an operator can fix
// (account.h, "parked"). Each reason has one name, for code and any log field, metric label or
// status field that classifies parked accounts, and one way of being written for the operator
// (ParkedReasonText: the log line's reason=, and parked_reason in `status` and /readyz).
//
// A new reason is added here (the enum, its name, its words) and where the account decides to
// park (account.cc), nowhere else.
//
// Threads: pure functions, safe from any thread.
#ifndef ZB_DAEMON_PIPELINE_PARK_REASON_H_
#define ZB_DAEMON_PIPELINE_PARK_REASON_H_

#include <string>
#include <string_view>

namespace zb {

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

}  // namespace zb

#endif  // ZB_DAEMON_PIPELINE_PARK_REASON_H_
