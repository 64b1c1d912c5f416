#include "daemon/pipeline/park_reason.h"

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

}  // namespace zb
