#include "daemon/pipeline/account_policy.h"

namespace zb {
namespace {

// The words before the detail; empty where the detail says it all (Zulip's own message).
std::string_view Preamble(ParkReason reason) {
  switch (reason) {
    case ParkReason::kBackfillRefused:
      return "backfill refused by Zulip: ";
    case ParkReason::kUnauthenticated:
    case ParkReason::kConfigurationRefused:
    case ParkReason::kZulipTooOld:
      return "";
  }
  return "";
}

}  // namespace

std::string_view ParkReasonName(ParkReason reason) {
  switch (reason) {
    case ParkReason::kUnauthenticated:
      return "unauthenticated";
    case ParkReason::kConfigurationRefused:
      return "configuration";
    case ParkReason::kBackfillRefused:
      return "backfill_refused";
    case ParkReason::kZulipTooOld:
      return "zulip_too_old";
  }
  return "unknown";
}

std::string ParkedReasonText(ParkReason reason, std::string_view detail) {
  std::string_view preamble = Preamble(reason);
  std::string text;
  text.reserve(preamble.size() + detail.size());
  text.append(preamble).append(detail);
  return text;
}

std::string_view RetryActionName(RetryAction action) {
  switch (action) {
    case RetryAction::kRegister:
      return "register";
    case RetryAction::kPoll:
      return "poll";
    case RetryAction::kBackfill:
      return "backfill";
    case RetryAction::kCommitQueue:
      return "commit_queue";
    case RetryAction::kCommit:
      return "commit";
  }
  return "unknown";
}

std::optional<ParkReason> ParkReasonFor(ZulipErrorKind kind, RetryAction failed) {
  switch (kind) {
    case ZulipErrorKind::kUnauthenticated:
      return ParkReason::kUnauthenticated;
    case ZulipErrorKind::kConfiguration:
      return ParkReason::kConfigurationRefused;
    case ZulipErrorKind::kBadRequest:
      // GET /messages refused (a narrow naming a channel renamed, deleted or left; an operator
      // the server does not know) is refused again however often it is asked, while the new
      // queue, never polled, expires: the operator must change the narrow.
      if (failed == RetryAction::kBackfill) return ParkReason::kBackfillRefused;
      return std::nullopt;
    case ZulipErrorKind::kNone:
    case ZulipErrorKind::kTransient:
    case ZulipErrorKind::kRateLimited:
    case ZulipErrorKind::kQueueLost:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace zb
